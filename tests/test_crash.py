"""A worker killed with SIGKILL between sending an order and storing the answer: after a restart, exactly
one order exists on the exchange and the database agrees with it.

Everything is real: a Celery worker process (`quorum worker`), pybit against the signature-checking
fake Bybit v5 server, the openai client against the fake OpenAI server (the GPT brain proposes the
trade, so the worker decides to open without any test hook), PostgreSQL and Redis. The fake Bybit
holds its answer to the order; the test kills the worker while it waits.

The market data is the recorded ETH/BTC 5-minute series at the fake's BTCUSDT price level (`bybit_market_dir`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import select

from quorum.database import Database, create_app_engine
from quorum.settings import Settings
from tenants.models import Cycle, Fill, Order, Position
from tenants.scope import TenantScope
from tests.conftest import REPO_ROOT, child_environ, register
from tests.fakes.bybit_v5 import FakeBybitV5, Fault
from tests.fakes.openai_server import FakeOpenAI, completion
from workers.cycle import slot_of
from workers.dispatch import dispatch
from workers.ledger import ABANDONED
from workers.market.feed import replay_clock
from workers.market.replay import ReplaySource

SYMBOL = "BTC/USDT:USDT"
HARD_LIMIT = 15.0  # seconds: how long the dead worker's bot lock and running cycle stay claimed


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def start_worker(settings: Settings, env: dict[str, str], queue: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", "worker", "--queues", queue, "--threads", "4",
             "--name", f"crash-{uuid.uuid4().hex[:6]}@%h"],
            env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


async def wait_for(predicate, seconds: float, what: str, log: Path) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    lines = log.read_text(errors="replace").splitlines()  # noqa: ASYNC240 - the test has already failed
    tail = "\n".join(line for line in lines if "DEBUG" not in line)[-4000:]  # noqa: ASYNC240 - the test has failed; nothing else runs
    raise AssertionError(f"timed out waiting for {what}; the worker said:\n{tail}")


async def test_sigkill_between_send_and_store_leaves_exactly_one_order(
    client: AsyncTestClient, settings: Settings, fake_bybit: FakeBybitV5, key_check_worker: Path,
    fake_openai: FakeOpenAI, bybit_market_dir: Path, scratch_dir: Path,
) -> None:
    account = await register(client)
    api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}"
    fake_bybit.add_key(api_key, secret, ips=["203.0.113.9"])
    linked = await client.post("/v1/exchange-keys", headers=account.headers,
                               json={"label": "main", "exchange": "bybit", "apiKey": api_key, "secret": secret})
    assert linked.status_code == 201, linked.text
    bot = await client.post("/v1/bots", headers=account.headers, json={
        "name": "live", "mode": "live", "exchangeKeyId": linked.json()["id"], "symbols": [SYMBOL],
        "timeframes": ["5m", "1h"], "brain": "gpt", "cycleIntervalSeconds": 3600, "leverage": 1,
    })
    assert bot.status_code == 201, bot.text
    bot_id = uuid.UUID(bot.json()["id"])
    assert (await client.post(f"/v1/bots/{bot_id}/start", headers=account.headers)).status_code == 200
    tenant = uuid.UUID((await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"])

    # The model proposes a long with a stop 3% under the current replayed price.
    os.environ["QUORUM_DATA_DIR"] = str(bybit_market_dir)
    try:
        replay = ReplaySource(bybit_market_dir / "ohlcv")
        price = float(replay.read(SYMBOL, "5m", until_ms=replay_clock(replay, 1.0)()).close[-1])
    finally:
        del os.environ["QUORUM_DATA_DIR"]
    fake_openai.default = completion({
        "action": "OPEN_LONG", "symbol": SYMBOL, "entry": None, "stop_loss": round(price * 0.97, 1),
        "take_profit": round(price * 1.03, 1), "leverage": 1, "confidence": 0.8, "reasons": ["test"],
    })

    queue = f"crash-{uuid.uuid4().hex[:8]}"
    env = child_environ(
        settings, EXCHANGE_API_OVERRIDES=f"bybit={fake_bybit.origin}", MARKET_DATA="replay",
        QUORUM_DATA_DIR=str(bybit_market_dir), REPLAY_SPEED="1", OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="sk-test", CYCLE_HARD_TIME_LIMIT_SECONDS=str(HARD_LIMIT),
        CYCLE_SOFT_TIME_LIMIT_SECONDS=str(HARD_LIMIT - 3), LOG_LEVEL="DEBUG",
    )
    broker = Celery("crash-test", broker=settings.redis_url)
    log = scratch_dir / f"{queue}.log"
    database = Database(create_app_engine(settings))
    redis = Redis.from_url(settings.redis_url)

    async def orders() -> list[Order]:
        async with TenantScope.of(tenant).session(database) as session:
            return list((await session.scalars(select(Order).where(Order.bot_id == bot_id))).all())

    worker = start_worker(settings, env, queue, log)
    try:
        calls_before = fake_bybit.create_calls
        fake_bybit.inject("/v5/order/create", Fault.delay(20))  # the order is made; its answer waits
        slot = slot_of(time.time(), 3600)  # hourly slots: the restart happens within the same slot
        broker.send_task("quorum.run_cycles", args=[[[str(tenant), str(bot_id), slot]]], queue=queue)

        async def sent() -> bool:
            return fake_bybit.create_calls > calls_before
        await wait_for(sent, 90, "the order to reach the fake exchange", log)
        os.killpg(worker.pid, signal.SIGKILL)  # mid-request: the answer is never stored
        worker.wait(10)

        (intent,) = await orders()
        assert intent.status == "intent" and intent.exchange_order_id is None  # stored before it was sent
        assert len(fake_bybit.orders(api_key)) == 1

        # The resumed cycle finds the long open: the model holds it (were it to propose the open again, the
        # validator would refuse that, and the rules brain's fallback would decide from the replayed market).
        fake_openai.default = completion({
            "action": "HOLD", "symbol": SYMBOL, "entry": None, "stop_loss": None, "take_profit": None,
            "leverage": 1, "confidence": 0.6, "reasons": ["test: keep it"],
        })
        worker = start_worker(settings, env, queue, log)
        await asyncio.sleep(HARD_LIMIT + 1)  # the dead worker's lock and claim go stale

        def send(batch: list) -> None:
            for item in batch:
                if item.bot_id == bot_id:
                    broker.send_task("quorum.run_cycles", args=[[[str(item.tenant_id), str(item.bot_id), item.slot]]],
                                     queue=queue)
        report = await dispatch(database, redis, send, stale_after_seconds=HARD_LIMIT, chunk_size=500)
        assert report.due >= 1

        async def resolved() -> bool:
            async with TenantScope.of(tenant).session(database) as session:
                statuses = (await session.scalars(select(Cycle.status).where(Cycle.bot_id == bot_id))).all()
            return [o.status for o in await orders()] == ["filled"] and "running" not in statuses
        await wait_for(resolved, 90, "the resumed cycle to resolve the order", log)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)

    on_exchange = fake_bybit.orders(api_key)
    assert len(on_exchange) == 1 and fake_bybit.create_calls == calls_before + 1  # sent once, never again
    (order,) = await orders()
    assert order.exchange_order_id == on_exchange[0].order_id
    assert order.client_order_id == on_exchange[0].order_link_id
    assert order.filled == on_exchange[0].qty
    async with TenantScope.of(tenant).session(database) as session:
        fills = (await session.scalars(select(Fill).where(Fill.bot_id == bot_id))).all()
        positions = (await session.scalars(select(Position).where(Position.bot_id == bot_id))).all()
        cycles = (await session.scalars(select(Cycle).where(Cycle.bot_id == bot_id))).all()
    assert len(fills) == 1 and fills[0].amount == order.filled
    assert [(p.status, p.side, p.amount) for p in positions] == [("open", "long", order.filled)]
    # Resumed in its own slot, or (when the minute turned meanwhile) reconciled by the next slot's cycle,
    # which closes the dead one as abandoned.
    outcome = sorted((c.slot, c.status, c.attempts, c.error) for c in cycles)
    assert outcome[-1][1] == "completed", outcome
    if len(outcome) == 1:
        assert outcome[0][2] == 2, outcome
    else:
        assert len(outcome) == 2 and outcome[0][1:] == ("failed", 1, ABANDONED), outcome
    await redis.aclose()
    await database.dispose()
