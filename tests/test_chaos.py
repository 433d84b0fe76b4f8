"""Redis or PostgreSQL dies for a few seconds in the middle of a cycle: no order is lost or made twice, and the
worker rides it out.

Two bots meet each outage:
- a paper bot with the GPT brain, caught while the model holds its answer (the openai client against the
  fake OpenAI server);
- a live Bybit bot, caught while the exchange holds its answer to the order (pybit against the fake Bybit
  v5): the order is made, and the worker learns of it while Redis or the database is gone.

Everything is real: a Celery worker process (`quorum worker`), PostgreSQL and Redis of this module's own (the
session's serve every other test and must not die). Redis is killed with SIGKILL and started again on the
same port with the same data folder; PostgreSQL is stopped in immediate mode (every process aborted, no
checkpoint: a crash, recovered at the next start), then started again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from celery import Celery
from litestar.testing import AsyncTestClient
from psycopg import sql
from sqlalchemy import select

from api.app import create_app
from quorum.database import Database, create_app_engine
from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from quorum.settings import Settings
from tenants.db_commands import bootstrap
from tenants.models import Cycle, Order
from tenants.scope import TenantScope
from tests.conftest import REPO_ROOT, child_environ, make_settings, register
from tests.fakes.bybit_v5 import FakeBybitV5, Fault
from tests.fakes.openai_server import FakeOpenAI, completion
from workers.cycle import slot_of
from workers.market.feed import replay_clock
from workers.market.replay import ReplaySource, default_ohlcv_dir

INTERVAL = 3600
OUTAGE_SECONDS = 5.0
FINAL = ("completed", "failed")
HARD_LIMIT = 15.0  # seconds: how long a bot lock that could not be released during the outage holds


@pytest.fixture(scope="module")
def chaos_postgres(scratch_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(scratch_dir / "chaos-postgres", free_port())
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def chaos_redis(scratch_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(scratch_dir / f"chaos-redis-{uuid.uuid4().hex[:6]}", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chaos_settings(chaos_postgres: EmbeddedPostgres, chaos_redis: EmbeddedRedis) -> Iterator[Settings]:
    """A fresh database, built by the migrations, on the module's PostgreSQL, and the test's own Redis."""
    name = f"quorum_chaos_{uuid.uuid4().hex[:8]}"
    settings = make_settings(chaos_postgres.url.rsplit("/", 1)[0] + f"/{name}", chaos_redis.url)
    bootstrap(settings)
    yield settings
    with psycopg.connect(chaos_postgres.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def chaos_client(chaos_settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(chaos_settings)) as client:
        yield client


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def chaos_bybit() -> Iterator[FakeBybitV5]:
    with FakeBybitV5() as server:
        yield server


def gpt_answer(symbol: str, action: str, price: float, digits: int) -> dict[str, object]:
    opening = action == "OPEN_LONG"
    return {
        "action": action, "symbol": symbol, "entry": None,
        "stop_loss": round(price * 0.97, digits) if opening else None,
        "take_profit": round(price * 1.03, digits) if opening else None,
        "leverage": 1, "confidence": 0.8, "reasons": ["chaos test"],
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", "worker", "--threads", "4",
             "--name", f"chaos-{uuid.uuid4().hex[:6]}@%h"],
            env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def log_tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if " DEBUG " not in line)[-6000:]


async def wait_until(check: Callable[[], object], seconds: float, what: str, log: Path) -> None:
    """Poll `check` (sync or async) until it is truthy; generous, and returns as soon as it holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the worker said:\n{log_tail(log)}")


def crash_postgres(server: EmbeddedPostgres) -> None:
    subprocess.run([str(server.bin / "pg_ctl"), "-D", str(server.data_dir), "-m", "immediate", "-w", "stop"],
                   check=True, user=server.system_user, stdout=subprocess.DEVNULL, timeout=60)


@dataclass
class Bot:
    """What the test set up: the bot, where the cycle is caught, and the exchange's own count of orders."""

    tenant: uuid.UUID
    bot_id: uuid.UUID
    env: dict[str, str]
    caught: Callable[[], bool]  # the first cycle is waiting on the outside service
    on_exchange: Callable[[], int]


