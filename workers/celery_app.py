"""The Celery application: Redis as broker, JSON payloads carrying ids only, late acks.

A worker rides out a broker outage: it reconnects for as long as it takes, a cycle in flight finishes (its
outcome is in PostgreSQL, not in the broker), and a message whose ack was lost with the connection comes
back after the visibility timeout, when its finished slot makes it a no-op.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, task_failure, task_postrun, task_prerun, worker_init
from kombu import Queue
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from quorum.logs import configure_logging, propagate_ids_through_celery
from quorum.settings import get_settings
from workers import metrics


class _BrokerChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, object]:
        # After a lost connection the consumer closes the old connection's transport, and the channel still
        # restores or acks its messages through it. kombu then reads the closed transport's client (None) and
        # raises AttributeError, which no error handler expects: the worker exited ("Error on stopping Hub:
        # ... no attribute 'hostname'"). A connection error is what it is, and what the consumer retries.
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("this channel's broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)


class BrokerTransport(kombu_redis.Transport):
    """kombu's Redis transport, whose channels report their closed connection as a connection error."""

    Channel = _BrokerChannel


# Redis sockets: a dead server is noticed in seconds, not when the kernel gives up on the connection.
_REDIS_SOCKETS = {"socket_timeout": 30.0, "socket_connect_timeout": 5.0, "socket_keepalive": True}


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
        broker_transport=f"{__name__}:BrokerTransport",
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # an outage of any length is waited out, never a reason to exit
        broker_transport_options={"visibility_timeout": 3600, "health_check_interval": 10, **_REDIS_SOCKETS},
        # A cycle in flight when the broker goes keeps running: its orders are recorded before they are
        # sent, and cancelling it half way would only leave more to reconcile.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        redis_socket_timeout=_REDIS_SOCKETS["socket_timeout"],
        redis_socket_connect_timeout=_REDIS_SOCKETS["socket_connect_timeout"],
        redis_socket_keepalive=True,
        redis_retry_on_timeout=True,
        redis_backend_health_check_interval=10,
        # A result stored during an outage is retried with back-off (10 ms up to 10 s) for about two minutes.
        result_backend_always_retry=True,
        result_backend_max_retries=20,
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
            # Close-now requests whose worker died before finishing them (workers/close.py).
            "closes-sweep": {"task": "quorum.sweep_closes", "schedule": 15.0, "options": {"expires": 15}},
            # Active bots whose cycles stopped completing, and those back (workers/watch.py).
            "watch-bots": {"task": "quorum.watch_bots", "schedule": 60.0, "options": {"expires": 60}},
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
