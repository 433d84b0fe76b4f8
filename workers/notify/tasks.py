"""Celery tasks of notifications: ids in, work on the worker process's event loop (workers/runtime.py).

    quorum.deliver_event(tenant_id, event_id)        enqueued by workers/notify/outbox.py after commit
    quorum.deliver_webhook(tenant_id, delivery_id)   one attempt; re-enqueued with a countdown to retry
    quorum.retry_push(tenant_id, event_id, device_ids, attempt)
    quorum.sweep_notifications()                     beat: what was committed but never enqueued
    quorum.daily_summaries()                         beat: yesterday's summary, once per tenant

Sending never runs inside a trading cycle: a slow FCM or webhook endpoint delays only these tasks.
"""

from __future__ import annotations

import datetime
import logging
import threading
import uuid

from workers.celery_app import app
from workers.notify import delivery, summary, webhooks
from workers.notify.outbox import DELIVER_TASK
from workers.notify.push import FcmSender
from workers.runtime import WorkerRuntime, runtime

log = logging.getLogger(__name__)

DELIVER_WEBHOOK_TASK = "quorum.deliver_webhook"
RETRY_PUSH_TASK = "quorum.retry_push"
SWEEP_TASK = "quorum.sweep_notifications"
SWEEP_INTERVAL_SECONDS = 60.0  # beat_schedule entry, see workers/celery_app.py
DAILY_SUMMARIES_TASK = "quorum.daily_summaries"
PUSH_RETRIES = 3


class NotifyEnv:
    """The clients notification tasks share in one worker process."""

    def __init__(self, rt: WorkerRuntime) -> None:
        self.rt = rt
        self.push = FcmSender.from_settings(rt.settings)
        self.poster = webhooks.WebhookPoster(allow_private=not rt.settings.is_production)


_env: NotifyEnv | None = None
_lock = threading.Lock()


def notify_env() -> NotifyEnv:
    global _env
    with _lock:
        if _env is None:
            _env = NotifyEnv(runtime())
        return _env


def send_task(name: str, args: list[str]) -> object:
    return app.send_task(name, args=args, ignore_result=True)


@app.task(name=DELIVER_TASK, bind=True, ignore_result=True, max_retries=5)
def deliver_event(self, tenant_id: str, event_id: str) -> None:  # noqa: ANN001 - Celery's bound task
    """Push an event to the tenant's phones and hand it to its webhooks, once."""
    env = notify_env()
    try:
        report = env.rt.run(
            delivery.deliver_event(env.rt.database, env.push, uuid.UUID(tenant_id), uuid.UUID(event_id)), timeout=180
        )
    except Exception as exc:
        raise self.retry(exc=exc, countdown=10 * 3**self.request.retries) from exc
    for delivery_id in report.webhooks:
        deliver_webhook.apply_async(args=[tenant_id, delivery_id])
    if report.retry_devices:
        retry_push.apply_async(args=[tenant_id, event_id, list(report.retry_devices), 1], countdown=30)


@app.task(name=DELIVER_WEBHOOK_TASK, ignore_result=True)
def deliver_webhook(tenant_id: str, delivery_id: str) -> str:
    """One attempt at a webhook delivery; a failure schedules the next with exponential backoff."""
    env = notify_env()
    result = env.rt.run(
        webhooks.attempt_delivery(env.rt.database, env.rt.vault, env.rt.redis, env.poster, uuid.UUID(tenant_id),
                                  uuid.UUID(delivery_id), send_task),
        timeout=60,
    )
    if result.retry_in is not None:
        deliver_webhook.apply_async(args=[tenant_id, delivery_id], countdown=result.retry_in)
    return result.status


@app.task(name=RETRY_PUSH_TASK, ignore_result=True)
def retry_push(tenant_id: str, event_id: str, device_ids: list[str], attempt: int) -> None:
    env = notify_env()
    report = env.rt.run(
        delivery.push_to_devices(env.rt.database, env.push, uuid.UUID(tenant_id), uuid.UUID(event_id),
                                 [uuid.UUID(d) for d in device_ids]),
        timeout=120,
    )
    if report.retry_devices and attempt < PUSH_RETRIES:
        retry_push.apply_async(args=[tenant_id, event_id, list(report.retry_devices), attempt + 1],
                               countdown=30 * 4**attempt)


@app.task(name=SWEEP_TASK, ignore_result=True, acks_late=False)
def sweep_notifications() -> dict[str, int]:
    """Enqueue events and webhook deliveries that were committed but whose task never ran; erase expired
    previous webhook secrets."""
    env = notify_env()
    report = env.rt.run(
        delivery.sweep(
            env.rt.database,
            lambda tenant_id, event_id: deliver_event.apply_async(args=[tenant_id, event_id]),
            lambda tenant_id, delivery_id: deliver_webhook.apply_async(args=[tenant_id, delivery_id]),
        ),
        timeout=60,
    )
    return {"events": report.events, "webhooks": report.webhooks, "secretsDropped": report.secrets_dropped}


@app.task(name=DAILY_SUMMARIES_TASK, ignore_result=True, acks_late=False)
def daily_summaries() -> dict[str, object]:
    """Record the last ended UTC day's summary of every tenant whose bots were active; each once."""
    env = notify_env()
    day = summary.day_to_summarise(datetime.datetime.now(datetime.UTC))
    report = env.rt.run(summary.record_daily_summaries(env.rt.database, env.rt.redis, send_task, day),
                        timeout=summary.RUN_SECONDS + 60)
    return {"day": str(report.day), "recorded": report.recorded, "complete": report.complete}
