"""Shared by the API benchmarks: real servers (embedded unless URLs are set), a fresh database, a real API process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NamedTuple

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from raw_http import RawConnection, RawResponse  # noqa: E402

from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, wait_for_port  # noqa: E402
from quorum.settings import load_settings  # noqa: E402
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
            "REGISTRATIONS_PER_IP": "1000000", "REGISTRATIONS_GLOBAL": "1000000",
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


class Stack(NamedTuple):
    base_url: str
    supervisor: subprocess.Popen[bytes]
    data_home: Path

    def process_roots(self) -> list[int]:
        """The supervisor (API, worker, beat, Redis under it) and PostgreSQL's postmaster, which pg_ctl detaches."""
        pids = [self.supervisor.pid]
        pid_file = self.data_home / "postgres" / "postmaster.pid"
        with suppress(OSError, ValueError):
            pids.append(int(pid_file.read_text().split("\n", 1)[0]))
        return pids


@contextmanager
def running_stack(api_workers: int = 2, **env_overrides: str) -> Iterator[Stack]:
    """`quorum run` in a scratch data folder on free ports: embedded PostgreSQL and Redis, migrations, API,
    worker and beat, exactly as a user starts it. Yields once /ready answers 200; stops everything with
    SIGTERM, as Ctrl-C would."""
    scratch = Path(tempfile.mkdtemp(prefix="quorum-load-"))
    port = free_port()
    env = {
        **os.environ, "DATA_HOME": str(scratch), "PORT": str(port), "LOG_LEVEL": "WARNING",
        "EMBEDDED_PG_PORT": str(free_port()), "EMBEDDED_REDIS_PORT": str(free_port()),
        "SECRET_KEY": "bench-secret-key-" + "x" * 32, "ENVIRONMENT": "development", "MARKET_DATA": "replay",
        "LOGIN_ATTEMPTS_PER_ACCOUNT": "1000000", "LOGIN_ATTEMPTS_PER_IP": "1000000",
        "REGISTRATIONS_PER_IP": "1000000", "REGISTRATIONS_GLOBAL": "1000000", **env_overrides,
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    log = (scratch / "quorum-run.log").open("wb")
    stack = subprocess.Popen([sys.executable, "-m", "quorum.cli", "run", "--api-workers", str(api_workers)],
                             env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(_wait_ready(base, stack, 180))
        yield Stack(base, stack, scratch)
    except BaseException:
        log.flush()
        print((scratch / "quorum-run.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGTERM)
            try:
                stack.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)


async def _wait_ready(base: str, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"quorum run exited with {process.returncode}")
        conn = RawConnection(base)
        try:
            if (await conn.request("GET", "/ready")).status_code == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            await conn.close()
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{base}/ready did not answer 200 within {within:.0f}s")


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
