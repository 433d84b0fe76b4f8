"""Close now: one position, a bot's, or everything (panic), from the API to the exchange and back.

Positions are opened by real cycles in this process (`CycleEnv`, a scripted proposal through the real guard);
the close is done by a real Celery worker: the session's (paper bots read the recorded candles there), or
one of the test's own for the live Bybit bot, which the test kills with SIGKILL in the middle of a close.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from celery import Celery
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import select

from quorum.database import Database
from quorum.settings import Settings
from tenants.closes import CloseService
from tenants.models import AuditEvent, Bot, CloseRequest, Event, Order, PaperAccount, Position
from tenants.passwords import PasswordHashing
from tenants.scope import TenantScope
from tenants.vault import LocalMasterKeys, Vault
from tests.conftest import PASSWORD, REPO_ROOT, Account, child_environ, register
from tests.fakes.bybit_v5 import FakeBybitV5, Fault
from tests.test_cycle import Clock, make_env, new_bot, open_long, rows, scripted
from workers.brain.decision import Action, Decision
from workers.close import close_client_order_id
from workers.cycle import CycleEnv
from workers.exchanges.factory import open_trading_exchange
from workers.market.cache import SharedOhlcvCache
from workers.market.feed import REPLAY, MarketFeed, replay_clock
from workers.market.replay import ReplaySource

WIDE = (40.0, 40.0)  # stop and target far away: nothing but the close ends these positions


@pytest.fixture
def clock() -> Clock:
    return Clock(replay_clock(ReplaySource(), 1.0).start_ms + 3_600_000)


async def open_position(client: AsyncTestClient, settings: Settings, database: Database, redis: Redis,
                        clock: Clock, account: Account, slot: int = 1_000) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A paper bot with one open long, opened by a real cycle: (tenant, bot, position)."""
    tenant, bot_id = await new_bot(client, account)
    env = make_env(settings, database, redis, clock, scripted(redis, open_long(*WIDE)))
    report = await env.run(tenant, bot_id, slot)
    assert report.status == "completed" and report.orders == 1, report
    (position,) = await rows(database, tenant, Position, bot_id)
    assert position.status == "open"
    return tenant, bot_id, position.id


async def test_one_position_closes_once_with_a_reduce_only_order_and_a_retry_sends_nothing(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock,
    key_check_worker: Path,
) -> None:
    account = await register(client)
    tenant, bot_id, position_id = await open_position(client, settings, database, redis, clock, account)
    key = {"Idempotency-Key": str(uuid.uuid4()), **account.headers}

    closed = await client.post(f"/v1/positions/{position_id}/close", headers=key)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["scope"], body["status"], body["positions"]) == ("position", "done", 1)
    (result,) = body["results"]
    assert result["status"] == "closed", result
    assert result["positionId"] == str(position_id) and result["botId"] == str(bot_id)

    (position,) = await rows(database, tenant, Position, bot_id)
    entry, close = await rows(database, tenant, Order, bot_id)
    assert (position.status, position.close_reason) == ("closed", "manual")
    assert (close.leg, close.side, close.status, close.reduce_only) == ("close", "sell", "filled", True)
    assert close.amount == entry.filled == position.amount  # the whole position, no more
    assert close.client_order_id == close_client_order_id(bot_id, position_id, position.symbol)
    assert close.client_order_id == result["clientOrderId"] and close.cycle_id is None
    assert result["exitPrice"] == str(position.exit_price) and result["realizedPnl"] == str(position.realized_pnl)
    (paper,) = await rows(database, tenant, PaperAccount, bot_id)
    assert Decimal(paper.balances["BTC"]) == 1 + position.realized_pnl  # the ledger is what the account holds

    # The same key again (a phone that lost the answer): the same request, and nothing is sent.
    again = await client.post(f"/v1/positions/{position_id}/close", headers=key)
    assert again.status_code == 200 and again.json() == body
    assert len(await rows(database, tenant, Order, bot_id)) == 2
    # The key with a different ask is refused, and so is closing what is closed.
    other = await client.post(f"/v1/bots/{bot_id}/close", headers=key, json={})
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"], other.text
    twice = await client.post(f"/v1/positions/{position_id}/close", headers=account.headers)
    assert twice.status_code == 422 and twice.json()["detail"] == "the position is already closed"
    bad_key = await client.post(f"/v1/positions/{position_id}/close", headers={**account.headers,
                                                                               "Idempotency-Key": "a b"})
    assert bad_key.status_code == 422 and bad_key.headers["content-type"].startswith("application/problem+json")

    # Another tenant sees neither the position nor the request.
    stranger = await register(client)
    assert (await client.post(f"/v1/positions/{position_id}/close", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"/v1/closes/{body['id']}", headers=stranger.headers)).status_code == 404
    followed = await client.get(f"/v1/closes/{body['id']}", headers=account.headers)
    assert followed.status_code == 200 and followed.json() == body

    async with TenantScope.of(tenant).session(database) as session:
        kinds = [(e.type, e.payload.get("reason")) for e in (await session.scalars(
            select(Event).where(Event.bot_id == bot_id).order_by(Event.id))).all()]
        audited = (await session.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == uuid.UUID(body["id"])))).all()
    assert ("trade.closed", "manual") in kinds
    assert audited == ["close_requested"]


