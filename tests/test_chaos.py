"""Redis dies for a few seconds in the middle of a GPT bot's cycle: the worker rides it out.

Everything is real: a Celery worker process (`quorum worker`), the openai client against the fake OpenAI
server (which holds its answer, so the cycle is waiting on the model when Redis goes), the paper exchange,
PostgreSQL, and a Redis of this module's own (the session's Redis serves every other test and must not die).
Redis is killed with SIGKILL and started again on the same port with the same data folder, as a crashed
and restarted server would be.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from quorum.database import Database, create_app_engine
from quorum.embedded import EmbeddedRedis, free_port
from quorum.settings import Settings
from tenants.models import Cycle, Order
from tenants.scope import TenantScope
from tests.conftest import REPO_ROOT, child_environ, make_settings, register
from tests.fakes.openai_server import FakeOpenAI, completion
from workers.cycle import slot_of
from workers.market.feed import replay_clock
from workers.market.replay import ReplaySource

SYMBOL = "ETH/BTC"
INTERVAL = 3600
OUTAGE_SECONDS = 5.0
FINAL = ("completed", "failed")
HARD_LIMIT = 15.0  # seconds: how long a bot lock that could not be released during the outage holds


@pytest.fixture
def chaos_redis(scratch_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(scratch_dir / f"chaos-redis-{uuid.uuid4().hex[:6]}", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def gpt_answer(action: str, price: float) -> dict[str, object]:
    opening = action == "OPEN_LONG"
    return {
        "action": action, "symbol": SYMBOL, "entry": None,
        "stop_loss": round(price * 0.97, 8) if opening else None,
        "take_profit": round(price * 1.03, 8) if opening else None,
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


async def test_a_worker_rides_out_a_redis_outage_in_the_middle_of_a_gpt_cycle(
    client: AsyncTestClient, settings: Settings, chaos_redis: EmbeddedRedis, fake_openai: FakeOpenAI,
    scratch_dir: Path,
) -> None:
    account = await register(client)
    created = await client.post("/v1/bots", headers=account.headers, json={
        "name": "chaos", "mode": "paper", "symbols": [SYMBOL], "timeframes": ["5m", "1h"], "brain": "gpt",
        "cycleIntervalSeconds": INTERVAL, "leverage": 1, "riskPerTradePct": 1, "maxOpenPositions": 1,
    })
    assert created.status_code == 201, created.text
    bot_id = uuid.UUID(created.json()["id"])
    assert (await client.post(f"/v1/bots/{bot_id}/start", headers=account.headers)).status_code == 200
    tenant = uuid.UUID((await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"])

    replay = ReplaySource()
    price = float(replay.read(SYMBOL, "5m", until_ms=replay_clock(replay, 1.0)()).close[-1])
    # The model holds its answer past the outage's start: the cycle is waiting on it when Redis dies,
    # and goes on (records, publishes, acks) while Redis is still down or just back.
    held = completion(gpt_answer("OPEN_LONG", price))
    held.delay = 3.0
    fake_openai.reply(held)
    fake_openai.default = completion(gpt_answer("WAIT", price))

    chaos = make_settings(settings.database_url, chaos_redis.url)
    env = child_environ(
        chaos, MARKET_DATA="replay", REPLAY_SPEED="1", OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="sk-test", WORKER_METRICS_PORT="0", LOG_LEVEL="DEBUG",
        CYCLE_HARD_TIME_LIMIT_SECONDS=str(HARD_LIMIT), CYCLE_SOFT_TIME_LIMIT_SECONDS=str(HARD_LIMIT - 3),
    )
    log = scratch_dir / f"chaos-worker-{uuid.uuid4().hex[:6]}.log"
    broker = Celery("chaos-test", broker=chaos.redis_url, backend=chaos.redis_url)
    database = Database(create_app_engine(settings))

    async def cycles() -> dict[int, str]:
        async with TenantScope.of(tenant).session(database) as session:
            return dict((await session.execute(select(Cycle.slot, Cycle.status).where(Cycle.bot_id == bot_id))).all())

    async def orders() -> list[Order]:
        async with TenantScope.of(tenant).session(database) as session:
            return list((await session.scalars(select(Order).where(Order.bot_id == bot_id))).all())

    worker = start_worker(env, log)
    try:
        ping = await asyncio.to_thread(lambda: broker.send_task("quorum.ping").get(timeout=120))
        assert ping == "pong"

        first = slot_of(time.time(), INTERVAL)
        broker.send_task("quorum.run_cycles", args=[[[str(tenant), str(bot_id), first]]])
        await wait_until(lambda: fake_openai.calls >= 1, 120, "the cycle to ask the model", log)

        assert chaos_redis.process is not None
        chaos_redis.process.kill()  # mid-cycle: the model has not answered yet
        chaos_redis.process.wait()
        await asyncio.sleep(OUTAGE_SECONDS)
        chaos_redis.start()  # same port, same data folder

        async def first_done() -> bool:
            return (await cycles()).get(first) in FINAL
        await wait_until(first_done, 120, "the cycle caught in the outage to finish or record its failure", log)
        assert worker.poll() is None, log_tail(log)

        # The worker consumes again: a later slot's cycle completes. It is sent again every few seconds, as
        # beat's ticks would: until the lock the outage kept from being released expires, it finds it taken.
        second = first + INTERVAL
        sent_at = 0.0

        async def second_done() -> bool:
            nonlocal sent_at
            if (await cycles()).get(second) == "completed":
                return True
            if time.monotonic() - sent_at > 3:
                broker.send_task("quorum.run_cycles", args=[[[str(tenant), str(bot_id), second]]])
                sent_at = time.monotonic()
            return False
        await wait_until(second_done, 120 + HARD_LIMIT, "a later cycle to complete after Redis came back", log)
        assert worker.poll() is None, log_tail(log)

        # A redelivered message (its ack was lost with the connection) is a no-op: give it a moment to come.
        await asyncio.sleep(2)
        made = await orders()
        assert len({o.client_order_id for o in made}) == len(made) <= 1, [(o.client_order_id, o.status) for o in made]
        if (await cycles())[first] == "completed":
            assert [o.status for o in made] == ["filled"]  # the model's open was placed once and filled
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
