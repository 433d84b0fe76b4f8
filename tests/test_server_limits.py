"""The API server (`quorum serve`) does not let a slow or endless request hold a connection: a request's head
and body have deadlines, a head has a size limit, and an idle connection between requests is closed.

A real server process with one-second deadlines, spoken to over raw sockets as a slow client would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from quorum.settings import Settings
from tests.conftest import REPO_ROOT, child_environ, free_port, wait_for_port

DEADLINE = 1.0


@pytest.fixture(scope="module")
def strict_server(settings: Settings) -> Iterator[int]:
    port = free_port()
    env = child_environ(settings, PORT=str(port), HEADER_READ_TIMEOUT_SECONDS=str(DEADLINE),
                        BODY_READ_TIMEOUT_SECONDS=str(DEADLINE), KEEP_ALIVE_TIMEOUT_SECONDS="1")
    proc = subprocess.Popen([sys.executable, "-m", "quorum.cli", "serve"], env=env, cwd=REPO_ROOT)
    try:
        wait_for_port(port, 60)
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails if it keeps it open 10 s)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_connection_that_sends_no_request_is_closed(strict_server: int) -> None:
    with _connect(strict_server) as sock:
        started = time.monotonic()
        assert _read_all(sock) == b""
        assert DEADLINE * 0.8 < time.monotonic() - started < DEADLINE + 3


def test_headers_trickled_in_are_cut_off_at_the_deadline_however_busy(strict_server: int) -> None:
    with _connect(strict_server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: quorum\r\n")
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for i in range(100):  # a header every 0.1 s: never idle, never done
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                time.sleep(0.1)
        assert time.monotonic() - started < DEADLINE + 3


def test_a_head_larger_than_32_kib_is_refused_with_431(strict_server: int) -> None:
    with _connect(strict_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: quorum\r\n" + b"X-Big: " + b"a" * 40_000 + b"\r\n")
        answer = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert json.loads(body)["status"] == 431


def test_a_stalled_body_is_answered_408_with_problem_details(strict_server: int) -> None:
    with _connect(strict_server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: quorum\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"email\":")
        answer = _read_all(sock)
        assert time.monotonic() - started < DEADLINE + 3
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert b"application/problem+json" in head.lower()
    assert "stalled" in json.loads(body)["detail"]


def test_ordinary_requests_pass_and_an_idle_keep_alive_connection_is_closed(strict_server: int) -> None:
    with _connect(strict_server) as sock:
        for _ in range(2):  # the same connection serves one request after another
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: quorum\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _read_all(sock) == b""  # then, idle, it is closed
        assert time.monotonic() - started < 4
