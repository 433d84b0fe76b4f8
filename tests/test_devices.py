"""Push devices and notification preferences through the API: per user, never an API key's."""

from __future__ import annotations

import uuid

import psycopg
from litestar.testing import AsyncTestClient

from quorum.settings import Settings
from tests.conftest import Account, register


def fcm_token() -> str:
    return f"fcm-{uuid.uuid4().hex}:APA91b{uuid.uuid4().hex}"


async def _register_device(client: AsyncTestClient, account: Account, token: str, **extra: str) -> dict:
    body = {"platform": "android", "token": token, "appVersion": "1.4.2", **extra}
    response = await client.post("/v1/devices", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_device_is_registered_listed_and_removed(client: AsyncTestClient) -> None:
    account = await register(client)
    token = fcm_token()
    device = await _register_device(client, account, token)
    assert device["platform"] == "android" and device["appVersion"] == "1.4.2"
    assert device["tokenEnding"] == token[-8:] and token not in str(device)

    again = await _register_device(client, account, token, platform="ios", appVersion="1.5.0")
    assert again["id"] == device["id"] and again["platform"] == "ios" and again["appVersion"] == "1.5.0"
    listed = (await client.get("/v1/devices", headers=account.headers)).json()
    assert [d["id"] for d in listed] == [device["id"]]

    removed = await client.delete(f"/v1/devices/{device['id']}", headers=account.headers)
    assert removed.status_code == 204
    assert (await client.get("/v1/devices", headers=account.headers)).json() == []
    assert (await client.delete(f"/v1/devices/{device['id']}", headers=account.headers)).status_code == 404


async def test_a_token_registered_by_another_tenants_user_leaves_the_first_tenant(
    client: AsyncTestClient, settings: Settings
) -> None:
    first, second = await register(client), await register(client)
    token = fcm_token()
    await _register_device(client, first, token)
    await _register_device(client, second, token)  # the phone changed hands
    assert (await client.get("/v1/devices", headers=first.headers)).json() == []
    assert len((await client.get("/v1/devices", headers=second.headers)).json()) == 1
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM devices WHERE token = %s", (token,)).fetchone()[0] == 1


async def test_a_user_cannot_remove_another_users_device(client: AsyncTestClient) -> None:
    owner, intruder = await register(client), await register(client)
    device = await _register_device(client, owner, fcm_token())
    assert (await client.delete(f"/v1/devices/{device['id']}", headers=intruder.headers)).status_code == 404
    assert len((await client.get("/v1/devices", headers=owner.headers)).json()) == 1


async def test_malformed_devices_are_refused_naming_the_field(client: AsyncTestClient) -> None:
    account = await register(client)
    for body, field in (({"platform": "symbian", "token": fcm_token()}, "platform"),
                        ({"platform": "ios", "token": "has spaces in it"}, "token"),
                        ({"platform": "ios", "token": "x" * 1025}, "token"),
                        ({"platform": "ios"}, "token")):
        response = await client.post("/v1/devices", json=body, headers=account.headers)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == field


async def test_preferences_start_at_the_defaults_and_replace_as_a_whole(client: AsyncTestClient) -> None:
    account = await register(client)
    defaults = (await client.get("/v1/notification-preferences", headers=account.headers)).json()["push"]
    assert defaults["trade.opened"] is True and defaults["bot.paused"] is True and defaults["bot.status"] is False
    assert "decision" not in defaults and "order" not in defaults  # every cycle: stream only, never a phone

    changed = await client.put("/v1/notification-preferences", headers=account.headers,
                               json={"push": {"trade.opened": False, "bot.status": True}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["push"]["trade.opened"] is False and changed.json()["push"]["bot.status"] is True
    stored = (await client.get("/v1/notification-preferences", headers=account.headers)).json()["push"]
    assert stored == changed.json()["push"]

    reset = await client.put("/v1/notification-preferences", headers=account.headers, json={"push": {}})
    assert reset.json()["push"] == defaults


async def test_preferences_refuse_types_that_are_never_pushed(client: AsyncTestClient) -> None:
    account = await register(client)
    for push in ({"decision": True}, {"trade.opened": "yes"}, {"nonsense": False}):
        response = await client.put("/v1/notification-preferences", headers=account.headers, json={"push": push})
        assert response.status_code == 422, push


async def test_each_user_has_their_own_preferences(client: AsyncTestClient) -> None:
    first, second = await register(client), await register(client)
    await client.put("/v1/notification-preferences", headers=first.headers, json={"push": {"trade.closed": False}})
    assert (await client.get("/v1/notification-preferences",
                             headers=second.headers)).json()["push"]["trade.closed"] is True


async def test_an_api_key_has_no_devices_or_preferences(client: AsyncTestClient) -> None:
    account = await register(client)
    created = await client.post("/v1/api-keys", headers=account.headers,
                                json={"name": "integration", "scopes": ["activity:read", "webhooks:write"]})
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await client.post("/v1/devices", headers=headers,
                              json={"platform": "ios", "token": fcm_token()})).status_code == 403
    assert (await client.get("/v1/notification-preferences", headers=headers)).status_code == 403
