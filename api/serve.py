"""`quorum serve`: the API under uvicorn (uvloop, httptools)."""

from __future__ import annotations

import argparse
import os

import uvicorn

from quorum.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.check()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=settings.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,  # api.middleware logs each request with its id
        log_config=None,
        proxy_headers=False,  # forwarded headers are trusted only from TRUSTED_PROXIES, in api.middleware
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0
