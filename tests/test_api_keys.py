"""Integrator API keys through the API: shown once, stored hashed, scoped, revocable, rate-limited."""

from __future__ import annotations

import psycopg
from litestar.testing import AsyncTestClient

from api.app import create_app
from quorum.settings import Settings
from tests.conftest import PASSWORD, Account, register


def _owner_conn(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(settings.database_url.replace("postgresql+psycopg://", "postgresql://"))


async def _create_key(client: AsyncTestClient, account: Account, **body: object) -> dict:
    payload = {"name": "integration", "scopes": ["bots:read"], **body}
    response = await client.post("/v1/api-keys", json=payload, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_key_is_shown_once_and_the_list_never_shows_it(client: AsyncTestClient) -> None:
    account = await register(client)
    created = await _create_key(client, account, name="reporting", scopes=["bots:read", "activity:read"])
    key = created["key"]
    assert key.startswith("qk_") and len(key) > 60
    assert created["prefix"].startswith("qk_") and key.startswith(created["prefix"].rstrip("…"))
    assert created["scopes"] == ["activity:read", "bots:read"] and created["name"] == "reporting"

    listed = await client.get("/v1/api-keys", headers=account.headers)
    assert listed.status_code == 200
    [view] = listed.json()
    assert view["id"] == created["id"] and view["prefix"] == created["prefix"]
    assert "key" not in view and key not in listed.text and key.rsplit("_", 1)[1] not in listed.text


async def test_the_database_holds_only_a_32_byte_keyed_hash(client: AsyncTestClient, settings: Settings) -> None:
    account = await register(client)
    created = await _create_key(client, account)
    secret = created["key"].rsplit("_", 1)[1]
    with _owner_conn(settings) as conn:
        row = conn.execute("SELECT * FROM api_keys WHERE id = %s", (created["id"],)).fetchone()
        columns = [c.name for c in conn.execute("SELECT * FROM api_keys LIMIT 0").description]
    stored = dict(zip(columns, row, strict=True))
    assert len(stored["secret_hash"]) == 32
    for value in stored.values():
        as_bytes = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
        assert secret.encode() not in as_bytes and created["key"].encode() not in as_bytes


async def test_the_default_rate_limit_comes_from_settings(client: AsyncTestClient, settings: Settings) -> None:
    account = await register(client)
    created = await _create_key(client, account)
    assert created["rateLimitPerMinute"] == settings.api_key_rate_limit_per_minute


async def test_scopes_outside_the_allowed_set_and_bad_limits_are_422(client: AsyncTestClient) -> None:
    account = await register(client)
    for body in ({"name": "x", "scopes": ["account"]}, {"name": "x", "scopes": ["root"]},
                 {"name": "x", "scopes": []}):
        response = await client.post("/v1/api-keys", json=body, headers=account.headers)
        assert response.status_code == 422, body
        assert any(e["field"].startswith("scopes") for e in response.json()["errors"]), response.json()
    for limit in (0, 10_001):
        body = {"name": "x", "scopes": ["bots:read"], "rateLimitPerMinute": limit}
        response = await client.post("/v1/api-keys", json=body, headers=account.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "rateLimitPerMinute"


async def test_an_api_key_cannot_reach_account_routes_or_mint_keys(client: AsyncTestClient) -> None:
    account = await register(client)
    key = (await _create_key(client, account, scopes=["bots:read", "bots:write", "keys:write"]))["key"]
    assert (await client.get("/v1/me", headers=_key_headers(key))).status_code == 403
    minted = await client.post("/v1/api-keys", json={"name": "more", "scopes": ["bots:read"]},
                               headers=_key_headers(key))
    assert minted.status_code == 403
    assert minted.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/v1/api-keys", headers=_key_headers(key))).status_code == 403
    assert (await client.post("/v1/auth/logout", headers=_key_headers(key))).status_code == 403


async def test_a_revoked_key_is_refused_at_once(client: AsyncTestClient) -> None:
    account = await register(client)
    created = await _create_key(client, account)
    assert (await client.get("/v1/me", headers=_key_headers(created["key"]))).status_code == 403  # authenticated
    revoked = await client.delete(f"/v1/api-keys/{created['id']}", headers=account.headers)
    assert revoked.status_code == 204
    refused = await client.get("/v1/me", headers=_key_headers(created["key"]))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    [view] = (await client.get("/v1/api-keys", headers=account.headers)).json()
    assert view["revokedAt"] is not None


async def test_a_tampered_or_malformed_key_is_401(client: AsyncTestClient) -> None:
    account = await register(client)
    key = (await _create_key(client, account))["key"]
    last = key[-1]
    tampered = key[:-1] + ("A" if last != "A" else "B")
    for bad in (tampered, key + "x", key.rsplit("_", 1)[0] + "_", "qk_short", "qk_" + "!" * 26 + "_secret",
                key.upper()):
        assert (await client.get("/v1/me", headers=_key_headers(bad))).status_code == 401, bad


async def test_using_a_key_records_when_it_was_last_used(client: AsyncTestClient) -> None:
    account = await register(client)
    created = await _create_key(client, account)
    assert created["lastUsedAt"] is None
    await client.get("/v1/me", headers=_key_headers(created["key"]))
    [view] = (await client.get("/v1/api-keys", headers=account.headers)).json()
    assert view["lastUsedAt"] is not None


async def test_deactivating_the_user_stops_their_keys_at_once(client: AsyncTestClient, settings: Settings) -> None:
    account = await register(client)
    created = await _create_key(client, account)
    assert (await client.get("/v1/me", headers=_key_headers(created["key"]))).status_code == 403
    with _owner_conn(settings) as conn:
        conn.execute("UPDATE users SET is_active = false WHERE email = %s", (account.email,))
    assert (await client.get("/v1/me", headers=_key_headers(created["key"]))).status_code == 401


async def test_second_tenant_cannot_see_or_revoke_first_tenants_keys(client: AsyncTestClient) -> None:
    first = await register(client)
    second = await register(client)
    created = await _create_key(client, first)
    assert (await client.get("/v1/api-keys", headers=second.headers)).json() == []
    assert (await client.delete(f"/v1/api-keys/{created['id']}", headers=second.headers)).status_code == 404
    assert (await client.get("/v1/me", headers=_key_headers(created["key"]))).status_code == 403  # still live


async def test_revoking_an_unknown_key_is_404(client: AsyncTestClient) -> None:
    account = await register(client)
    missing = await client.delete("/v1/api-keys/0190a3c4-0000-7000-8000-000000000000", headers=account.headers)
    assert missing.status_code == 404


async def test_the_per_key_rate_limit_is_shared_by_every_api_process(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(settings)) as one, AsyncTestClient(app=create_app(settings)) as two:
        account = await register(one)
        limited = (await _create_key(one, account, rateLimitPerMinute=3))["key"]
        other = (await _create_key(one, account, rateLimitPerMinute=3))["key"]
        # Counted before any guard: refused (403) requests still use up the key's allowance.
        statuses = [(await client.get("/v1/me", headers=_key_headers(limited))).status_code
                     for client in (one, two, one)]
        assert statuses == [403, 403, 403]
        refused = await two.get("/v1/me", headers=_key_headers(limited))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["content-type"].startswith("application/problem+json")
        # Each key has its own allowance.
        assert (await two.get("/v1/me", headers=_key_headers(other))).status_code == 403


async def test_a_key_never_holds_a_scope_its_creators_role_lacks(client: AsyncTestClient, settings: Settings) -> None:
    account = await register(client)
    audit_key = (await _create_key(client, account, scopes=["audit:read", "bots:read"]))["key"]
    assert (await client.get("/v1/audit", headers=_key_headers(audit_key))).status_code == 200
    with _owner_conn(settings) as conn:
        conn.execute("UPDATE users SET role = 'member' WHERE email = %s", (account.email,))
    # The creator is a member now: the key keeps what a member holds and loses audit:read at once.
    assert (await client.get("/v1/audit", headers=_key_headers(audit_key))).status_code == 403
    assert (await client.get("/v1/bots", headers=_key_headers(audit_key))).status_code == 200

    relogin = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    member = Account(account.email, relogin.json())
    refused = await client.post("/v1/api-keys", json={"name": "x", "scopes": ["audit:read"]}, headers=member.headers)
    assert refused.status_code == 403
    assert refused.json()["errors"] == [{"field": "scopes", "message": "your role does not hold: audit:read"}]