async def test_panic_needs_the_password_then_closes_every_bot_and_stops_them(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock,
    key_check_worker: Path,
) -> None:
    account = await register(client)
    tenant, first_bot, first = await open_position(client, settings, database, redis, clock, account)
    _, second_bot, second = await open_position(client, settings, database, redis, clock, account, slot=2_000)

    wrong = await client.post("/v1/positions/close-all", headers=account.headers, json={"password": "not it at all"})
    assert wrong.status_code == 403 and "password" in wrong.json()["detail"]
    created = await client.post("/v1/api-keys", headers=account.headers,
                                json={"name": "integrator", "scopes": ["positions:close", "bots:read"]})
    assert created.status_code == 201, created.text
    integrator = {"Authorization": f"Bearer {created.json()['key']}"}
    by_key = await client.post("/v1/positions/close-all", headers=integrator, json={"password": PASSWORD})
    assert by_key.status_code == 403, by_key.text
    for bot_id in (first_bot, second_bot):
        assert [p.status for p in await rows(database, tenant, Position, bot_id)] == ["open"]

    panic = await client.post("/v1/positions/close-all", headers=account.headers, json={"password": PASSWORD})
    assert panic.status_code == 200, panic.text
    body = panic.json()
    assert (body["scope"], body["status"], body["stopBots"]) == ("tenant", "done", True)
    assert sorted(r["positionId"] for r in body["results"]) == sorted([str(first), str(second)])
    assert {r["status"] for r in body["results"]} == {"closed"}
    async with TenantScope.of(tenant).session(database) as session:
        bots = (await session.scalars(select(Bot).where(Bot.id.in_([first_bot, second_bot])))).all()
    assert [b.is_active for b in bots] == [False, False]
    for bot_id in (first_bot, second_bot):
        (position,) = await rows(database, tenant, Position, bot_id)
        assert (position.status, position.close_reason) == ("closed", "manual")
        assert [o.leg for o in await rows(database, tenant, Order, bot_id)] == ["entry", "close"]

    # An integrator's key may close one bot's positions (none are left: an empty, finished answer).
    by_bot = await client.post(f"/v1/bots/{first_bot}/close", headers=integrator, json={"stopBot": True})
    assert by_bot.status_code == 200 and by_bot.json()["results"] == [], by_bot.text
    assert (await client.post(f"/v1/bots/{uuid.uuid4()}/close", headers=integrator, json={})).status_code == 404