def gpt_paper_bot(fake_openai: FakeOpenAI, chaos_bybit: FakeBybitV5,
                  market_dir: Path) -> tuple[dict[str, object], Callable[..., Bot]]:
    symbol = "ETH/BTC"
    replay = ReplaySource(default_ohlcv_dir())
    price = float(replay.read(symbol, "5m", until_ms=replay_clock(replay, 1.0)()).close[-1])
    # The model holds its answer past the outage's start: the cycle is waiting on it when the service dies,
    # and goes on (records, publishes, acks) while it is still down or just back.
    held = completion(gpt_answer(symbol, "OPEN_LONG", price, 8))
    held.delay = 3.0
    fake_openai.reply(held)
    fake_openai.default = completion(gpt_answer(symbol, "WAIT", price, 8))
    body = {"name": "chaos", "mode": "paper", "symbols": [symbol]}

    def made(tenant: uuid.UUID, bot_id: uuid.UUID, env: dict[str, str]) -> Bot:
        return Bot(tenant, bot_id, env, lambda: fake_openai.calls >= 1, lambda: -1)
    return body, made


def bybit_live_bot(fake_openai: FakeOpenAI, chaos_bybit: FakeBybitV5,
                   market_dir: Path) -> tuple[dict[str, object], Callable[..., Bot]]:
    symbol = "BTC/USDT:USDT"
    replay = ReplaySource(market_dir / "ohlcv")
    price = float(replay.read(symbol, "5m", until_ms=replay_clock(replay, 1.0)()).close[-1])
    fake_openai.reply(completion(gpt_answer(symbol, "OPEN_LONG", price, 1)))  # the fake's tick is 0.1
    fake_openai.default = completion(gpt_answer(symbol, "WAIT", price, 1))
    api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}"
    chaos_bybit.add_key(api_key, secret, ips=["203.0.113.9"])
    # The order is made at once; its answer waits past the outage's start.
    chaos_bybit.inject("/v5/order/create", Fault.delay(3.0))
    body = {"name": "chaos", "mode": "live", "symbols": [symbol], "exchangeKey": (api_key, secret)}

    def made(tenant: uuid.UUID, bot_id: uuid.UUID, env: dict[str, str]) -> Bot:
        return Bot(tenant, bot_id, env, lambda: chaos_bybit.create_calls >= 1,
                   lambda: len(chaos_bybit.orders(api_key)))
    return body, made


