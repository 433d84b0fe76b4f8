"""`quorum serve`: the API under uvicorn (uvloop, httptools).

Its worker processes share a fresh Prometheus multiprocess directory, so /metrics, whichever process
answers it, adds up all of them (quorum/metrics.py); the directory goes when the server stops.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from quorum.settings import get_settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's name, read by quorum/metrics.py too


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.check(api=True)
    with multiprocess_directory():
        _serve(args, settings.port)
    return 0


@contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh, empty PROMETHEUS_MULTIPROC_DIR for the server's processes, removed when they are gone.

    prometheus_client chooses where it keeps values once, when imported: this process must not have
    imported it yet (uvicorn imports the app here when it runs a single process)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("the metrics directory must be set before prometheus_client is imported")
    directory = tempfile.mkdtemp(prefix="quorum-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def _serve(args: argparse.Namespace, port: int) -> None:
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,  # api.middleware logs each request with its id
        log_config=None,
        proxy_headers=False,  # forwarded headers are trusted only from TRUSTED_PROXIES, in api.middleware
        server_header=False,
        timeout_graceful_shutdown=10,
    )
