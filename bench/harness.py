"""Shared by the API benchmarks: real servers (embedded unless URLs are set), a fresh database, a real API process."""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, wait_for_port  # noqa: E402
from quorum.settings import load_settings  # noqa: E402
from raw_http import RawConnection, RawResponse  # noqa: E402
from tenants.db_commands import bootstrap  # noqa: E402


@contextmanager
def running_api(workers: int = 1, **env_overrides: str) -> Iterator[str]:
    """Start PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are set) and an API server."""
    scratch = Path(tempfile.mkdtemp(prefix="quorum-bench-"))
    started: list = []
    try:
        admin_url = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        if not admin_url:
            pg = EmbeddedPostgres(scratch / "postgres", free_port())
            pg.start()
            started.append(pg)
            admin_url = pg.url
        if not redis_url:
            rd = EmbeddedRedis(scratch / "redis", free_port())
            rd.start()
            started.append(rd)
            redis_url = rd.url
        db_name = f"quorum_bench_{uuid.uuid4().hex[:8]}"
        owner_url = admin_url.rsplit("/", 1)[0] + "/" + db_name
        port = free_port()
        env = {
            "DATABASE_URL": owner_url, "REDIS_URL": redis_url, "PORT": str(port), "LOG_LEVEL": "WARNING",
            "SECRET_KEY": "bench-secret-key-" + "x" * 32, "ENVIRONMENT": "development",
            "LOGIN_ATTEMPTS_PER_ACCOUNT": "1000000", "LOGIN_ATTEMPTS_PER_IP": "1000000",
            "WEB_CONCURRENCY": str(workers), **env_overrides,
        }
        bootstrap(load_settings(env))
        server = subprocess.Popen([sys.executable, "-m", "quorum.cli", "serve"], env={**os.environ, **env},
                                  cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, 60)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(20)
            with psycopg.connect(admin_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
    finally:
        for server in reversed(started):
            server.destroy() if isinstance(server, EmbeddedPostgres) else server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


class Measurement:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.errors = 0
        self.elapsed = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * p), len(ordered) - 1)] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def row(self) -> str:
        return (f"{self.name:<38} {self.rps:>9.0f} {self.percentile(0.5):>8.2f} {self.percentile(0.99):>8.2f} "
                f"{statistics.fmean(self.latencies) * 1000 if self.latencies else float('nan'):>8.2f} {self.errors:>6}")


HEADER = f"{'':<38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'errors':>6}"


async def hammer(name: str, base_url: str, call: Callable[[RawConnection], Awaitable[RawResponse]], *,
                 seconds: float, concurrency: int, ok: int = 200) -> Measurement:
    """Run `call` on `concurrency` keep-alive connections for `seconds`; record latencies and non-`ok` answers."""
    result = Measurement(name)
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        conn = RawConnection(base_url)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await call(conn)
                failed = response.status_code != ok
            except (OSError, asyncio.IncompleteReadError):
                await conn.close()
                failed = True
            result.latencies.append(time.perf_counter() - started)
            result.errors += failed
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result
