"""Celery tasks. Payloads carry ids only; each task loads what it needs and sets its tenant context itself."""

from __future__ import annotations

import logging
import time

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
