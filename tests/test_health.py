"""Health and readiness as an orchestrator probes them."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from api.app import create_app
from quorum.embedded import free_port
from tests.conftest import make_settings


async def test_health_and_ready_answer_when_dependencies_are_up(client: AsyncTestClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_ready_is_a_503_naming_the_dependency_that_is_down(settings) -> None:
    broken = make_settings(settings.database_url, f"redis://127.0.0.1:{free_port()}/0")
    async with AsyncTestClient(app=create_app(broken)) as api:
        assert (await api.get("/health")).status_code == 200
        ready = await api.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["detail"] == "unavailable: redis"
        assert [e["field"] for e in body["errors"]] == ["redis"]
        # An endpoint that needs Redis answers 503 too, not 500.
        login = await api.post("/v1/auth/login", json={"email": "a@example.com", "password": "whatever"})
        assert login.status_code == 503
