"""The Celery application: Redis as broker, JSON payloads carrying ids only, late acks."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, task_failure, task_postrun, task_prerun, worker_init
from kombu import Queue

from quorum.logs import configure_logging, propagate_ids_through_celery
from quorum.settings import get_settings
from workers import metrics


def create_celery() -> Celery:
    settings = get_settings()
    app = Celery("quorum", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        task_acks_late=True,  # a task lost with its worker is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule={
            "dispatch": {
                "task": "quorum.dispatch",
                "schedule": settings.dispatch_interval_seconds,
                # A tick nobody ran in time is worthless: the next one looks at the bots again.
                "options": {"expires": settings.dispatch_interval_seconds},
            },
            # Events and webhook deliveries committed but never enqueued (workers/notify/tasks.py).
            "notifications-sweep": {"task": "quorum.sweep_notifications", "schedule": 60.0, "options": {"expires": 60}},
            # Yesterday's summary per tenant, once (workers/notify/summary.py); a run finding nothing due is one query.
            "daily-summaries": {"task": "quorum.daily_summaries", "schedule": 600.0, "options": {"expires": 600}},
        },
        # Cycles have their own queue, so a backlog of them never delays the dispatcher, key checks
        # or notifications; a worker consumes both unless told otherwise (`quorum worker --queues`).
        task_queues=[Queue("celery"), Queue("cycles")],
        task_default_queue="celery",
        task_routes={"quorum.run_cycles": {"queue": "cycles"}},
        include=["workers.tasks", "workers.notify.tasks"],
    )
    return app


@setup_logging.connect
def _configure_logging(**_: object) -> None:
    settings = get_settings()
    configure_logging(settings.effective_log_format, settings.log_level)


app = create_celery()
propagate_ids_through_celery()  # a task's log lines carry the request or cycle id that enqueued it
task_prerun.connect(metrics.task_started, weak=False)
task_postrun.connect(metrics.task_finished, weak=False)
task_failure.connect(metrics.task_failed, weak=False)


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    metrics.serve_worker_metrics(get_settings().worker_metrics_port)
