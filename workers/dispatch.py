"""Beat's tick: find the bots that are due and enqueue each one's (tenant, bot, slot), a batch of them
to a `quorum.run_cycles` message (workers/tasks.py: one message per cycle would cost the worker more
than most cycles do).

The query spans tenants through one SECURITY DEFINER function (`due_bot_cycles`, migration 0004)
that returns ids only; payloads carry those ids and nothing else. A (bot, slot) is enqueued at most
once per hard time limit (a Redis marker), so ticks that come faster than cycles finish do not pile up
duplicates; a cycle a dead worker left running is due again once it has been silent that long.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import uuid
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis
from sqlalchemy import text

from quorum.database import Database
from tenants.admin import DISPATCH_LAST_TICK_KEY as LAST_DISPATCH_KEY  # admin status reads it
from tenants.scope import TenantScope

log = logging.getLogger(__name__)
RUN_CYCLES_TASK = "quorum.run_cycles"
_DUE = text("SELECT tenant_id, bot_id, slot FROM due_bot_cycles(:now, :stale, :after, :limit)")


class DueCycle(msgspec.Struct, frozen=True, array_like=True):
    tenant_id: uuid.UUID
    bot_id: uuid.UUID
    slot: int


class DispatchReport(msgspec.Struct, frozen=True):
    due: int
    enqueued: int
    seconds: float


async def due_cycles(
    database: Database, now: datetime.datetime, stale_after_seconds: float, chunk_size: int
) -> list[list[DueCycle]]:
    """Every due (bot, slot), in chunks of `chunk_size`, read page by page in bot id order."""
    stale = now - datetime.timedelta(seconds=stale_after_seconds)
    chunks: list[list[DueCycle]] = []
    after = uuid.UUID(int=0)
    while True:
        async with TenantScope.of(None).session(database) as session:
            params = {"now": now, "stale": stale, "after": after, "limit": chunk_size}
            rows = (await session.execute(_DUE, params)).all()
        if not rows:
            return chunks
        chunks.append([DueCycle(r.tenant_id, r.bot_id, r.slot) for r in rows])
        if len(rows) < chunk_size:
            return chunks
        after = rows[-1].bot_id


async def dispatch(
    database: Database,
    redis: Redis,
    send: Callable[[list[DueCycle]], None],
    *,
    stale_after_seconds: float,
    chunk_size: int,
    now: datetime.datetime | None = None,
) -> DispatchReport:
    """Enqueue the due cycles not already enqueued; `send` puts one chunk on the broker."""
    started = time.perf_counter()
    now = now or datetime.datetime.now(datetime.UTC)
    due = enqueued = 0
    marker_ttl = max(int(stale_after_seconds), 1)
    for chunk in await due_cycles(database, now, stale_after_seconds, chunk_size):
        due += len(chunk)
        async with redis.pipeline(transaction=False) as pipe:
            for item in chunk:
                pipe.set(f"quorum:dispatched:{item.bot_id}:{item.slot}", "1", nx=True, ex=marker_ttl)
            fresh = await pipe.execute()
        batch = [item for item, new in zip(chunk, fresh, strict=True) if new]
        if batch:
            await asyncio.to_thread(send, batch)  # publishing blocks; cycles share this loop
            enqueued += len(batch)
    await redis.set(LAST_DISPATCH_KEY, str(time.time()))
    report = DispatchReport(due, enqueued, time.perf_counter() - started)
    log.info("dispatcher tick", extra={"due": due, "enqueued": enqueued, "seconds": round(report.seconds, 3)})
    return report
