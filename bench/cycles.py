"""Trading cycles per second per worker process (issue #6): many paper bots, a brain that answers late.

1000 paper bots, one tenant and one symbol each, spread over 10 symbols (timeframes 5m and 1h); every
decision waits 500 ms for the brain. Two ways, same bots, same run:

(a) In process: one `CycleEnv` on one event loop, at most N cycles at once (CYCLE_CONCURRENCY, then
    more). The brain is an async function that sleeps, then runs the real rules decision and risk
    guard; the baseline is the same cycles one at a time. A last row asks the GPT brain instead, as
    the worker builds it, through a local OpenAI-compatible server that answers after the same delay.
(b) Real worker processes (`quorum worker`: Celery threads handing cycles to one loop), 1 then 2,
    each warmed up on a few cycles, then one `workers.dispatch.dispatch` tick of every bot; the bots
    ask the GPT brain through the same local server (OPENAI_BASE_URL).

Each tick prints cycles per second per worker process (the issue's target: 100 on a 2-core machine),
p50/p99 cycle time, CPU per cycle by process, and the market-data fetches, which should equal the
distinct (exchange, symbol, timeframe), not the bots. The market cache is emptied (or the replay
clock moved to the next close) before each tick. The symbols' candles are copies of the recorded
ETH/BTC and ADA/BTC 5m series under other names. Figures, not a test; a full run takes 4 to 5 minutes on
a 2-core machine.

    uv run python bench/cycles.py [--bots 1000] [--symbols 10] [--brain-latency 0.5]
        [--concurrency 64,128,256] [--worker-concurrency 64] [--skip-workers]
    uv run --with py-spy python bench/cycles.py --profile   # and where one worker's time goes

PostgreSQL and Redis are embedded unless DATABASE_URL (an admin URL, as for the tests) / REDIS_URL are set.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, free_port  # noqa: E402
from quorum.settings import Settings, load_settings  # noqa: E402
from tenants.db_commands import bootstrap  # noqa: E402
from workers.commands import worker_threads  # noqa: E402

RECORDED = ("ETH_BTC-5m.csv", "ADA_BTC-5m.csv")  # real series; every bench symbol is a copy of one
TIMEFRAMES = ("5m", "1h")
REPLAY_PREFIX = "quorum:ohlcv-replay"  # the key prefix workers/market/feed.py gives the replay cache
HOUR_MS = 3_600_000
WARM_UP_BOTS = 50  # per worker process, on two markets of their own
CLK_TCK = os.sysconf("SC_CLK_TCK")
Bots = Sequence[tuple[uuid.UUID, uuid.UUID]]  # (tenant id, bot id)


# ---- servers, database, bots ---------------------------------------------------------------------


@dataclass
class Servers:
    admin_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None
    redis: EmbeddedRedis | None


@contextmanager
def servers(scratch: Path) -> Iterator[Servers]:
    """PostgreSQL and Redis: DATABASE_URL's / REDIS_URL's, else embedded ones in `scratch`."""
    admin_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    pg = rd = None
    try:
        if not admin_url:
            pg = EmbeddedPostgres(scratch / "postgres", free_port())
            pg.start()
            admin_url = pg.url
        if not redis_url:
            rd = EmbeddedRedis(scratch / "redis", free_port())
            rd.start()
            redis_url = rd.url
        yield Servers(admin_url, redis_url, pg, rd)
    finally:
        if rd is not None:
            rd.stop()
        if pg is not None:
            pg.destroy()


@contextmanager
def fresh_database(admin_url: str, env: dict[str, str]) -> Iterator[Settings]:
    """A new database built by the migrations, dropped afterwards; `env` adds settings."""
    name = f"quorum_bench_{uuid.uuid4().hex[:8]}"
    settings = load_settings({"DATABASE_URL": admin_url.rsplit("/", 1)[0] + "/" + name, **env})
    bootstrap(settings)
    try:
        yield settings
    finally:
        with psycopg.connect(admin_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def copy_recorded_markets(recorded: Path, data_dir: Path, count: int) -> list[str]:
    """`count` symbols SYM<i>/BTC in `data_dir`/ohlcv, each a copy of a recorded 5m series; returns them."""
    (data_dir / "ohlcv").mkdir(parents=True, exist_ok=True)
    symbols = []
    for i in range(count):
        shutil.copyfile(recorded / RECORDED[i % len(RECORDED)], data_dir / "ohlcv" / f"SYM{i}_BTC-5m.csv")
        symbols.append(f"SYM{i}/BTC")
    return symbols


def create_bots(
    settings: Settings, count: int, symbols: Sequence[str], *, active: bool = True
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """One tenant per bot, written directly as the owner: paper mode, one symbol each (round robin), and
    its paper account already opened, as for a bot that has traded before."""
    from uuid_utils.compat import uuid7

    from workers.exchanges.paper import parse_balances

    pairs = [(uuid7(), uuid7()) for _ in range(count)]
    balances = Jsonb({code: str(amount) for code, amount in parse_balances(settings.paper_starting_balances).items()})
    with psycopg.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tenants (id, name, is_active, created_at, updated_at) VALUES (%s, %s, true, now(), now())",
            [(tenant, f"bench tenant {i}") for i, (tenant, _) in enumerate(pairs)],
        )
        cur.executemany(
            "INSERT INTO bots (id, tenant_id, name, symbols, timeframes, leverage, risk_per_trade_pct, "
            "max_open_positions, daily_loss_limit_pct, cycle_interval_seconds, agent_weights, brain, mode, "
            "is_active, is_default, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, 2, 1, 2, 5, 60, '{}', 'rules', 'paper', %s, false, now(), now())",
            [
                (bot, tenant, f"bench bot {i}", Jsonb([symbols[i % len(symbols)]]), Jsonb(list(TIMEFRAMES)), active)
                for i, (tenant, bot) in enumerate(pairs)
            ],
        )
        cur.executemany(
            "INSERT INTO paper_accounts (id, tenant_id, bot_id, balances, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, now(), now())",
            [(uuid7(), tenant, bot, balances) for tenant, bot in pairs],
        )
    return pairs


# ---- what a tick measures --------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


@dataclass
class Tick:
    """One tick's figures: every cycle it ran, how long it took, what it cost."""

    name: str
    workers: int = 1
    cycles: int = 0
    failed: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    orders: int = 0
    fetched: list[tuple[str, ...]] | None = None  # (venue, symbol, timeframe, candle close) of each fetch
    errors: Counter[str] = field(default_factory=Counter)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # process -> CPU ms per cycle
    others_cpu: float | None = None  # CPUs used by processes outside this benchmark during the tick
    per_cycle: dict[str, float] = field(default_factory=dict)  # e.g. SQL statements, Redis commands
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.cycles + self.failed

    @property
    def rate(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        fetched = "-" if self.fetched is None else f"{len(self.fetched)}/{len({f[:3] for f in self.fetched})}"
        return (
            f"{self.name:<46} {self.workers:>3} {self.cycles:>6} {self.failed:>6} {self.seconds:>7.2f} "
            f"{self.rate:>7.1f} {self.rate / self.workers:>7.1f} {self.p50_ms:>7.0f} {self.p99_ms:>7.0f} "
            f"{self.orders:>6} {fetched:>7}"
        )

    def detail(self) -> list[str]:
        lines = []
        if self.cpu_ms:
            parts = ", ".join(f"{name} {ms:.1f}" for name, ms in self.cpu_ms.items())
            line = f"CPU ms per cycle: {parts} (sum {sum(self.cpu_ms.values()):.1f})"
            if self.others_cpu is not None:
                line += f"; other processes on the machine used {self.others_cpu:.2f} of {os.cpu_count()} CPUs"
            lines.append(line)
        if self.per_cycle:
            lines.append("per cycle: " + ", ".join(f"{v:.1f} {k}" for k, v in self.per_cycle.items()))
        if self.fetched:
            series, closes = len({f[:3] for f in self.fetched}), len(set(self.fetched))
            line = f"market data: {len(self.fetched)} fetches of {series} series at {closes} (series, candle close)"
            if closes > series:
                line += "; a candle closed during the tick, so its series were fetched again"
            if len(self.fetched) > closes:
                line += f"; {len(self.fetched) - closes} fetches repeated a (series, close) already fetched"
            lines.append(line)
        lines += self.notes
        lines += [f"failed x{n}: {error}" for error, n in self.errors.most_common(3)]
        return [f"    {line}" for line in lines]


HEADER = (
    f"{'':<46} {'wrk':>3} {'cycles':>6} {'failed':>6} {'seconds':>7} {'cyc/s':>7} {'/worker':>7} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'orders':>6} {'fetches':>7}"
)


def _stat_ticks(path: str, children: bool = False) -> int:
    """utime + stime (and the reaped children's, when asked) from a /proc stat file; 0 if it is gone."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


class CpuMeter:
    """CPU seconds by process (workers, PostgreSQL, Redis, this script, the fake model's thread) and of the
    whole machine, so a tick can say what each cycle cost and how much CPU others took meanwhile."""

    def __init__(self, srv: Servers, workers: Sequence[int] = (), model_thread: int | None = None) -> None:
        self.postmaster: int | None = None
        if srv.postgres is not None:
            pid_file = srv.postgres.data_dir / "postmaster.pid"
            self.postmaster = int(pid_file.read_text().split("\n", 1)[0]) if pid_file.exists() else None
        self.redis_pid = srv.redis.process.pid if srv.redis is not None and srv.redis.process else None
        self.workers, self.model_thread = list(workers), model_thread

    def sample(self) -> dict[str, float]:
        ticks: dict[str, int] = {}
        if self.workers:
            ticks["workers"] = sum(_stat_ticks(f"/proc/{pid}/stat", children=True) for pid in self.workers)
        model = _stat_ticks(f"/proc/self/task/{self.model_thread}/stat") if self.model_thread else 0
        ticks["this script"] = _stat_ticks("/proc/self/stat") - model
        if self.model_thread:
            ticks["fake model"] = model
        if self.postmaster is not None:
            ticks["PostgreSQL"] = _stat_ticks(f"/proc/{self.postmaster}/stat", children=True) + sum(
                _stat_ticks(f"/proc/{pid}/stat") for pid in children_of(self.postmaster)
            )
        if self.redis_pid is not None:
            ticks["Redis"] = _stat_ticks(f"/proc/{self.redis_pid}/stat")
        cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        ticks["_busy"] = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
        sample = {name: n / CLK_TCK for name, n in ticks.items()}
        sample["_wall"] = time.perf_counter()
        return sample

    @staticmethod
    def settle(tick: Tick, before: dict[str, float], after: dict[str, float]) -> None:
        """Write CPU ms per cycle, and the CPU other processes used, into `tick`."""
        spent = {name: after[name] - before[name] for name in before if not name.startswith("_")}
        cycles = max(tick.finished, 1)
        tick.cpu_ms = {name: seconds * 1000 / cycles for name, seconds in spent.items()}
        wall = after["_wall"] - before["_wall"]
        tick.others_cpu = max((after["_busy"] - before["_busy"] - sum(spent.values())) / wall, 0.0) if wall else None


async def redis_commands(redis: Any) -> int:
    """Commands the Redis server has run so far (everyone's)."""
    return int((await redis.info("stats"))["total_commands_processed"])


# ---- (a) in process ---------------------------------------------------------------------------------


class CountingSource:
    """The replay source, remembering each series the shared cache fetched from it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fetched: list[tuple[str, ...]] = []

    async def fetch_ohlcv(
        self, exchange: str, symbol: str, timeframe: str, *, limit: int = 500, until_ms: int | None = None
    ) -> Any:
        self.fetched.append((exchange, symbol, timeframe, str(until_ms)))
        return await self.inner.fetch_ohlcv(exchange, symbol, timeframe, limit=limit, until_ms=until_ms)


class SteppedClock:
    """Replay time in ms that the bench moves on by hand: one step is one new candle close."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class SqlCounter:
    """SQL statements and transactions the engine's connections run, counted by asyncpg itself: cycles
    run most of theirs on the driver directly (`TenantScope.connection`), not through SQLAlchemy."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.statements = self.transactions = 0
        event.listen(engine.sync_engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(self._query)

    def _query(self, record: Any) -> None:
        query = record.query.lstrip().upper()
        if query.startswith(("COMMIT", "ROLLBACK")):
            return
        if query.startswith("BEGIN"):
            self.transactions += 1
            if ";" not in query:  # `BEGIN; SELECT set_config(...)` also sets the tenant: one statement
                return
        self.statements += 1


def answering_after(latency: float, redis: Any) -> Any:
    """A decide function whose brain answers after `latency` s: the real rules decision and risk guard."""
    from workers.brain.breaker import RedisCircuitBreaker
    from workers.brain.budget import RedisTokenBudget
    from workers.brain.service import decide

    breaker, budget = RedisCircuitBreaker(redis, "bench-rules"), RedisTokenBudget(redis, 0)

    async def decide_late(config: Any, inputs: Any) -> Any:
        await asyncio.sleep(latency)
        return await decide(config, inputs, gpt=None, breaker=breaker, budget=budget)

    return decide_late


def gpt_decide(settings: Settings, redis: Any, base_url: str) -> Any:
    """The decide function `workers.runtime` builds, its model at `base_url`."""
    from workers.brain.gpt import GptBrain, GptBrainConfig
    from workers.brain.service import decide, shared_breaker_and_budget

    config = GptBrainConfig.from_settings(settings, openai_base_url=base_url, openai_api_key="bench")
    breaker, budget = shared_breaker_and_budget(redis, config)
    return functools.partial(decide, gpt=GptBrain(config), breaker=breaker, budget=budget)


async def in_process(
    settings: Settings, srv: Servers, bots: Bots, data_dir: Path, latency: float, concurrencies: Sequence[int],
    sequential_sample: int, model: FakeModel,
) -> list[Tick]:
    from redis.asyncio import Redis

    from quorum.database import Database, create_app_engine
    from tenants.vault import LocalMasterKeys, Vault
    from workers.cycle import CycleEnv, CycleReport
    from workers.exchanges.factory import open_trading_exchange
    from workers.market.cache import SharedOhlcvCache
    from workers.market.feed import REPLAY, MarketFeed, replay_clock
    from workers.market.replay import ReplaySource
    from workers.runtime import _send_task  # the worker's own: Celery's send_task, results ignored

    database = Database(create_app_engine(settings))
    sql_counter = SqlCounter(database.engine)
    # The worker's client (workers/runtime.py) keeps redis-py's default pool: 100 connections, and a
    # command past them raises at once. Raised here, so the curve past 64 cycles at once can be drawn.
    redis = Redis.from_url(settings.redis_url, max_connections=4 * max(concurrencies) + 16)
    replay = ReplaySource(data_dir / "ohlcv")
    source = CountingSource(replay)
    # 300 hours into the replay, so the 1h series has its full 300 candles of history, and just past a
    # close (the recording starts on one), so what is fetched stays cached for most of the 5m candle.
    clock = SteppedClock(replay_clock(replay, 1.0).start_ms + 300 * HOUR_MS + 10_000)
    cache = SharedOhlcvCache(redis, source, key_prefix=f"quorum:bench-ohlcv:{uuid.uuid4().hex[:8]}", clock=clock)
    env = CycleEnv(
        database=database, vault=Vault(LocalMasterKeys.from_setting(settings.master_keys)), redis=redis,
        feed=MarketFeed(cache, clock, REPLAY, None), decide=answering_after(latency, redis),
        open_exchange=functools.partial(open_trading_exchange, database, settings), send_task=_send_task,
        soft_time_limit=settings.cycle_soft_time_limit_seconds, lock_ttl=settings.cycle_hard_time_limit_seconds,
    )
    meter = CpuMeter(srv, model_thread=model.thread_id)

    async def tick(name: str, slot: int, chosen: Bots, limit: int) -> Tick:
        gate = asyncio.Semaphore(limit)
        result = Tick(name)
        latencies: list[float] = []

        async def one(tenant: uuid.UUID, bot: uuid.UUID) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    report = await env.run(tenant, bot, slot)
                except Exception as exc:  # raised out of the cycle: the Celery task would fail the same way
                    report = CycleReport(status="raised", error=f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - started)
            result.orders += report.orders
            if report.status == "completed":
                result.cycles += 1
            else:
                result.failed += 1
                result.errors[f"{report.status}: {report.error}"[:120]] += 1

        source.fetched.clear()
        statements, transactions = sql_counter.statements, sql_counter.transactions
        commands = await redis_commands(redis)
        before = meter.sample()
        started = time.perf_counter()
        await asyncio.gather(*(one(t, b) for t, b in chosen))
        result.seconds = time.perf_counter() - started
        CpuMeter.settle(result, before, meter.sample())
        n = max(result.finished, 1)
        result.per_cycle = {
            "SQL statements": (sql_counter.statements - statements) / n,
            "transactions": (sql_counter.transactions - transactions) / n,
            "Redis commands": (await redis_commands(redis) - commands) / n,
        }
        result.p50_ms, result.p99_ms = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        result.fetched = list(source.fetched)
        return result

    # Imports, connection pools and caches are paid once per process: not measured.
    await tick("warm-up", 1, bots[: concurrencies[0]], concurrencies[0])
    # The baseline: the same cycles one at a time, on candles already fetched (a cheaper tick than the rest).
    ticks = [await tick(f"one at a time ({sequential_sample} cycles)", 2, bots[:sequential_sample], 1)]
    ticks[-1].notes.append("same candles as the warm-up: nothing to fetch, no insights to compute")
    for limit in concurrencies:
        clock.now_ms += HOUR_MS  # a new 5m and 1h candle close: every series is fetched again
        label = " (CYCLE_CONCURRENCY)" if limit == settings.cycle_concurrency else ""
        ticks.append(await tick(f"{limit} at once{label}", len(ticks) + 2, bots, limit))

    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as owner:
        await owner.execute("UPDATE bots SET brain = 'gpt'")
    env.decide = gpt_decide(settings, redis, model.base_url)
    clock.now_ms += HOUR_MS
    limit = settings.cycle_concurrency
    answered = model.answered
    ticks.append(await tick(f"{limit} at once, GPT brain via the fake model", len(ticks) + 2, bots, limit))
    ticks[-1].notes.append(f"the fake model answered {model.answered - answered} requests")
    await redis.aclose()
    await database.dispose()
    return ticks


# ---- the fake model ---------------------------------------------------------------------------------


class FakeModel:
    """A local OpenAI-compatible chat endpoint on its own thread and loop: every answer comes after
    `latency` s and proposes WAIT (HOLD when a position is open) for the symbol asked about."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.answered = 0
        self.thread_id: int | None = None  # the OS thread, so its CPU is counted apart
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fake-model", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self) -> None:
        self.thread_id = threading.get_native_id()
        self.loop.run_forever()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    def __enter__(self) -> FakeModel:
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self._server = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shut_down(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):  # each handler then reads EOF and returns
            writer.close()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(handlers, timeout=5) if handlers else None

    def answer(self, body: bytes) -> bytes:
        from tests.fakes.openai_server import completion

        messages = json.loads(body)["messages"]
        market_text = next(m["content"] for m in messages if m["content"].startswith("MARKET\n"))
        market = json.loads(market_text.removeprefix("MARKET\n").split("\n\nAGENT INSIGHTS", 1)[0])
        proposal = {
            "action": "HOLD" if market.get("position") else "WAIT", "symbol": market["symbol"], "entry": None,
            "stop_loss": None, "take_profit": None, "leverage": 1, "confidence": 0.5, "reasons": ["bench"],
        }
        return json.dumps(completion(proposal).body).encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:  # keep-alive: one request after another on the client's pooled connection
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                await asyncio.sleep(self.latency)
                payload = self.answer(body)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                    + payload
                )
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


# ---- (b) real worker processes ------------------------------------------------------------------


class FetchCounter:
    """Counts the OHLCV series every process stores in the shared replay cache (Redis keyspace events):
    one store is one fetch from the source."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.stored: list[tuple[str, ...]] = []
        self.available = True
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.redis.config_set("notify-keyspace-events", "E$")
        except Exception:  # a managed Redis may refuse CONFIG: the fetch count is then not shown
            self.available = False
            return
        pubsub = self.redis.pubsub()
        db = self.redis.connection_pool.connection_kwargs.get("db", 0)
        await pubsub.subscribe(f"__keyevent@{db}__:set")
        self._task = asyncio.create_task(self._listen(pubsub))

    async def _listen(self, pubsub: Any) -> None:
        prefix = REPLAY_PREFIX + ":"
        async for message in pubsub.listen():
            key = message["data"].decode() if isinstance(message["data"], bytes) else ""
            if key.startswith(prefix) and not key.endswith((":lock", ":error")):
                venue, rest = key[len(prefix):].split(":", 1)
                symbol, timeframe, close = rest.rsplit(":", 2)
                self.stored.append((venue, symbol, timeframe, close))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@contextmanager
def worker_processes(count: int, env: dict[str, str], log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` real `quorum worker` processes; stopped (warm shutdown) on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            with (log_dir / f"worker-{count}-{i}.log").open("wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "quorum.cli", "worker", "--name", f"bench{i}-{uuid.uuid4().hex[:4]}@%h"],
                    env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                ))
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_until_ready(app: Any, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
    raise TimeoutError(f"{count} workers did not answer a ping within {timeout:.0f}s")


_SLOT_STATS = (
    "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'), "
    "min(created_at), max(finished_at), percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), "
    "percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) FROM cycles WHERE slot = %s"
)


class RealPath:
    """What every tick of (b) uses: the owner's connection to read `cycles` across tenants, the
    dispatcher's clients and the fetch counter."""

    def __init__(self, settings: Settings, owner: psycopg.AsyncConnection, database: Any, redis: Any,
                 counter: FetchCounter) -> None:
        self.settings, self.owner, self.database, self.redis, self.counter = settings, owner, database, redis, counter

    def send(self, batch: Sequence[Any]) -> None:
        """Put the cycles on the broker exactly as the `quorum.dispatch` task does."""
        from workers.tasks import enqueue_cycles

        enqueue_cycles(batch, self.settings.cycle_batch_size)

    async def wait(self, slot: int, expected: int, give_up_after: float) -> tuple[Any, ...]:
        """The slot's figures once `expected` cycles are recorded as finished (or after `give_up_after` s)."""
        deadline = time.perf_counter() + give_up_after
        while True:
            row = await (await self.owner.execute(_SLOT_STATS, (slot,))).fetchone()
            if row[0] + row[1] >= expected or time.perf_counter() > deadline:
                return row
            await asyncio.sleep(0.25)

    async def warm_up(self, bots: Bots, slot: int) -> None:
        """A few cycles straight to the workers: imports, pools and connections are paid before the tick.
        `bots` trade markets of their own (a worker keeps the series it read until the next close, and
        the tick must fetch its own), and they are active only meanwhile (the tick's dispatch skips them)."""
        from workers.dispatch import DueCycle

        ids = [bot for _, bot in bots]
        await self.owner.execute("UPDATE bots SET is_active = true WHERE id = ANY(%s)", (ids,))
        self.send([DueCycle(tenant, bot, slot) for tenant, bot in bots])
        await self.wait(slot, len(bots), 120)
        await self.owner.execute("UPDATE bots SET is_active = false WHERE id = ANY(%s)", (ids,))

    async def tick(self, name: str, workers: int, slot_time: datetime.datetime, meter: CpuMeter,
                   only: Bots | None = None) -> Tick:
        """Empty the market cache, dispatch the bots due at `slot_time` (or send `only` these), and wait
        until every cycle is recorded."""
        from workers.cycle import slot_of
        from workers.dispatch import DueCycle, dispatch

        async for key in self.redis.scan_iter(match=REPLAY_PREFIX + ":*", count=1000):
            await self.redis.delete(key)
        self.counter.stored.clear()
        result = Tick(name, workers=workers)
        slot = slot_of(slot_time.timestamp(), 60)
        commands = await redis_commands(self.redis)
        before = meter.sample()
        if only is None:
            report = await dispatch(
                self.database, self.redis, self.send, now=slot_time, chunk_size=self.settings.dispatch_chunk_size,
                stale_after_seconds=self.settings.cycle_hard_time_limit_seconds + 5,
            )
            enqueued = report.enqueued
            result.notes.append(f"dispatch: {enqueued} cycles enqueued in {report.seconds * 1000:.0f} ms "
                                f"(by this script, as the quorum.dispatch task does)")
        else:
            self.send([DueCycle(tenant, bot, slot) for tenant, bot in only])
            enqueued = len(only)
        completed, failed, first, last, p50, p99 = await self.wait(slot, enqueued, max(120.0, enqueued / 5))
        await asyncio.sleep(0.3)  # the last keyspace events
        result.cycles, result.failed = completed, failed
        CpuMeter.settle(result, before, meter.sample())
        result.per_cycle["Redis commands"] = (await redis_commands(self.redis) - commands) / max(result.finished, 1)
        result.seconds = (last - first).total_seconds() if first and last else float("nan")
        result.p50_ms, result.p99_ms = p50 or float("nan"), p99 or float("nan")
        if completed + failed < enqueued:
            result.notes.append(f"gave up waiting: {enqueued - completed - failed} cycles not finished")
        result.orders = (await (await self.owner.execute(
            "SELECT count(*) FROM orders o JOIN cycles c ON c.id = o.cycle_id WHERE c.slot = %s", (slot,)
        )).fetchone())[0]
        brains = await (await self.owner.execute(
            "SELECT d.brain, coalesce(d.fallback, ''), count(*) FROM decisions d JOIN cycles c ON c.id = d.cycle_id "
            "WHERE c.slot = %s GROUP BY 1, 2 ORDER BY 3 DESC", (slot,)
        )).fetchall()
        result.notes.append("decided by: " + ", ".join(f"{b}{f' ({f})' if f else ''} {n}" for b, f, n in brains))
        for error, n in await (await self.owner.execute(
            "SELECT left(error, 120), count(*) FROM cycles WHERE slot = %s AND status = 'failed' "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 3", (slot,)
        )).fetchall():
            result.errors[error] = n
        if self.counter.available:
            result.fetched = list(self.counter.stored)
        return result


class Profiler:
    """py-spy sampling one process, thread by thread, until stopped."""

    RATE = 100

    def __init__(self, binary: str, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--rate", str(self.RATE), "--format", "raw", "--threads",
             "--full-filenames", "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.started = time.perf_counter()

    def stop(self) -> float:
        seconds = time.perf_counter() - self.started
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return seconds


def _frame(frame: str) -> tuple[str, str]:
    """`name (path:line)` -> (name, path)."""
    name, _, rest = frame.partition(" (")
    return name, rest.rsplit(":", 1)[0]


def _where(path: str) -> str:
    """The library (or our package) a file belongs to."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith(str(REPO_ROOT)):
        return "quorum " + path[len(str(REPO_ROOT)) + 1:].split("/", 1)[0]
    return "python " + Path(path).stem


def profile_report(path: Path, seconds: float, rate: int = Profiler.RATE) -> list[str]:
    """How busy each thread was; on the event-loop thread, self time by library and by function, and the
    inclusive time of Quorum's functions."""
    by_thread: Counter[str] = Counter()
    self_by_lib: Counter[str] = Counter()
    self_by_fn: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    loop = 0
    root = str(REPO_ROOT) + "/"
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        thread, _, rest = stack.partition(";")
        name = thread.split(": ", 1)[-1]
        by_thread["event loop (quorum-loop)" if name == "quorum-loop" else f"thread {name}"] += n
        frames = [_frame(f) for f in rest.split(";") if " (" in f]
        if name != "quorum-loop" or not frames:
            continue
        loop += n
        fn, file = frames[-1]
        self_by_lib[_where(file)] += n
        self_by_fn[f"{fn} ({_where(file)})"] += n
        for label in {f"{fn} ({file.removeprefix(root)})" for fn, file in frames if file.startswith(root)}:
            ours[label] += n
    if not loop:
        return ["    no samples of the event-loop thread (py-spy needs permission to read the worker's memory)"]
    budget = seconds * rate
    threads = by_thread.most_common()
    lines = [f"    {seconds:.1f}s at {rate} samples/s; share of the time each thread was running or runnable:"]
    lines += [f"      {n / budget:>6.0%}  {label}" for label, n in threads[:4]]
    if len(threads) > 4:
        lines.append(f"      {sum(n for _, n in threads[4:]) / budget:>6.0%}  {len(threads) - 4} other threads")
    lines.append("    event-loop thread, self time by library:")
    lines += [f"      {n / loop:>6.1%}  {lib}" for lib, n in self_by_lib.most_common(10)]
    lines.append("    event-loop thread, self time by function:")
    lines += [f"      {n / loop:>6.1%}  {fn}" for fn, n in self_by_fn.most_common(12)]
    lines.append("    event-loop thread, inclusive time of Quorum functions (a statement SQLAlchemy runs in a greenlet "
                 "is not always counted under the function that asked for it):")
    lines += [f"      {n / loop:>6.1%}  {fn}" for fn, n in ours.most_common(30)]
    return lines


async def real_workers(
    settings: Settings, srv: Servers, bots: Bots, warm_bots: Bots, worker_env: dict[str, str], model: FakeModel,
    scratch: Path, profile: bool,
) -> tuple[list[Tick], list[str]]:
    from redis.asyncio import Redis

    from quorum.database import Database, create_app_engine
    from workers.celery_app import app
    from workers.cycle import slot_of

    database = Database(create_app_engine(settings))
    redis = Redis.from_url(settings.redis_url)
    owner = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    await owner.execute("UPDATE bots SET brain = 'gpt'")
    counter = FetchCounter(redis)
    await counter.start()
    path = RealPath(settings, owner, database, redis, counter)
    ticks: list[Tick] = []
    profile_lines: list[str] = []
    minutes = iter(range(1, 10_000))
    base = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)  # slots no one has run yet

    def next_slot() -> datetime.datetime:
        return base + datetime.timedelta(minutes=next(minutes))

    env = {**worker_env, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "bench"}
    for count in (1, 2):
        app.control.purge()  # what earlier cycles left on the broker (their events' delivery tasks)
        with worker_processes(count, env, scratch) as procs:
            await asyncio.to_thread(wait_until_ready, app, count)
            await path.warm_up(warm_bots[: WARM_UP_BOTS * count], slot_of(next_slot().timestamp(), 60))
            meter = CpuMeter(srv, [p.pid for p in procs], model.thread_id)
            answered = model.answered
            tick = await path.tick(f"{count} worker process{'es' if count > 1 else ''}", count, next_slot(), meter)
            tick.notes.append(f"the fake model answered {model.answered - answered} requests")
            ticks.append(tick)
            spy = shutil.which("py-spy")
            if profile and count == 1 and spy:
                sample = bots[: min(len(bots), 300)]
                profiler = Profiler(spy, procs[0].pid, scratch / "worker.pyspy")
                ticks.append(await path.tick(f"1 worker, {len(sample)} cycles sampled by py-spy", count,
                                             next_slot(), meter, only=sample))
                seconds = profiler.stop()
                profile_lines = (profile_report(profiler.out, seconds) if profiler.out.exists()
                                 else ["    py-spy wrote no profile"])
            elif profile and count == 1:
                profile_lines = ["    py-spy not found: `uv run --with py-spy python bench/cycles.py --profile`"]
    await counter.stop()
    await owner.close()
    await redis.aclose()
    await database.dispose()
    return ticks, profile_lines


# ---- main -------------------------------------------------------------------------------------------------


def print_ticks(ticks: Sequence[Tick], expected_series: int, bots: int) -> None:
    print(HEADER)
    for tick in ticks:
        print(tick.row())
        print("\n".join(tick.detail()))
    print(f"fetches: market-data fetches in the tick / distinct (exchange, symbol, timeframe) among them; the bots "
          f"read {expected_series} distinct series, and there are {bots} bots")


async def measure(args: argparse.Namespace, srv: Servers, settings: Settings, scratch: Path,
                  worker_env: dict[str, str], recorded: Path) -> None:
    symbols = copy_recorded_markets(recorded, scratch / "data", args.symbols + 2)
    symbols, warm_symbols = symbols[: args.symbols], symbols[args.symbols:]
    started = time.perf_counter()
    bots = await asyncio.to_thread(create_bots, settings, args.bots, symbols)
    made = time.perf_counter() - started
    warm_bots = await asyncio.to_thread(create_bots, settings, 2 * WARM_UP_BOTS, warm_symbols, active=False)
    expected_series = min(args.symbols, args.bots) * len(TIMEFRAMES)
    concurrencies = args.concurrency or sorted({settings.cycle_concurrency, 128, 256})
    cpus = os.cpu_count() or 1

    print(f"\nTrading cycles — {args.bots} paper bots (one tenant and one symbol each) on {args.symbols} symbols, "
          f"timeframes {'+'.join(TIMEFRAMES)}; the brain answers after {args.brain_latency * 1000:.0f} ms")
    print(f"{cpus} CPUs shared by PostgreSQL, Redis, the workers and this script; load average "
          f"{os.getloadavg()[0]:.2f} before the run; {args.bots} bots written in {made:.1f}s")
    sources = ", ".join(f"{s} = {RECORDED[i % len(RECORDED)].removesuffix('-5m.csv').replace('_', '/')}"
                        for i, s in enumerate(symbols[:4]))
    print(f"Market data: replayed recorded candles. The {args.symbols} symbols are copies of the real ETH/BTC and "
          f"ADA/BTC 5m series under other names ({sources}, ...); 1h is resampled from 5m.")

    with FakeModel(args.brain_latency) as model:
        gpt = default = None
        if not args.skip_in_process:
            print("\n(a) In process: one CycleEnv on one event loop; brain = sleep, then the real rules decision + "
                  f"guard (warmed up on {concurrencies[0]} cycles first)")
            ticks = await in_process(settings, srv, bots, scratch / "data", args.brain_latency, concurrencies,
                                     args.sample, model)
            print_ticks(ticks, expected_series, args.bots)
            baseline, rules_ticks, gpt = ticks[0], ticks[1:-1], ticks[-1]
            best = max(rules_ticks, key=lambda t: t.rate)
            default = next((t for t in rules_ticks if "CYCLE_CONCURRENCY" in t.name), best)
            print(f"speedup over one at a time: {default.rate / baseline.rate:.0f}x at CYCLE_CONCURRENCY="
                  f"{settings.cycle_concurrency}, {best.rate / baseline.rate:.0f}x at best ({best.name}); with no "
                  f"CPU cost, {settings.cycle_concurrency} at once would give "
                  f"{settings.cycle_concurrency / args.brain_latency:.0f} cycles/s")
        if args.skip_workers:
            return

        print(f"\n(b) Real worker processes: `quorum worker` (Celery, {worker_threads(settings)} threads handing "
              f"batches of {settings.cycle_batch_size} cycles to one event loop, at most {settings.cycle_concurrency} "
              f"cycles at once); bots on the GPT brain, OPENAI_BASE_URL = the fake model answering after "
              f"{args.brain_latency * 1000:.0f} ms; each worker warmed up on {WARM_UP_BOTS} cycles of other markets "
              "first")
        real, profile_lines = await real_workers(settings, srv, bots, warm_bots, worker_env, model, scratch,
                                                 args.profile)
    print_ticks(real, expected_series, args.bots)
    print("seconds: first cycle claimed to last cycle finished; p50/p99: one cycle from claim to finish (`cycles`)")

    print("\nSummary")
    for tick in real:
        if "py-spy" in tick.name:
            continue
        per = tick.rate / tick.workers
        print(f"  {tick.name}: {per:.1f} cycles/s per process — target 100: {'met' if per >= 100 else 'NOT met'}")
    one = real[0]
    own = one.cpu_ms.get("workers", 0.0)
    system = own + one.cpu_ms.get("PostgreSQL", 0.0) + one.cpu_ms.get("Redis", 0.0)
    print(f"  CPU bound: a worker spends {own:.1f} ms of CPU per cycle, so its one event loop cannot pass "
          f"{1000 / own:.0f} cycles/s even with a CPU to itself; worker + PostgreSQL + Redis spend {system:.1f} ms, "
          f"so {cpus} CPUs cannot pass {cpus * 1000 / system:.0f} cycles/s in all. 100 per process, one process "
          f"per CPU, leaves 10 ms of CPU per cycle for everything.")
    if gpt is not None and default is not None:
        print(f"  CPU per cycle in process: rules brain {default.cpu_ms.get('this script', 0):.1f} ms, GPT brain "
              f"{gpt.cpu_ms.get('this script', 0):.1f} ms (the OpenAI client, breaker and budget); in a worker "
              f"{own:.1f} ms (and Celery: messages, threads, the delivery task of each decision event)")
    if profile_lines:
        print("\nWhere one worker's time goes (py-spy, the sampled tick above):")
        print("\n".join(profile_lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--brain-latency", type=float, default=0.5, help="seconds the brain takes to answer")
    parser.add_argument("--concurrency", type=lambda s: [int(v) for v in s.split(",")], default=None,
                        help="(a): cycles at once, comma-separated (default CYCLE_CONCURRENCY,128,256)")
    parser.add_argument("--worker-concurrency", type=int, default=None,
                        help="CYCLE_CONCURRENCY: (b)'s cycles at once per worker process (default 64)")
    parser.add_argument("--sample", type=int, default=10, help="cycles in the one-at-a-time baseline")
    parser.add_argument("--skip-workers", action="store_true", help="only (a)")
    parser.add_argument("--skip-in-process", action="store_true", help="only (b)")
    parser.add_argument("--profile", action="store_true", help="and sample one worker with py-spy (an extra tick)")
    args = parser.parse_args()

    from workers.market.replay import default_ohlcv_dir

    recorded = default_ohlcv_dir()  # before QUORUM_DATA_DIR points at the copies
    scratch = Path(tempfile.mkdtemp(prefix="quorum-bench-cycles-"))
    try:
        with ExitStack() as stack:
            srv = stack.enter_context(servers(scratch))
            env = {
                "REDIS_URL": srv.redis_url, "SECRET_KEY": "bench-secret-key-" + "x" * 32, "ENVIRONMENT": "development",
                "LOG_LEVEL": "WARNING", "MARKET_DATA": "replay", "QUORUM_DATA_DIR": str(scratch / "data"),
            }
            if args.worker_concurrency:
                env["CYCLE_CONCURRENCY"] = str(args.worker_concurrency)
            settings = stack.enter_context(fresh_database(srv.admin_url, env))
            worker_env = {**os.environ, **settings.as_environ(), **env, "PYTHONPATH": str(REPO_ROOT)}
            # This process's Celery client (workers.celery_app reads the settings from the environment).
            os.environ.update({**settings.as_environ(), **env})
            asyncio.run(measure(args, srv, settings, scratch, worker_env, recorded))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
