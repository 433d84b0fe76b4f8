"""Prometheus plumbing for the API: one /metrics answer across every uvicorn worker process, and the
Celery queue depths read from Redis at scrape time.

`quorum serve` gives its worker processes a fresh PROMETHEUS_MULTIPROC_DIR (api/serve.py):
prometheus_client then keeps each process's values in a file there, and any process answering /metrics
adds them all up (`render`). The metrics themselves live beside what they measure: HTTP in
api/middleware.py; tasks, cycles, decisions, LLM tokens and exchange errors in workers/metrics.py.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Celery on Redis keeps each queue as a list named after it (workers/celery_app.py declares these two).
CELERY_QUEUES = ("celery", "cycles")
QUEUE_DEPTH_TIMEOUT_SECONDS = 0.5  # well inside Prometheus' scrape timeout (10 s by default)
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def _multiprocess_path() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _forget_dead_processes(path: str) -> None:
    """Requests in flight of processes that are gone stop counting (their counters and histograms stay):
    uvicorn replaces a worker that crashed, and one that stopped gracefully has none left anyway."""
    for name in os.listdir(path):
        found = _LIVE_GAUGE_FILE.match(name)
        if found and not _alive(int(found.group(1))):
            mark_process_dead(int(found.group(1)), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def read_queue_depths(redis: Any, queues: Sequence[str] = CELERY_QUEUES) -> dict[str, int] | None:
    """Tasks waiting in each Celery queue (LLEN), or None when Redis does not answer in time."""
    try:
        async with asyncio.timeout(QUEUE_DEPTH_TIMEOUT_SECONDS):
            pipe = redis.pipeline(transaction=False)
            for queue in queues:
                pipe.llen(queue)
            depths = await pipe.execute()
    except Exception:  # a scrape must answer whatever Redis does; quorum_broker_up says it did not
        return None
    return {queue: int(depth) for queue, depth in zip(queues, depths, strict=True)}


class QueueDepthCollector:
    """The queue depths read for this scrape, as gauges; while Redis is out, only `quorum_broker_up 0`."""

    def __init__(self, depths: dict[str, int] | None) -> None:
        self.depths = depths

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("quorum_broker_up", "1 when Redis answered this scrape's queue-depth read, else 0")
        up.add_metric([], 0.0 if self.depths is None else 1.0)
        yield up
        if self.depths is not None:
            depth = GaugeMetricFamily("quorum_celery_queue_length", "Tasks waiting in each Celery queue",
                                      labels=["queue"])
            for queue, length in self.depths.items():
                depth.add_metric([queue], float(length))
            yield depth


class _Together:
    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def render(*scrape_time: Any) -> bytes:
    """The text exposition: every API process's metrics (or this process's alone outside `quorum serve`),
    and the `scrape_time` collectors."""
    path = _multiprocess_path()
    if path:
        _forget_dead_processes(path)
        stored: Any = MultiProcessCollector(None, path)
    else:
        stored = REGISTRY
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Together(stored, *scrape_time))
    return generate_latest(registry)
