"""A real Celery worker on the real Redis runs tasks, and beat's dispatcher tick records itself."""

from __future__ import annotations

import subprocess
import sys
import time

import redis

from quorum.settings import Settings
from tests.conftest import REPO_ROOT, child_environ


def test_a_real_worker_runs_tasks_sent_through_redis(settings: Settings) -> None:
    env = child_environ(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "-n", f"test-{time.time_ns()}@%h"],
        env=env, cwd=REPO_ROOT,
    )
    try:
        probe = subprocess.run(
            [sys.executable, "-c",
             "from workers.celery_app import app\n"
             "print(app.send_task('quorum.ping').get(timeout=60))\n"
             "app.send_task('quorum.dispatch')\n"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
        )
        assert probe.stdout.strip() == "pong", probe.stderr
        client = redis.Redis.from_url(settings.redis_url)
        deadline = time.monotonic() + 30
        while client.get("quorum:dispatch:last_tick") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert float(client.get("quorum:dispatch:last_tick")) > time.time() - 120
    finally:
        worker.terminate()
        worker.wait(30)