async def test_a_close_waits_for_the_running_cycle_of_its_bot(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock,
) -> None:
    """The bot's lock: a close asked while a cycle runs starts only after the cycle is done."""
    account = await register(client)
    tenant, bot_id, position_id = await open_position(client, settings, database, redis, clock, account)
    env = make_env(settings, database, redis, clock, scripted(redis, open_long(*WIDE)))
    order: list[str] = []

    async with env.locks.hold(bot_id) as held:  # what a running cycle holds
        assert held
        service = CloseService(database, PasswordHashing(1), _Direct(env, order), wait_seconds=0.5,
                               retry_after_seconds=60)
        principal = await _principal(client, account)
        asked = asyncio.create_task(service.close_position(principal, position_id, None))
        pending = await asked
        assert pending.status == "pending"  # the worker waits for the lock
        await asyncio.sleep(1.0)
        order.append("cycle done")
    await _Direct.wait_all()
    assert order == ["cycle done", "close done"]
    (position,) = await rows(database, tenant, Position, bot_id)
    assert position.status == "closed"


class _Direct:
    """A CloseGateway that does the request in this process (on `env`), as a worker would."""

    running: list[asyncio.Task[object]] = []

    def __init__(self, env: CycleEnv, order: list[str]) -> None:
        self.env, self.order = env, order

    async def enqueue(self, tenant_id: uuid.UUID, close_id: uuid.UUID) -> None:
        from workers.close import close_request

        async def go() -> object:
            report = await close_request(self.env, tenant_id, close_id)
            self.order.append("close done")
            return report
        _Direct.running.append(asyncio.create_task(go()))

    @classmethod
    async def wait_all(cls) -> None:
        await asyncio.gather(*cls.running)
        cls.running.clear()


async def _principal(client: AsyncTestClient, account: Account):  # noqa: ANN202
    return client.app.state.accounts.principal_from_access_token(account.tokens["accessToken"])


# -- a live Bybit bot, and a worker killed mid-close ---------------------------------------------------------------

SYMBOL = "BTC/USDT:USDT"
HARD_LIMIT = 15.0


def start_worker(settings: Settings, env: dict[str, str], queue: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", "worker", "--queues", queue, "--threads", "4",
             "--name", f"close-{uuid.uuid4().hex[:6]}@%h"],
            env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


class _ToQueue:
    """A CloseGateway sending to the test's own worker."""

    def __init__(self, broker: Celery, queue: str) -> None:
        self.broker, self.queue = broker, queue

    async def enqueue(self, tenant_id: uuid.UUID, close_id: uuid.UUID) -> None:
        self.broker.send_task("quorum.close_positions", args=[str(tenant_id), str(close_id)], queue=self.queue)


