"""`quorum worker` and `quorum beat`: the Celery processes, started the same way everywhere (the
embedded supervisor, docker-compose, Kubernetes), so the pool and its size come from one place.

The worker uses Celery's thread pool: each thread hands its task's coroutine to the process's one
event loop (workers/runtime.py) and waits. A cycles message carries `CYCLE_BATCH_SIZE` cycles that run
side by side, so a few threads keep `CYCLE_CONCURRENCY` cycles going at once in one process while a
slow brain or exchange holds only waiting coroutines. Threads cost the loop: each one that wakes takes
the GIL from it, so there are only as many as the cycles need (twice over, so the next batches are
taken while the last ones finish) plus a few for notifications.
"""

from __future__ import annotations

import argparse
import math

from quorum.settings import Settings, get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="tasks at once (default: from CYCLE_CONCURRENCY)")
    parser.add_argument("--name", default="worker@%h", help="the worker's node name")
    parser.add_argument("--queues", default=None, help="comma-separated queues to consume (default: all)")
    parser.add_argument("--schedule", default=None, help="beat: where to keep its schedule state")


NOTIFY_THREADS = 4


def worker_threads(settings: Settings) -> int:
    """Task threads of one worker process: enough batches for CYCLE_CONCURRENCY cycles, twice, plus
    notification tasks."""
    return 2 * math.ceil(settings.cycle_concurrency / max(settings.cycle_batch_size, 1)) + NOTIFY_THREADS


def worker_argv(concurrency: int, name: str, queues: str | None = None) -> list[str]:
    argv = ["worker", "--pool", "threads", "--concurrency", str(concurrency), "--loglevel", "INFO", "-n", name]
    return [*argv, "-Q", queues] if queues else argv


def run(args: argparse.Namespace) -> int:
    from workers.celery_app import app

    settings = get_settings()
    settings.check()
    if args.command == "beat":
        argv = ["beat", "--loglevel", "INFO"]
        if args.schedule:
            argv += ["--schedule", args.schedule]
    else:
        argv = worker_argv(args.threads or worker_threads(settings), args.name, args.queues)
    app.start(argv)
    return 0
