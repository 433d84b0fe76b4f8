"""A bot that goes silent is noticed: active, yet no cycle completed for three of its intervals (workers down,
the queue stuck, its lock held). Beat runs `watch_bots` every minute.

The bots are found across tenants through `silent_bots` (migration 0011), which returns ids only; each
turn is then written in the bot's tenant scope, guarded so that it happens once: `silent_since` is set only
where it is empty (one alarm per outage, whoever runs the watch and however often) and cleared only where it
is set (one "running again" when a cycle completes). Each turn is an event, pushed to the tenant's phones
and sent to its webhooks and live stream like any other.
"""

from __future__ import annotations

import datetime
import logging
import uuid

import msgspec
from redis.asyncio import Redis
from sqlalchemy import text, update

from quorum.database import Database
from tenants import events
from tenants.events import EventMessage, EventType
from tenants.models import Bot
from tenants.scope import TenantScope
from workers.notify.outbox import SendTask, publish_events

log = logging.getLogger(__name__)
PAGE = 500
_TURNS = text("SELECT tenant_id, bot_id, turn, last_cycle_at FROM silent_bots(:now, :after, :limit)")
_NO_BOT = uuid.UUID(int=0)


class WatchReport(msgspec.Struct, frozen=True):
    silent: int  # bots that went silent in this run
    recovered: int  # silent bots that completed a cycle again


def _silence(interval_seconds: int) -> str:
    minutes = 3 * interval_seconds / 60
    span = f"{minutes / 60:g} hours" if minutes >= 120 else f"{minutes:g} minutes"
    return (f"No trading cycle has completed for {span} (three of its intervals): the bot is not managing its "
            f"positions until it runs again.")


async def _turn(database: Database, tenant_id: uuid.UUID, bot_id: uuid.UUID, turn: str,
                last_cycle_at: datetime.datetime | None, now: datetime.datetime) -> EventMessage | None:
    async with TenantScope.of(tenant_id).session(database) as session:
        if turn == "silent":
            changed = (await session.execute(
                update(Bot).where(Bot.id == bot_id, Bot.is_active, Bot.silent_since.is_(None))
                .values(silent_since=now).returning(Bot.cycle_interval_seconds)
            )).first()
            if changed is None:
                return None
            payload: dict[str, object] = {
                "reason": _silence(changed.cycle_interval_seconds), "intervalSeconds": changed.cycle_interval_seconds,
                "lastCycleAt": last_cycle_at.isoformat() if last_cycle_at else None,
            }
            return await events.record(session, tenant_id, EventType.BOT_SILENT, payload, bot_id)
        changed = (await session.execute(
            update(Bot).where(Bot.id == bot_id, Bot.silent_since.is_not(None))
            .values(silent_since=None).returning(Bot.id)
        )).first()
        if changed is None:
            return None
        payload = {"lastCycleAt": last_cycle_at.isoformat() if last_cycle_at else None}
        return await events.record(session, tenant_id, EventType.BOT_RECOVERED, payload, bot_id)


async def watch_bots(database: Database, redis: Redis, send_task: SendTask,
                     now: datetime.datetime | None = None) -> WatchReport:
    """Mark the bots that went silent and those that came back, each turn once, and tell their users."""
    now = now or datetime.datetime.now(datetime.UTC)
    after, silent, recovered = _NO_BOT, 0, 0
    while True:
        async with TenantScope.of(None).session(database) as session:
            rows = (await session.execute(_TURNS, {"now": now, "after": after, "limit": PAGE})).all()
        messages = []
        for tenant_id, bot_id, turn, last_cycle_at in rows:
            message = await _turn(database, tenant_id, bot_id, turn, last_cycle_at, now)
            if message is not None:
                messages.append(message)
                silent += turn == "silent"
                recovered += turn != "silent"
        await publish_events(redis, messages, send_task)
        if len(rows) < PAGE:
            break
        after = rows[-1][1]
    if silent or recovered:
        log.warning("bot watch", extra={"silent": silent, "recovered": recovered})
    return WatchReport(silent=silent, recovered=recovered)
