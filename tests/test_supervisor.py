"""`quorum run`'s supervisor with real child processes: a dead child is started again after a delay that doubles
up to a cap and starts over once the child had recovered; startup waits for each child's own readiness; and the
whole stack restarts a killed worker and says so."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from quorum.embedded import free_port
from quorum.supervisor import RestartBackoff, Supervisor
from tests.conftest import REPO_ROOT

DELAY = re.compile(r"restarting it in ([0-9.]+) s")


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def keep_checking(supervisor: Supervisor, until: Callable[[], bool], within: float = 60.0) -> None:
    """Run the supervisor's rounds until `until()` holds; generous, and returns as soon as it does."""
    deadline = time.monotonic() + within
    while not until():
        assert time.monotonic() < deadline, "the supervisor did not get there in time"
        supervisor.check()
        time.sleep(0.02)


def announced_delays(said: list[str]) -> list[float]:
    return [float(m.group(1)) for line in said if (m := DELAY.search(line))]


def test_a_child_that_keeps_dying_is_restarted_after_doubling_delays_up_to_the_cap() -> None:
    said: list[str] = []
    supervisor = Supervisor(first_delay=0.1, max_delay=0.4, stable_after=30, say=said.append)
    child = supervisor.spawn("flaky", python("import sys; sys.exit(3)"), dict(os.environ))
    try:
        keep_checking(supervisor, lambda: child.restarts >= 5)
    finally:
        supervisor.stop()
    assert announced_delays(said)[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert "flaky exited with code 3" in said[0]
    assert any(line.startswith("flaky restarted (pid ") for line in said)


def test_a_child_that_had_stayed_up_is_restarted_after_the_first_delay_again() -> None:
    said: list[str] = []
    supervisor = Supervisor(first_delay=0.1, max_delay=5, stable_after=0.5, say=said.append)
    child = supervisor.spawn("steady", python("import time; time.sleep(0.6)"), dict(os.environ))
    try:
        keep_checking(supervisor, lambda: child.restarts >= 3)
    finally:
        supervisor.stop()
    assert announced_delays(said)[:3] == [0.1, 0.1, 0.1]


def test_the_back_off_starts_over_once_the_child_recovered() -> None:
    backoff = RestartBackoff(first=1, cap=30, stable_after=60)
    assert [backoff.delay_after(uptime=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_after(uptime=61) == 1
    assert backoff.delay_after(uptime=0.5) == 2


def test_startup_waits_for_readiness_and_restarts_a_child_that_died_before_it(tmp_path: Path) -> None:
    runs, ready = tmp_path / "runs", tmp_path / "ready"
    # The first run dies at once; the second becomes ready after a moment and stays up.
    code = (
        "import pathlib, sys, time\n"
        "runs, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
        "n = int(runs.read_text()) if runs.exists() else 0\n"
        "runs.write_text(str(n + 1))\n"
        "if n == 0: sys.exit(1)\n"
        "time.sleep(0.5); ready.touch(); time.sleep(120)\n"
    )
    said: list[str] = []
    supervisor = Supervisor(first_delay=0.1, say=said.append)
    child = supervisor.spawn("slow", python(code, str(runs), str(ready)), dict(os.environ), ready=ready.exists)
    try:
        supervisor.wait_ready(timeout=120, interval=0.05)
        assert child.running and child.restarts == 1
        assert said[-1].startswith("slow ready after ")
    finally:
        supervisor.stop()
    assert not child.running


def test_startup_gives_up_naming_the_child_that_never_became_ready() -> None:
    supervisor = Supervisor(say=lambda _: None)
    supervisor.spawn("fine", python("import time; time.sleep(120)"), dict(os.environ))
    supervisor.spawn("stuck", python("import time; time.sleep(120)"), dict(os.environ), ready=lambda: False)
    try:
        with pytest.raises(TimeoutError, match=r"not ready after 1 s: stuck$"):
            supervisor.wait_ready(timeout=1, interval=0.05)
    finally:
        supervisor.stop()


def test_nothing_is_restarted_once_stopping() -> None:
    supervisor = Supervisor(first_delay=0.05, say=lambda _: None)
    child = supervisor.spawn("sleeper", python("import time; time.sleep(120)"), dict(os.environ))
    supervisor.stop()
    supervisor.check()
    time.sleep(0.1)
    supervisor.check()
    assert not child.running and child.restarts == 0


def redis_server_on(port: int) -> int:
    """The pid of the redis-server listening on `port`."""
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and b"redis-server" in title and f"127.0.0.1:{port}".encode() in title:
            return int(proc.name)  # Redis sets its title to "redis-server 127.0.0.1:PORT"
    raise AssertionError(f"no redis-server on port {port}")


def test_quorum_run_restarts_a_killed_worker_and_the_embedded_redis_and_says_so(scratch_dir: Path) -> None:
    data_home = scratch_dir / "quorum-run"
    env = {
        **os.environ, "DATA_HOME": str(data_home), "PORT": str(free_port()), "MARKET_DATA": "replay",
        "EMBEDDED_PG_PORT": str(free_port()), "EMBEDDED_REDIS_PORT": str(free_port()),
        "WORKER_METRICS_PORT": "0", "PYTHONPATH": str(REPO_ROOT), "LOG_LEVEL": "WARNING",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DATABASE_APP_URL", "ENVIRONMENT", "SECRET_KEY"):
        env.pop(name, None)
    log = scratch_dir / "quorum-run.log"
    with log.open("wb") as out:
        stack = subprocess.Popen([sys.executable, "-m", "quorum.cli", "run", "--api-workers", "1"], env=env,
                                 cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def said(pattern: str, within: float = 300.0) -> re.Match[str]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = re.search(pattern, log.read_text(errors="replace"))
            if found:
                return found
            assert stack.poll() is None, f"quorum run exited with {stack.returncode}:\n{log.read_text()[-4000:]}"
            time.sleep(0.2)
        raise AssertionError(f"quorum run never said {pattern!r}:\n{log.read_text()[-4000:]}")

    try:
        worker = int(said(r"quorum: worker ready after [0-9.]+ s \(pid (\d+)\)").group(1))
        said(r"quorum: ready\. What next:")
        logs = Path(said(r"the worker and beat in (\S+)/worker\.log").group(1))
        assert (logs / "worker.log").exists() and (logs / "beat.log").exists()  # their output is there, not here
        os.killpg(worker, signal.SIGKILL)
        said(r"quorum: worker exited with code -9 after \d+ s; restarting it in 1 s")
        said(r"quorum: worker restarted \(pid \d+, restart 1\)")
        said(r"quorum: worker ready again \(pid \d+\)")
        os.kill(redis_server_on(int(env["EMBEDDED_REDIS_PORT"])), signal.SIGKILL)
        said(r"quorum: redis exited with code -9 after \d+ s; restarting it in 1 s")
        said(r"quorum: redis restarted \(pid \d+, restart 1\)")
        assert stack.poll() is None  # everything else kept running
        assert "worker exited" not in log.read_text().split("redis exited", 1)[1]  # the worker rode it out
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGTERM)
            try:
                stack.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
                stack.wait(10)
    assert stack.returncode == 0, log.read_text()[-4000:]