@pytest.mark.parametrize("outage", ["redis", "postgres"])
@pytest.mark.parametrize("kind", [gpt_paper_bot, bybit_live_bot], ids=["gpt-paper", "bybit-live"])
async def test_a_worker_rides_out_an_outage_in_the_middle_of_a_cycle(
    outage: str, kind: Callable, chaos_client: AsyncTestClient, chaos_settings: Settings,
    chaos_postgres: EmbeddedPostgres, chaos_redis: EmbeddedRedis, fake_openai: FakeOpenAI,
    chaos_bybit: FakeBybitV5, bybit_market_dir: Path, scratch_dir: Path,
) -> None:
    client = chaos_client
    body, made = kind(fake_openai, chaos_bybit, bybit_market_dir)
    env = child_environ(
        chaos_settings, MARKET_DATA="replay", REPLAY_SPEED="1", OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="sk-test", WORKER_METRICS_PORT="0", LOG_LEVEL="DEBUG",
        EXCHANGE_API_OVERRIDES=f"bybit={chaos_bybit.origin}",
        CYCLE_HARD_TIME_LIMIT_SECONDS=str(HARD_LIMIT), CYCLE_SOFT_TIME_LIMIT_SECONDS=str(HARD_LIMIT - 3),
        **({"QUORUM_DATA_DIR": str(bybit_market_dir)} if body["mode"] == "live" else {}),
    )
    log = scratch_dir / f"chaos-{outage}-{body['mode']}-{uuid.uuid4().hex[:6]}.log"
    broker = Celery("chaos-test", broker=chaos_settings.redis_url, backend=chaos_settings.redis_url)
    database = Database(create_app_engine(chaos_settings))
    worker = start_worker(env, log)  # before linking a live key: the worker checks it
    try:
        ping = await asyncio.to_thread(lambda: broker.send_task("quorum.ping").get(timeout=120))
        assert ping == "pong"

        account = await register(client)
        exchange_key = body.pop("exchangeKey", None)
        if exchange_key is not None:
            linked = await client.post("/v1/exchange-keys", headers=account.headers, json={
                "label": "main", "exchange": "bybit", "apiKey": exchange_key[0], "secret": exchange_key[1]})
            assert linked.status_code == 201, linked.text
            body["exchangeKeyId"] = linked.json()["id"]
        created = await client.post("/v1/bots", headers=account.headers, json={
            **body, "timeframes": ["5m", "1h"], "brain": "gpt", "cycleIntervalSeconds": INTERVAL,
            "leverage": 1, "riskPerTradePct": 1, "maxOpenPositions": 1,
        })
        assert created.status_code == 201, created.text
        bot_id = uuid.UUID(created.json()["id"])
        assert (await client.post(f"/v1/bots/{bot_id}/start", headers=account.headers)).status_code == 200
        tenant = uuid.UUID((await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"])
        bot = made(tenant, bot_id, env)

        async def cycles() -> dict[int, str]:
            async with TenantScope.of(tenant).session(database) as session:
                rows = await session.execute(select(Cycle.slot, Cycle.status).where(Cycle.bot_id == bot_id))
                return dict(rows.all())

        async def orders() -> list[Order]:
            async with TenantScope.of(tenant).session(database) as session:
                return list((await session.scalars(select(Order).where(Order.bot_id == bot_id))).all())

        first = slot_of(time.time(), INTERVAL)
        broker.send_task("quorum.run_cycles", args=[[[str(tenant), str(bot_id), first]]])
        await wait_until(bot.caught, 120, "the cycle to wait on the model or the exchange", log)

        if outage == "redis":
            assert chaos_redis.process is not None
            chaos_redis.process.kill()
            chaos_redis.process.wait()
            await asyncio.sleep(OUTAGE_SECONDS)
            chaos_redis.start()  # same port, same data folder
        else:
            await database.dispose()  # the test's own pool would hold dead connections
            await asyncio.to_thread(crash_postgres, chaos_postgres)
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(chaos_postgres.start)

        # The worker consumes again: a later slot's cycle completes. It is sent again every few seconds, as
        # beat's ticks would: until the lock the outage kept from being released expires, it finds it taken.
        # That cycle reconciles what the one caught in the outage left (an order the exchange made whose
        # answer was never stored) and closes it if its worker could not.
        second = first + INTERVAL
        sent_at = 0.0

        async def second_done() -> bool:
            nonlocal sent_at
            try:
                if (await cycles()).get(second) == "completed":
                    return True
            except OSError:
                return False  # PostgreSQL is still recovering
            if time.monotonic() - sent_at > 3:
                broker.send_task("quorum.run_cycles", args=[[[str(tenant), str(bot_id), second]]])
                sent_at = time.monotonic()
            return False
        await wait_until(second_done, 150 + HARD_LIMIT, "a later cycle to complete after the outage", log)
        assert worker.poll() is None, log_tail(log)

        # A redelivered message (its ack was lost with the connection) is a no-op: give it a moment to come.
        await asyncio.sleep(2)
        assert worker.poll() is None, log_tail(log)
        made_orders = await orders()
        statuses = [(o.client_order_id, o.status) for o in made_orders]
        assert len({o.client_order_id for o in made_orders}) == len(made_orders) <= 1, statuses
        assert all(o.status == "filled" for o in made_orders), statuses  # none left unresolved
        if body["mode"] == "live":
            # The exchange made the order once, the database knows it: nothing lost, nothing doubled.
            assert bot.on_exchange() == len(made_orders) == 1, statuses
            assert chaos_bybit.create_calls == 1
        elif (await cycles())[first] == "completed":
            assert len(made_orders) == 1  # the model's open was placed once and filled
        assert set((await cycles()).values()) <= set(FINAL)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
        await database.dispose()
