"""Structured logs: JSON lines in production, readable lines in development; each carries its request or cycle id.

The ids also travel with the Celery tasks a request or cycle enqueues (`propagate_ids_through_celery`),
so a worker's log lines for that task carry the id of the request or cycle that caused it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
cycle_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("cycle_id", default=None)

# Celery message headers that carry the ids from the process that enqueues a task to the one running it.
TASK_ID_HEADERS: dict[str, contextvars.ContextVar[str | None]] = {
    "quorum_request_id": request_id_var,
    "quorum_cycle_id": cycle_id_var,
}
_MAX_ID_LENGTH = 128

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "cycle_id"}


class ContextFilter(logging.Filter):
    """Stamps every record with the ids of the request or cycle it belongs to."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.cycle_id = cycle_id_var.get()
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "cycle_id"):
            if getattr(record, key, None):
                entry[key] = getattr(record, key)
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in ("request_id", "cycle_id") if getattr(record, k, None))
        extras = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.name}: "
        line += " ".join(p for p in (record.getMessage(), extras, f"[{ids}]" if ids else "") if p)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stamp_task_headers(headers: dict[str, Any] | None = None, **_: object) -> None:
    """Celery's `before_task_publish`: the current request and cycle ids go into the task's message headers."""
    if headers is None:
        return
    for name, var in TASK_ID_HEADERS.items():
        value = var.get()
        if value is not None:
            headers.setdefault(name, value)


# Tokens of the ids a running task set, by task id: a thread-pool worker runs several tasks at once.
_task_tokens: dict[str, list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]]] = {}


def bind_task_ids(task_id: str | None = None, task: Any = None, **_: object) -> None:
    """Celery's `task_prerun`: the task's log lines (and the tasks it enqueues) carry the ids it was sent with."""
    request = getattr(task, "request", None)
    tokens = []
    for name, var in TASK_ID_HEADERS.items():
        value = getattr(request, name, None)
        value = value if isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH else None
        tokens.append((var, var.set(value)))
    if task_id is not None:
        _task_tokens[task_id] = tokens


def unbind_task_ids(task_id: str | None = None, **_: object) -> None:
    """Celery's `task_postrun`: the thread goes back to the ids it had before the task."""
    for var, token in reversed(_task_tokens.pop(task_id or "", [])):
        try:
            var.reset(token)
        except ValueError:  # set in another context: clear it instead
            var.set(None)


def propagate_ids_through_celery() -> None:
    """Connect the three Celery signals above in this process (the API's and the workers'); idempotent."""
    from celery import signals

    signals.before_task_publish.connect(stamp_task_headers, weak=False, dispatch_uid="quorum.logs.stamp")
    signals.task_prerun.connect(bind_task_ids, weak=False, dispatch_uid="quorum.logs.bind")
    signals.task_postrun.connect(unbind_task_ids, weak=False, dispatch_uid="quorum.logs.unbind")
