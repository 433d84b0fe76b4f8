"""`quorum serve`: the API under uvicorn (uvloop, httptools).

Its worker processes share a fresh Prometheus multiprocess directory, so /metrics, whichever process
answers it, adds up all of them (quorum/metrics.py); the directory goes when the server stops.

uvicorn's httptools protocol neither times nor sizes a request's head (uvicorn's `h11_max_incomplete_event_size`
applies to its h11 protocol only), so a client trickling headers, or sending no request at all, would hold a
connection forever: `BoundedHttpToolsProtocol` closes a connection whose head takes longer than
HEADER_READ_TIMEOUT_SECONDS and answers 431 to one larger than `MAX_HEAD_BYTES`. The body's pace is
api.middleware's (BODY_READ_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from quorum.settings import get_settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's name, read by quorum/metrics.py too
MAX_HEAD_BYTES = 32 * 1024  # request line and headers together: nginx's default buffers hold 4 x 8 KiB
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/problem+json\r\n"
              b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
_TOO_LARGE_BODY = (b'{"type":"about:blank","title":"Request Header Fields Too Large","status":431,'
                   b'"detail":"The request line and headers are larger than 32 KiB."}')


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size limit for each request's line and headers."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._head_timeout = get_settings().header_read_timeout_seconds
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still reading the head after this chunk: every byte so far was head, none was body.
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.transport.write(_TOO_LARGE % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_timer is None:
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # what comes next is the next request's head

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.check(api=True)
    with multiprocess_directory():
        _serve(args, settings.port, settings.keep_alive_timeout_seconds)
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


def _serve(args: argparse.Namespace, port: int, keep_alive_seconds: int) -> None:
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=port,
        workers=args.workers,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        timeout_keep_alive=keep_alive_seconds,
        access_log=False,  # api.middleware logs each request with its id
        log_config=None,
        proxy_headers=False,  # forwarded headers are trusted only from TRUSTED_PROXIES, in api.middleware
        server_header=False,
        timeout_graceful_shutdown=10,
    )
