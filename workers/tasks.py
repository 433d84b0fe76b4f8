"""Celery tasks. Payloads carry ids only; each task loads what it needs and sets its tenant context itself."""

from __future__ import annotations

import logging
import uuid

import msgspec

from quorum.settings import get_settings
from workers.celery_app import app

log = logging.getLogger(__name__)


@app.task(name="quorum.ping")
def ping() -> str:
    """Round trip through the broker and a worker: proves the worker runs tasks."""
    return "pong"


@app.task(name="quorum.dispatch", ignore_result=True, acks_late=False)
def dispatch() -> dict[str, object]:
    """Beat's tick: enqueue a `quorum.run_cycle` for every bot that is due."""
    from workers.dispatch import DueCycle
    from workers.dispatch import dispatch as dispatch_due
    from workers.runtime import runtime

    rt = runtime()
    settings = rt.settings

    def send(batch: list[DueCycle]) -> None:
        with app.producer_or_acquire() as producer:
            for item in batch:
                run_cycle.apply_async(
                    args=[str(item.tenant_id), str(item.bot_id), item.slot], producer=producer, ignore_result=True
                )

    report = rt.run(
        dispatch_due(
            rt.database, rt.redis, send,
            stale_after_seconds=settings.cycle_hard_time_limit_seconds + 5,
            chunk_size=settings.dispatch_chunk_size,
        ),
        timeout=60,
    )
    return msgspec.to_builtins(report)


@app.task(name="quorum.run_cycle", ignore_result=True)
def run_cycle(tenant_id: str, bot_id: str, slot: int) -> dict[str, object]:
    """One bot's cycle for one slot, on the process's event loop; a redelivery of a finished slot does nothing."""
    from workers.runtime import runtime

    rt = runtime()

    async def go() -> object:
        env = await rt.cycle_env()
        return await env.run(uuid.UUID(tenant_id), uuid.UUID(bot_id), int(slot))

    report = rt.run(go(), timeout=get_settings().cycle_hard_time_limit_seconds)
    return msgspec.to_builtins(report)


@app.task(name="quorum.check_exchange_key", acks_late=False, time_limit=60, soft_time_limit=45)
def check_exchange_key(tenant_id: str, key_id: str) -> dict[str, object]:
    """Ask the exchange what a just-linked key may do. Arguments are ids; the secret never travels."""
    from workers.key_check import check_exchange_key as check
    from workers.runtime import runtime

    rt = runtime()
    outcome = rt.run(check(rt, uuid.UUID(tenant_id), uuid.UUID(key_id)), timeout=40)
    return msgspec.to_builtins(outcome)
