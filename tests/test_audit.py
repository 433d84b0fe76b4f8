"""The audit log records what happened to the tenant's account, for its owner only."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from tests.conftest import PASSWORD, register


async def test_the_owner_reads_logins_failures_and_key_changes_newest_first(client: AsyncTestClient) -> None:
    account = await register(client)
    await client.post("/v1/auth/login", json={"email": account.email, "password": "not the password"})
    await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    linked = await client.post("/v1/exchange-keys", headers=account.headers, json={"exchange": "paper", "label": "p"})
    await client.delete(f"/v1/exchange-keys/{linked.json()['id']}", headers=account.headers)

    response = await client.get("/v1/audit", headers=account.headers)
    assert response.status_code == 200
    actions = [e["action"] for e in response.json()["items"]]
    assert actions[:4] == ["exchange_key_deleted", "exchange_key_linked", "login", "login_failed"]
    assert all(e["clientIp"] for e in response.json()["items"])


async def test_audit_pages_are_stable_while_events_are_added(client: AsyncTestClient) -> None:
    account = await register(client)
    for _ in range(5):
        await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    first = (await client.get("/v1/audit?limit=3", headers=account.headers)).json()
    await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})  # a newer event
    second = (await client.get(f"/v1/audit?limit=3&cursor={first['nextCursor']}", headers=account.headers)).json()
    ids = [e["id"] for e in first["items"]] + [e["id"] for e in second["items"]]
    assert len(ids) == len(set(ids)) == 5  # five logins; nothing repeated or skipped
    assert second["nextCursor"] is None


async def test_another_tenant_sees_none_of_it(client: AsyncTestClient) -> None:
    account = await register(client)
    await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    other = await register(client)
    assert (await client.get("/v1/audit", headers=other.headers)).json()["items"] == []