async def test_panic_on_bybit_sends_one_reduce_only_order_per_position_even_when_the_worker_is_killed(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, fake_bybit: FakeBybitV5,
    bybit_market_dir: Path, scratch_dir: Path, key_check_worker: Path,
) -> None:
    account = await register(client)
    api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}"
    fake_bybit.add_key(api_key, secret, ips=["203.0.113.9"])
    linked = await client.post("/v1/exchange-keys", headers=account.headers,
                               json={"label": "main", "exchange": "bybit", "apiKey": api_key, "secret": secret})
    assert linked.status_code == 201, linked.text
    tenant, bot_id = await new_bot(client, account, mode="live", exchangeKeyId=linked.json()["id"], symbols=[SYMBOL],
                                   leverage=1, cycleIntervalSeconds=3600)

    # A real cycle opens the position on the fake exchange, through pybit.
    live = msgspec.structs.replace(settings, exchange_api_overrides=f"bybit={fake_bybit.origin}")
    replay = ReplaySource(bybit_market_dir / "ohlcv")
    clock = Clock(replay_clock(replay, 1.0).start_ms + 3_600_000)
    cache = SharedOhlcvCache(redis, replay, key_prefix=f"quorum:test-ohlcv:{uuid.uuid4().hex[:8]}", clock=clock)
    env = CycleEnv(
        database=database, vault=Vault(LocalMasterKeys.from_setting(settings.master_keys)), redis=redis,
        feed=MarketFeed(cache, clock, REPLAY, None), decide=scripted(redis, open_long(*WIDE)),
        open_exchange=functools.partial(open_trading_exchange, database, live),
        send_task=Celery("close-test", broker=settings.redis_url).send_task, soft_time_limit=20, lock_ttl=25,
    )
    report = await env.run(tenant, bot_id, 1_000)
    assert report.status == "completed" and report.orders == 1, report
    env.decide = scripted(redis, lambda inputs: Decision(Action.HOLD, inputs.symbol, 0.5, reasons=("hold",)))
    report = await env.run(tenant, bot_id, 1_001)  # Bybit answers a create with ids only: this books the fill
    assert report.status == "completed" and report.orders == 0, report
    (position,) = await rows(database, tenant, Position, bot_id)
    assert [o.side for o in fake_bybit.orders(api_key)] == ["Buy"]

    queue = f"close-{uuid.uuid4().hex[:8]}"
    worker_env = child_environ(
        settings, EXCHANGE_API_OVERRIDES=f"bybit={fake_bybit.origin}", MARKET_DATA="replay",
        QUORUM_DATA_DIR=str(bybit_market_dir), CYCLE_HARD_TIME_LIMIT_SECONDS=str(HARD_LIMIT),
        CYCLE_SOFT_TIME_LIMIT_SECONDS=str(HARD_LIMIT - 3), LOG_LEVEL="DEBUG",
    )
    broker = Celery("close-test", broker=settings.redis_url)
    service = CloseService(database, PasswordHashing(1), _ToQueue(broker, queue), wait_seconds=0.5,
                           retry_after_seconds=1.0)
    principal = await _principal(client, account)
    key = str(uuid.uuid4())
    log = scratch_dir / f"{queue}.log"
    worker = start_worker(settings, worker_env, queue, log)
    try:
        calls = fake_bybit.create_calls
        fake_bybit.inject("/v5/order/create", Fault.delay(20))  # the close is made; its answer waits
        asked = await service.close_all(principal, PASSWORD, key)
        assert asked.status == "pending"
        await _until(lambda: fake_bybit.create_calls > calls, 90, "the close to reach the exchange", log)
        os.killpg(worker.pid, signal.SIGKILL)  # mid-request: the answer is never stored
        worker.wait(10)
        assert len(fake_bybit.orders(api_key)) == 2  # the close exists on the exchange

        worker = start_worker(settings, worker_env, queue, log)
        again = await service.close_all(principal, PASSWORD, key)  # the phone asks again: handed over again
        assert again.id == asked.id

        async def done() -> bool:
            return (await service.get(principal, asked.id)).status == "done"
        await _until_async(done, 90, "the close request to finish", log)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)

    on_exchange = fake_bybit.orders(api_key)
    assert [(o.side, o.reduce_only) for o in on_exchange] == [("Buy", False), ("Sell", True)]
    assert fake_bybit.create_calls == calls + 1  # sent once, never again
    finished = await service.get(principal, asked.id)
    (result,) = finished.results
    assert result["status"] == "closed" and result["positionId"] == str(position.id), result
    (position,) = await rows(database, tenant, Position, bot_id)
    close = (await rows(database, tenant, Order, bot_id))[-1]
    assert (position.status, position.close_reason) == ("closed", "manual")
    assert close.client_order_id == on_exchange[1].order_link_id and close.exchange_order_id == on_exchange[1].order_id
    # Asked a third time with the same key: the finished answer, and nothing sent.
    third = await service.close_all(principal, PASSWORD, key)
    assert third.status == "done" and fake_bybit.create_calls == calls + 1
    async with TenantScope.of(tenant).session(database) as session:
        stored = await session.get(CloseRequest, asked.id)
    assert stored is not None and stored.finished_at is not None


async def _until(check, seconds: float, what: str, log: Path) -> None:  # noqa: ANN001
    async def wrapped() -> bool:
        return bool(check())
    await _until_async(wrapped, seconds, what, log)


async def _until_async(check, seconds: float, what: str, log: Path) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    lines = log.read_text(errors="replace").splitlines()  # noqa: ASYNC240 - the test has already failed
    tail = "\n".join(line for line in lines if "DEBUG" not in line)[-4000:]
    raise AssertionError(f"timed out waiting for {what}; the worker said:\n{tail}")
