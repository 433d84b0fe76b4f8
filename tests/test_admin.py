"""Platform operators: made only by `quorum admin grant`, they list tenants and users, deactivate a user
(whose tokens and keys stop at once) and read the system's status. Tenant owners and API keys get 403."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from celery import Celery
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from quorum.settings import Settings
from tenants import admin_commands
from tenants.admin import DISPATCH_LAST_TICK_KEY, LLM_BREAKER_PREFIX
from tests.conftest import PASSWORD, REPO_ROOT, Account, child_environ, register
from workers.brain.breaker import RedisCircuitBreaker


def quorum_admin(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", "admin", *args], env=child_environ(settings),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
async def operator(client: AsyncTestClient, settings: Settings) -> Account:
    account = await register(client)
    assert admin_commands.grant(settings, account.email, granted_by="tests")
    return account


def admin_operations(app: Litestar) -> list[tuple[str, str]]:
    return [(method, route.path) for route in app.routes if isinstance(route, HTTPRoute)
            and route.path.startswith("/v1/admin") for method in route.methods if method != "OPTIONS"]


async def _call(client: AsyncTestClient, method: str, path: str, headers: dict[str, str]) -> int:
    return (await client.request(method, re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path), headers=headers)).status_code


async def test_tenant_owners_and_api_keys_are_refused_every_admin_route(app: Litestar, client: AsyncTestClient,
                                                                       operator: Account) -> None:
    owner = await register(client)
    key = await client.post("/v1/api-keys", headers=operator.headers,
                            json={"name": "ops", "scopes": ["bots:read", "activity:read", "audit:read"]})
    key_headers = {"Authorization": f"Bearer {key.json()['key']}"}
    operations = admin_operations(app)
    assert len(operations) >= 5
    for method, path in operations:
        assert await _call(client, method, path, owner.headers) == 403, f"{method} {path} let a tenant owner in"
        assert await _call(client, method, path, key_headers) == 403, f"{method} {path} let an API key in"
        assert await _call(client, method, path, {}) == 401


async def test_only_the_command_line_makes_and_unmakes_an_operator(client: AsyncTestClient, settings: Settings) -> None:
    account = await register(client)
    assert (await client.get("/v1/admin/tenants", headers=account.headers)).status_code == 403
    granted = quorum_admin(settings, "grant", account.email.upper())  # emails are case-insensitive
    assert granted.returncode == 0 and "now a platform operator" in granted.stdout, granted.stderr
    assert (await client.get("/v1/admin/tenants", headers=account.headers)).status_code == 200
    assert account.email in [o.email for o in admin_commands.operators(settings)]
    revoked = quorum_admin(settings, "revoke", account.email)
    assert revoked.returncode == 0 and "no longer" in revoked.stdout
    assert (await client.get("/v1/admin/tenants", headers=account.headers)).status_code == 403  # at once
    with pytest.raises(admin_commands.AdminCommandError, match="no user"):
        admin_commands.grant(settings, "nobody-here@example.com", granted_by="tests")


async def test_operators_see_every_tenant_and_user(client: AsyncTestClient, operator: Account) -> None:
    first, second = await register(client), await register(client)
    await client.post("/v1/bots", headers=first.headers, json={"name": "b", "mode": "paper", "brain": "rules"})
    tenants: dict[str, dict] = {}
    cursor: str | None = None
    while True:  # every page, newest first
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/admin/tenants", params=params, headers=operator.headers)).json()
        tenants.update({t["id"]: t for t in page["items"]})
        cursor = page["nextCursor"]
        if cursor is None:
            break
    first_tenant = (await client.get("/v1/me", headers=first.headers)).json()["tenant"]
    second_tenant = (await client.get("/v1/me", headers=second.headers)).json()["tenant"]
    assert tenants[first_tenant["id"]]["users"] == 1 and tenants[first_tenant["id"]]["bots"] == 1
    assert tenants[second_tenant["id"]]["bots"] == 0 and tenants[second_tenant["id"]]["active"] is True

    users = (await client.get("/v1/admin/users", params={"tenantId": first_tenant["id"]},
                              headers=operator.headers)).json()["items"]
    assert [u["email"] for u in users] == [first.email] and users[0]["platformAdmin"] is False
    me = (await client.get("/v1/admin/users", params={"limit": 200}, headers=operator.headers)).json()["items"]
    assert any(u["email"] == operator.email and u["platformAdmin"] for u in me)


async def test_deactivating_a_user_stops_their_tokens_and_keys_at_once(
    client: AsyncTestClient, settings: Settings, operator: Account
) -> None:
    victim = await register(client)
    key = (await client.post("/v1/api-keys", headers=victim.headers,
                             json={"name": "bot", "scopes": ["bots:read"]})).json()["key"]
    key_headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/bots", headers=key_headers)).status_code == 200
    victim_id = (await client.get("/v1/me", headers=victim.headers)).json()["id"]

    answer = await client.post(f"/v1/admin/users/{victim_id}/deactivate", headers=operator.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is False and answer.json()["email"] == victim.email

    assert (await client.get("/v1/me", headers=victim.headers)).status_code == 401
    assert (await client.get("/v1/bots", headers=key_headers)).status_code == 401
    refreshed = await client.post("/v1/auth/refresh", json={"refreshToken": victim.tokens["refreshToken"]})
    assert refreshed.status_code == 401
    login = await client.post("/v1/auth/login", json={"email": victim.email, "password": PASSWORD})
    assert login.status_code == 401
    with psycopg.connect(settings.database_url) as conn:
        audit = conn.execute("SELECT actor_type, actor_id::text, action FROM audit_events WHERE target_id = %s "
                             "AND action = 'user_deactivated'", (victim_id,)).fetchone()
        operator_id = conn.execute("SELECT id::text FROM users WHERE email = %s", (operator.email,)).fetchone()[0]
    assert audit == ("platform_admin", operator_id, "user_deactivated")

    assert (await client.post(f"/v1/admin/users/{victim_id}/activate", headers=operator.headers)).json()["active"]
    assert (await client.get("/v1/me", headers=victim.headers)).status_code == 401  # old sessions stay ended
    assert (await client.post("/v1/auth/login", json={"email": victim.email, "password": PASSWORD})).status_code == 200
    # The keys ended with the deactivation, for good: reactivating the user does not revive them.
    assert (await client.get("/v1/bots", headers=key_headers)).status_code == 401
    with psycopg.connect(settings.database_url) as conn:
        revoked = conn.execute("SELECT revoked_at IS NOT NULL FROM api_keys WHERE user_id = %s",
                               (victim_id,)).fetchone()
    assert revoked == (True,)


async def test_an_operator_cannot_deactivate_themself_or_a_user_that_does_not_exist(
    client: AsyncTestClient, operator: Account
) -> None:
    me = (await client.get("/v1/me", headers=operator.headers)).json()["id"]
    assert (await client.post(f"/v1/admin/users/{me}/deactivate", headers=operator.headers)).status_code == 422
    missing = await client.post(f"/v1/admin/users/{uuid.uuid4()}/deactivate", headers=operator.headers)
    assert missing.status_code == 404


def test_the_application_role_cannot_read_operators_or_call_their_functions_without_a_session(
    settings: Settings,
) -> None:
    with psycopg.connect(settings.app_database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM platform_admins")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM admin_list_users(%s, %s, NULL, 10, NULL)", (uuid.uuid4(), uuid.uuid4()))
        conn.rollback()
        assert conn.execute("SELECT is_platform_admin(%s, %s)", (uuid.uuid4(), uuid.uuid4())).fetchone()[0] is False


async def test_system_status_shows_queues_workers_the_dispatcher_and_the_llm_breaker(
    client: AsyncTestClient, settings: Settings, redis: Redis, operator: Account, key_check_worker: Path,
) -> None:
    queue = f"status-test-{uuid.uuid4().hex[:8]}"
    celery = Celery("quorum-status-test", broker=settings.redis_url)
    try:
        for _ in range(3):
            celery.send_task("quorum.ping", queue=queue)  # no worker listens to this queue: they wait there
    finally:
        celery.close()
    ticked = time.time() - 4
    await redis.set(DISPATCH_LAST_TICK_KEY, str(ticked))
    upstream = f"https://llm-{uuid.uuid4().hex[:6]}.example/v1"
    breaker = RedisCircuitBreaker(redis, upstream, failure_threshold=2, cooldown_seconds=300)
    for _ in range(2):
        await breaker.record_failure()

    status = (await client.get("/v1/admin/status", headers=operator.headers)).json()
    waiting = {q["name"]: q["waiting"] for q in status["queues"]}
    assert waiting[queue] == 3 and "celery" in waiting
    assert any(name.startswith("keys-") for name in status["workers"]), status["workers"]
    assert 3 <= status["dispatchAgeSeconds"] < 60
    [shown] = [b for b in status["llmBreakers"] if b["name"] == upstream]
    assert shown["state"] == "open" and shown["openUntil"] is not None


def test_the_keys_status_reads_are_the_ones_workers_write() -> None:
    from workers.dispatch import LAST_DISPATCH_KEY

    assert DISPATCH_LAST_TICK_KEY == LAST_DISPATCH_KEY
    breaker = RedisCircuitBreaker(Redis(), "https://api.openai.com/v1")
    assert all(key.startswith(LLM_BREAKER_PREFIX + "https://api.openai.com/v1:") for key in breaker._keys)
