"""What a worker process measures, for Prometheus: tasks, cycles, decisions, LLM tokens, exchange errors.

`quorum worker` serves these on WORKER_METRICS_PORT (`serve_worker_metrics`, started by workers/celery_app.py
when the worker starts). The `observe_*` functions are what the code that knows the outcome calls; each is
a few dictionary lookups and an addition, cheap enough for the hot path of a cycle. Every label takes
values from a small closed set (task names, outcomes, brains, actions, models, exchanges, error classes):
never an id, a symbol or a tenant, which would grow the series without bound.

The API's metrics (HTTP, queue depth) are in api/middleware.py and quorum/metrics.py.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

TASK_DURATION = Histogram(
    "quorum_task_duration_seconds",
    "Celery task run time in this worker, by task name and outcome (success, failure, retry, ...)",
    ["task", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120),
)
TASK_FAILURES = Counter(
    "quorum_task_failures", "Celery tasks that raised, by task name and exception class", ["task", "exception"]
)
CYCLE_DURATION = Histogram(
    "quorum_cycle_duration_seconds",
    "Trading cycle run time, by outcome (completed, failed, skipped, locked)",
    ["outcome"],
    # The soft limit is 50 s and the hard one 60 s by default: the top buckets show cycles near them.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 45, 50, 60),
)
DECISIONS = Counter(
    "quorum_decisions",
    "Decisions, by the brain whose proposal reached the risk guard, the action proposed, and whether the guard "
    "vetoed it",
    ["brain", "action", "vetoed"],
)
LLM_TOKENS = Counter("quorum_llm_tokens", "Tokens the LLM reported using, by model and kind", ["model", "kind"])
EXCHANGE_ERRORS = Counter(
    "quorum_exchange_errors",
    "Exchange errors as the adapters classify them, by exchange, kind (error class) and the action it calls for",
    ["exchange", "kind", "action"],
)


def observe_cycle(seconds: float, outcome: str) -> None:
    """One cycle ran for `seconds` and ended `outcome` (its CycleReport.status)."""
    CYCLE_DURATION.labels(outcome).observe(seconds)


def observe_decision(brain: str, action: str, vetoed: bool) -> None:
    """One decision: `brain` (rules, gpt) proposed `action` (WAIT, OPEN_LONG, ...); the guard `vetoed` it or not."""
    DECISIONS.labels(brain, action, "true" if vetoed else "false").inc()


def observe_llm_usage(model: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Tokens one model call used, as the server reported them."""
    if prompt_tokens > 0:
        LLM_TOKENS.labels(model, "prompt").inc(prompt_tokens)
    if completion_tokens > 0:
        LLM_TOKENS.labels(model, "completion").inc(completion_tokens)


def observe_exchange_error(exchange: str | None, kind: str, action: str) -> None:
    """An adapter classified an exchange's failure as `kind` (workers/exchanges/errors.py)."""
    EXCHANGE_ERRORS.labels(exchange or "unknown", kind, action).inc()


# ---- Celery task signals (connected by workers/celery_app.py) ---------------------------------------

_started: dict[str, float] = {}  # task id -> perf_counter at prerun; a thread-pool worker runs many at once


def task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def task_finished(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    if started is None or task is None:
        return
    TASK_DURATION.labels(task.name, (state or "unknown").lower()).observe(time.perf_counter() - started)


def task_failed(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    name = getattr(sender, "name", None) or "unknown"
    TASK_FAILURES.labels(name, type(exception).__name__ if exception is not None else "unknown").inc()


def serve_worker_metrics(port: int) -> None:
    """Serve this process's metrics on http://<any address>:port/metrics (a thread); 0 = off. A port already
    taken is logged, not fatal: the worker's tasks matter more than its metrics."""
    if port <= 0:
        return
    try:
        start_http_server(port, addr="0.0.0.0")  # noqa: S104 - Prometheus scrapes the pod's address
    except OSError as exc:
        log.warning("worker metrics not served", extra={"port": port, "error": str(exc)})
        return
    log.info("worker metrics on port %s", port)
