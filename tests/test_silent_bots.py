"""A bot that goes silent is noticed (workers/watch.py): active, yet no cycle completed for three of its
intervals. Flagged on the bot once per outage, an event, a push to its users' phones; a completed cycle clears it.

Real PostgreSQL (the `silent_bots` window across tenants, each turn in the tenant's scope), real Redis, and the
push through the session's Celery worker, firebase-admin and the fake FCM.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path

from celery import Celery
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import select

from quorum.database import Database
from quorum.settings import Settings
from tenants.models import Bot, Cycle, Event
from tenants.scope import TenantScope
from tests.conftest import Account, eventually, register
from tests.fakes.fcm import FakeFcm
from workers.watch import watch_bots

BOT = {"name": "watched", "mode": "paper", "symbols": ["ETH/BTC"], "timeframes": ["15m", "1h"],
       "cycleIntervalSeconds": 60}


async def _started_bot(client: AsyncTestClient, account: Account, interval: int = 60) -> uuid.UUID:
    created = await client.post("/v1/bots", headers=account.headers, json={**BOT, "cycleIntervalSeconds": interval})
    assert created.status_code == 201, created.text
    bot_id = uuid.UUID(created.json()["id"])
    assert (await client.post(f"/v1/bots/{bot_id}/start", headers=account.headers)).status_code == 200
    return bot_id


async def _tenant(client: AsyncTestClient, account: Account) -> uuid.UUID:
    return uuid.UUID((await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"])


async def _started_at(database: Database, tenant: uuid.UUID, bot_id: uuid.UUID) -> datetime.datetime:
    async with TenantScope.of(tenant).session(database) as session:
        started = await session.scalar(select(Bot.started_at).where(Bot.id == bot_id))
    assert started is not None
    return started


async def _events(database: Database, tenant: uuid.UUID, bot_id: uuid.UUID) -> list[str]:
    async with TenantScope.of(tenant).session(database) as session:
        rows = await session.scalars(select(Event.type).where(Event.bot_id == bot_id).order_by(Event.id))
        return [t for t in rows if t.startswith("bot.silent") or t.startswith("bot.recovered")]


async def test_a_silent_bot_is_flagged_once_pushed_and_cleared_by_its_next_cycle(
    client: AsyncTestClient, settings: Settings, database: Database, fake_fcm: FakeFcm, key_check_worker: Path,
) -> None:
    account, neighbour = await register(client), await register(client)
    phone = f"fcm-{uuid.uuid4().hex}"
    assert (await client.post("/v1/devices", headers=account.headers,
                              json={"platform": "ios", "token": phone})).status_code == 200
    tenant, other = await _tenant(client, account), await _tenant(client, neighbour)
    bot_id = await _started_bot(client, account)
    hourly = await _started_bot(client, neighbour, interval=3600)  # three hours to go before it is silent
    started = await _started_at(database, tenant, bot_id)
    redis, celery = Redis.from_url(settings.redis_url), Celery("watch-test", broker=settings.redis_url)

    async def watch(after: float) -> tuple[int, int]:
        report = await watch_bots(database, redis, lambda name, args: celery.send_task(name, args=args),
                                  now=started + datetime.timedelta(seconds=after))
        return report.silent, report.recovered

    try:
        # Counted from the start: two intervals and a bit are not an outage, three are.
        await watch(170)
        assert await _events(database, tenant, bot_id) == []
        await watch(185)
        await watch(245)  # the watch runs every minute: the same outage is told once
        assert await _events(database, tenant, bot_id) == ["bot.silent"]
        view = (await client.get(f"/v1/bots/{bot_id}", headers=account.headers)).json()
        assert view["silentSince"] is not None and view["active"] is True
        listed = (await client.get("/v1/bots", headers=account.headers)).json()["items"]
        assert [b["silentSince"] is not None for b in listed if b["id"] == str(bot_id)] == [True]
        assert (await client.get(f"/v1/bots/{hourly}", headers=neighbour.headers)).json()["silentSince"] is None
        assert await _events(database, other, hourly) == []

        await eventually(lambda: fake_fcm.sent_to(phone), within=60)
        [pushed] = fake_fcm.sent_to(phone)
        assert pushed["notification"]["title"] == "watched: Bot not running"
        assert "3 minutes" in pushed["notification"]["body"]

        # A cycle completes again: the next watch clears the flag and says so, once.
        finished = started + datetime.timedelta(seconds=250)
        async with TenantScope.of(tenant).session(database) as session:
            session.add(Cycle(tenant_id=tenant, bot_id=bot_id, slot=int(finished.timestamp()) // 60 * 60,
                              status="completed", attempts=1, finished_at=finished))
        await watch(260)
        await watch(270)
        assert await _events(database, tenant, bot_id) == ["bot.silent", "bot.recovered"]
        assert (await client.get(f"/v1/bots/{bot_id}", headers=account.headers)).json()["silentSince"] is None
        await eventually(lambda: len(fake_fcm.sent_to(phone)) == 2, within=60)
    finally:
        await redis.aclose()
        celery.close()


async def test_a_stopped_bot_is_not_silent_and_a_restart_counts_afresh(
    client: AsyncTestClient, settings: Settings, database: Database,
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    bot_id = await _started_bot(client, account)
    started = await _started_at(database, tenant, bot_id)
    redis = Redis.from_url(settings.redis_url)
    sent: list[tuple[str, list[str]]] = []
    try:
        await watch_bots(database, redis, lambda name, args: sent.append((name, args)),
                         now=started + datetime.timedelta(seconds=200))
        assert await _events(database, tenant, bot_id) == ["bot.silent"]
        assert (await client.post(f"/v1/bots/{bot_id}/stop", headers=account.headers)).json()["silentSince"] is None
        await watch_bots(database, redis, lambda name, args: sent.append((name, args)),
                         now=started + datetime.timedelta(seconds=900))
        assert await _events(database, tenant, bot_id) == ["bot.silent"]  # stopped: nothing to watch
        restarted = (await client.post(f"/v1/bots/{bot_id}/start", headers=account.headers)).json()
        assert restarted["silentSince"] is None
        assert await _started_at(database, tenant, bot_id) > started
    finally:
        await redis.aclose()
