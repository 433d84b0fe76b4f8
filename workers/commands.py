"""`quorum worker` and `quorum beat`: the Celery processes, started the same way everywhere (the
embedded supervisor, docker-compose, Kubernetes), so the pool and its size come from one place.

The worker uses Celery's thread pool: each thread hands its task's coroutine to the process's one
event loop (workers/runtime.py) and waits, so `CYCLE_CONCURRENCY` cycles run at once in one process
while a slow brain or exchange holds only a waiting thread.
"""

from __future__ import annotations

import argparse

from quorum.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, default=None, help="cycles at once (default CYCLE_CONCURRENCY)")
    parser.add_argument("--name", default="worker@%h", help="the worker's node name")
    parser.add_argument("--queues", default=None, help="comma-separated queues to consume (default: all)")
    parser.add_argument("--schedule", default=None, help="beat: where to keep its schedule state")


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
        argv = worker_argv(args.concurrency or settings.cycle_concurrency, args.name, args.queues)
    app.start(argv)
    return 0
