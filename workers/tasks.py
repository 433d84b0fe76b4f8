"""Celery tasks. Payloads carry ids only; each task loads what it needs and sets its tenant context itself."""

from __future__ import annotations

import logging
import time
import uuid

import msgspec
import redis

from quorum.settings import get_settings
from workers.celery_app import app

log = logging.getLogger(__name__)
LAST_DISPATCH_KEY = "quorum:dispatch:last_tick"


@app.task(name="quorum.ping")
def ping() -> str:
    """Round trip through the broker and a worker: proves the worker runs tasks."""
    return "pong"


@app.task(name="quorum.dispatch", ignore_result=True)
def dispatch() -> None:
    """Beat's tick: records when it ran (admin status reads it). Enqueueing due bot cycles lands with the bots."""
    client = redis.Redis.from_url(get_settings().redis_url)
    try:
        client.set(LAST_DISPATCH_KEY, str(time.time()))
    finally:
        client.close()
    log.info("dispatcher tick")


@app.task(name="quorum.check_exchange_key", acks_late=False, time_limit=60, soft_time_limit=45)
def check_exchange_key(tenant_id: str, key_id: str) -> dict[str, object]:
    """Ask the exchange what a just-linked key may do. Arguments are ids; the secret never travels."""
    from workers.key_check import check_exchange_key as check
    from workers.runtime import runtime

    rt = runtime()
    outcome = rt.run(check(rt, uuid.UUID(tenant_id), uuid.UUID(key_id)), timeout=40)
    return msgspec.to_builtins(outcome)
