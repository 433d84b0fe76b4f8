"""Redis, then PostgreSQL, restarted under a running API process and worker (bench/faults.py's drill, smaller).

The drill starts PostgreSQL and Redis of its own, embedded, whatever DATABASE_URL / REDIS_URL say: it stops
and starts them, and must never do that to a server someone else uses.
"""

from __future__ import annotations

import asyncio
import sys

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))

from faults import drill, running_service  # noqa: E402


def test_the_service_heals_after_redis_and_postgres_restart_and_keeps_every_acknowledged_write() -> None:
    with running_service() as service:
        api_pid, worker_pid = service.api.pid, service.worker.pid
        report = asyncio.run(drill(service, down=2, settle=6, rate=0.5, tenants=3))
        assert (service.api.pid, service.worker.pid) == (api_pid, worker_pid)

    assert report.ok, report.failures
    for outage in report.outages:
        assert outage.reported, f"/ready did not name {outage.dependency} while it was down"
        assert outage.ready_at is not None and outage.ready_at - outage.started_at < 30
    assert report.acknowledged == report.found
    assert report.acknowledged["registrations"] > 0 and report.acknowledged["bots created"] > 0
    statuses = {status for _, _, status in report.ledger.answers}
    assert "503" in statuses  # the outages were felt, and answered as such
    assert not {s for s in statuses if s.startswith("5") and s != "503"}
