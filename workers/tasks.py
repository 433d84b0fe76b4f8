"""Celery tasks. Payloads carry ids only; each task loads what it needs and sets its tenant context itself."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Sequence

import msgspec
from celery.signals import worker_init

from quorum.settings import get_settings
from workers.celery_app import app
from workers.dispatch import RUN_CYCLES_TASK, DueCycle
from workers.runtime import runtime

log = logging.getLogger(__name__)


@worker_init.connect
def _warm_up(**_: object) -> None:
    """Build the process's trading runtime before taking tasks: importing ccxt, pybit, openai and numpy
    takes seconds, which must not be charged to the first cycle's time limit."""
    rt = runtime()
    try:
        rt.run(rt.cycle_env(), timeout=60)
    except Exception:  # e.g. Redis not up yet: the first cycle builds it instead
        logging.getLogger(__name__).warning("trading runtime not built at start", exc_info=True)


@app.task(name="quorum.ping")
def ping() -> str:
    """Round trip through the broker and a worker: proves the worker runs tasks."""
    return "pong"


def enqueue_cycles(due: Sequence[DueCycle], batch_size: int) -> None:
    """Put due cycles on the broker, `batch_size` to a `quorum.run_cycles` message (blocks: call it off the loop)."""
    with app.producer_or_acquire() as producer:
        for start in range(0, len(due), batch_size):
            batch = msgspec.to_builtins(list(due[start:start + batch_size]))  # [[tenant, bot, slot], ...]
            run_cycles.apply_async(args=[batch], producer=producer, ignore_result=True)


@app.task(name="quorum.dispatch", ignore_result=True, acks_late=False)
def dispatch() -> dict[str, object]:
    """Beat's tick: enqueue the cycle of every bot that is due."""
    from workers.dispatch import dispatch as dispatch_due
    rt = runtime()
    settings = rt.settings
    report = rt.run(
        dispatch_due(
            rt.database, rt.redis, functools.partial(enqueue_cycles, batch_size=settings.cycle_batch_size),
            stale_after_seconds=settings.cycle_hard_time_limit_seconds + 5,
            chunk_size=settings.dispatch_chunk_size,
        ),
        timeout=60,
    )
    return msgspec.to_builtins(report)


@app.task(name="quorum.watch_bots", ignore_result=True, acks_late=False)
def watch_bots() -> dict[str, int]:
    """Beat's watch: bots that went silent (no cycle completed for three intervals) and those back; each once."""
    from workers.notify.tasks import send_task
    from workers.watch import watch_bots as watch

    rt = runtime()
    return msgspec.to_builtins(rt.run(watch(rt.database, rt.redis, send_task), timeout=60))


@app.task(name=RUN_CYCLES_TASK, ignore_result=True)
def run_cycles(cycles: list[list[object]]) -> list[dict[str, object]]:
    """Cycles of several bots, each `[tenant_id, bot_id, slot]`, side by side on the process's event loop.

    Each is a cycle on its own, exactly as if it had a message to itself: its own lock, claim, time limit
    and failure, so a slow or failing bot delays or breaks none of the others. A redelivered message
    (its worker died) runs only the cycles that had not finished: a finished (bot, slot) is a no-op."""
    rt = runtime()

    due = msgspec.convert(cycles, list[DueCycle])

    async def go() -> list[object]:
        env = await rt.cycle_env()
        return await asyncio.gather(*(env.run(c.tenant_id, c.bot_id, c.slot) for c in due))

    reports = rt.run(go(), timeout=get_settings().cycle_hard_time_limit_seconds)
    return [msgspec.to_builtins(report) for report in reports]


CLOSE_TASK = "quorum.close_positions"


@app.task(name=CLOSE_TASK, ignore_result=True)
def close_positions(tenant_id: str, close_id: str) -> dict[str, object]:
    """Close now: do close request `close_id` (tenants/closes.py stored it). Ids only, like every task; the
    request may be done twice (a sweep after a lost worker), which sends nothing more (workers/close.py)."""
    from workers.close import close_request

    rt = runtime()

    async def go() -> object:
        return await close_request(await rt.cycle_env(), uuid.UUID(tenant_id), uuid.UUID(close_id))

    # Each bot waits at most its lock's life for a cycle to finish, then has its soft limit to close.
    limit = rt.settings.cycle_hard_time_limit_seconds + rt.settings.cycle_soft_time_limit_seconds + 10
    return msgspec.to_builtins(rt.run(go(), timeout=limit))


@app.task(name="quorum.sweep_closes", ignore_result=True, acks_late=False)
def sweep_closes() -> int:
    """Beat: close requests still pending long after they were handed to a worker (it died) are handed again."""
    from workers.close import sweep_closes as sweep

    rt = runtime()

    def enqueue(tenant_id: uuid.UUID, close_id: uuid.UUID) -> None:
        app.send_task(CLOSE_TASK, args=[str(tenant_id), str(close_id)], ignore_result=True)

    return rt.run(sweep(rt.database, enqueue, older_than_seconds=rt.settings.close_retry_after_seconds), timeout=60)


@app.task(name="quorum.check_exchange_key", acks_late=False, time_limit=60, soft_time_limit=45)
def check_exchange_key(tenant_id: str, key_id: str) -> dict[str, object]:
    """Ask the exchange what a just-linked key may do. Arguments are ids; the secret never travels."""
    from workers.key_check import check_exchange_key as check
    rt = runtime()
    outcome = rt.run(check(rt, uuid.UUID(tenant_id), uuid.UUID(key_id)), timeout=40)
    return msgspec.to_builtins(outcome)
