"""The accounts API as a mobile client uses it."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from api.middleware import TrustedProxies
from tests.conftest import PASSWORD, make_settings, register, unique_email


async def test_register_login_me_refresh_and_reuse_revokes_the_family(client: AsyncTestClient) -> None:
    email = unique_email("flow")
    registered = await register(client, email)
    assert registered.tokens["tokenType"] == "Bearer" and registered.tokens["expiresIn"] > 0

    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    first = login.json()
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {first['accessToken']}"})
    assert me.status_code == 200
    assert me.json()["email"] == email and me.json()["role"] == "owner"

    rotated = await client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refreshToken"] != first["refreshToken"]
    assert (await client.get("/v1/me", headers={"Authorization": f"Bearer {second['accessToken']}"})).status_code == 200

    # The rotated token has been used in turn, so the first one coming back is a replay, not a race.
    third = (await client.post("/v1/auth/refresh", json={"refreshToken": second["refreshToken"]})).json()
    reused = await client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reused.status_code == 401
    assert reused.headers["content-type"].startswith("application/problem+json")

    # The whole family is revoked: the tokens issued by the rotations and their access tokens stop working.
    assert (await client.post("/v1/auth/refresh", json={"refreshToken": third["refreshToken"]})).status_code == 401
    assert (await client.get("/v1/me", headers={"Authorization": f"Bearer {second['accessToken']}"})).status_code == 401
    assert (await client.get("/v1/me", headers={"Authorization": f"Bearer {third['accessToken']}"})).status_code == 401
    # Another session of the same user (from registration) is untouched.
    assert (await client.get("/v1/me", headers=registered.headers)).status_code == 200


async def test_concurrent_refreshes_with_one_token_issue_at_most_one_pair(client: AsyncTestClient) -> None:
    account = await register(client)
    body = {"refreshToken": account.tokens["refreshToken"]}
    results = await asyncio.gather(*(client.post("/v1/auth/refresh", json=body) for _ in range(5)))
    # Within the grace window every duplicate is answered, always with the one pair issued: no fork.
    assert {r.status_code for r in results} == {200}
    assert len({r.json()["refreshToken"] for r in results}) == 1


async def test_emails_are_normalised_and_duplicates_are_a_409(client: AsyncTestClient) -> None:
    email = unique_email("dup")
    await register(client, email)
    again = await client.post("/v1/auth/register", json={"email": f"  {email.upper()} ", "password": PASSWORD})
    assert again.status_code == 409
    assert again.json()["type"].endswith("/conflict")
    login = await client.post("/v1/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert login.status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_401(client: AsyncTestClient) -> None:
    account = await register(client)
    wrong = await client.post("/v1/auth/login", json={"email": account.email, "password": "not the password"})
    unknown = await client.post("/v1/auth/login", json={"email": unique_email("nobody"), "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_logout_ends_the_session(client: AsyncTestClient) -> None:
    account = await register(client)
    assert (await client.post("/v1/auth/logout", headers=account.headers)).status_code == 204
    assert (await client.get("/v1/me", headers=account.headers)).status_code == 401
    refresh = await client.post("/v1/auth/refresh", json={"refreshToken": account.tokens["refreshToken"]})
    assert refresh.status_code == 401


async def test_changing_the_password_ends_other_sessions_but_not_this_one(client: AsyncTestClient) -> None:
    account = await register(client)
    other = (await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})).json()
    new_password = "a much better passphrase"
    wrong = await client.post("/v1/me/password", headers=account.headers,
                              json={"currentPassword": "nope", "newPassword": new_password})
    assert wrong.status_code == 401
    changed = await client.post("/v1/me/password", headers=account.headers,
                                json={"currentPassword": PASSWORD, "newPassword": new_password})
    assert changed.status_code == 204
    assert (await client.get("/v1/me", headers=account.headers)).status_code == 200
    assert (await client.get("/v1/me", headers={"Authorization": f"Bearer {other['accessToken']}"})).status_code == 401
    assert (await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})).status_code == 401
    relogin = await client.post("/v1/auth/login", json={"email": account.email, "password": new_password})
    assert relogin.status_code == 200


async def test_forged_or_garbage_tokens_are_rejected(client: AsyncTestClient) -> None:
    account = await register(client)
    header, payload, signature = account.tokens["accessToken"].split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    for token in (forged, "garbage", account.tokens["refreshToken"]):
        response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    refresh_with_access = await client.post("/v1/auth/refresh", json={"refreshToken": account.tokens["accessToken"]})
    assert refresh_with_access.status_code == 401


async def test_login_attempts_are_throttled_per_account_across_api_processes(settings) -> None:
    limited = make_settings(settings.database_url, settings.redis_url,
                            login_attempts_per_account="3", login_window_seconds="60")
    # Two app instances with their own Redis connections stand for two API processes.
    async with AsyncTestClient(app=create_app(limited)) as one, AsyncTestClient(app=create_app(limited)) as two:
        account = await register(one)
        statuses = []
        for attempt in range(5):
            api = one if attempt % 2 else two
            r = await api.post("/v1/auth/login", json={"email": account.email, "password": "wrong password!"})
            statuses.append(r.status_code)
        assert statuses[:3] == [401, 401, 401]
        assert statuses[3:] == [429, 429]
        blocked = await one.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["Retry-After"]) <= 60
        assert blocked.headers["content-type"].startswith("application/problem+json")


async def test_login_attempts_are_throttled_per_client_ip(settings) -> None:
    limited = make_settings(settings.database_url, settings.redis_url,
                            login_attempts_per_ip="4", login_window_seconds="60")
    async with AsyncTestClient(app=create_app(limited)) as api:
        # Every test client has the same address; start this one's count from zero.
        async with Redis.from_url(settings.redis_url) as redis:
            await redis.delete("quorum:rl:login:ip:testclient")
        # Password spraying: a different account each time, all from one client address.
        statuses = [
            (await api.post("/v1/auth/login", json={"email": unique_email("spray"), "password": "whatever pw"}))
            .status_code
            for _ in range(6)
        ]
        assert statuses == [401] * 4 + [429] * 2


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    proxies = TrustedProxies(("10.0.0.0/8",))
    assert proxies.client_ip("10.1.2.3", "198.51.100.7, 10.9.9.9") == "198.51.100.7"
    assert proxies.client_ip("203.0.113.5", "198.51.100.7") == "203.0.113.5"  # spoofed header, untrusted peer
    assert proxies.client_ip("10.1.2.3", None) == "10.1.2.3"


async def _deactivate(settings, email: str) -> None:
    import psycopg

    with psycopg.connect(settings.database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("UPDATE users SET is_active = false WHERE email = %s", (email,))


async def test_a_deactivated_account_is_named_only_to_the_right_password(client: AsyncTestClient, settings) -> None:
    account = await register(client)
    await _deactivate(settings, account.email)
    wrong = await client.post("/v1/auth/login", json={"email": account.email, "password": "not the password"})
    unknown = await client.post("/v1/auth/login",
                                json={"email": unique_email("nobody"), "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong email or password"
    right = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert right.status_code == 401 and right.json()["detail"] == "this account is deactivated"


async def test_a_known_email_takes_no_longer_to_refuse_than_an_unknown_one(client: AsyncTestClient) -> None:
    account = await register(client)
    known: list[float] = []
    unknown: list[float] = []
    for _ in range(15):  # interleaved, so a burst of load on the machine hits both alike
        for email, times in ((account.email, known), (unique_email("nobody"), unknown)):
            started = time.perf_counter()
            answer = await client.post("/v1/auth/login", json={"email": email, "password": "wrong pw"})
            assert answer.status_code == 401
            times.append(time.perf_counter() - started)
    # Before: ~60 ms against ~50 ms (an extra transaction to read the hash and one to audit).
    assert statistics.median(known) < statistics.median(unknown) * 1.1 + 0.002, (known, unknown)


@pytest.mark.parametrize("limit", ["registrations_per_ip", "registrations_global"])
async def test_registration_is_throttled_per_address_and_for_the_whole_service(settings, limit: str) -> None:
    limited = make_settings(settings.database_url, settings.redis_url, registration_window_seconds="60",
                            **{limit: "3"})
    async with AsyncTestClient(app=create_app(limited)) as api:
        async with Redis.from_url(settings.redis_url) as redis:  # counted from zero for this test
            await redis.delete("quorum:rl:register:ip:testclient", "quorum:rl:register:all")
        answers = [await api.post("/v1/auth/register", json={"email": unique_email("farm"), "password": PASSWORD})
                   for _ in range(5)]
        assert [a.status_code for a in answers] == [201] * 3 + [429] * 2
        assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
        assert answers[-1].headers["content-type"].startswith("application/problem+json")
        async with Redis.from_url(settings.redis_url) as redis:
            await redis.delete("quorum:rl:register:ip:testclient", "quorum:rl:register:all")


@pytest.mark.parametrize("weak", [" " * 10, "password123456", "qwertyuiop", "{local}@example.com"])
async def test_a_guessable_password_is_refused_naming_the_field_why_and_what_to_do(client: AsyncTestClient,
                                                                                 weak: str) -> None:
    email = unique_email("weak")
    response = await client.post("/v1/auth/register",
                                 json={"email": email, "password": weak.format(local=email.split("@")[0])})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert error["field"] == "password"
    assert error["message"].startswith("too easy to guess")
    assert "Add another word or two" in error["message"]  # zxcvbn's suggestion
    assert (await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})).status_code == 401


async def test_weak_passwords_tried_first_do_not_use_up_the_registration_throttle(settings) -> None:
    limited = make_settings(settings.database_url, settings.redis_url, registrations_per_ip="1")
    async with AsyncTestClient(app=create_app(limited)) as api:
        async with Redis.from_url(settings.redis_url) as redis:
            await redis.delete("quorum:rl:register:ip:testclient")
        email = unique_email("retry")
        for weak in ("aaaaaaaaaa", "1234567890", "password1234"):
            assert (await api.post("/v1/auth/register", json={"email": email, "password": weak})).status_code == 422
        assert (await api.post("/v1/auth/register", json={"email": email, "password": PASSWORD})).status_code == 201
        async with Redis.from_url(settings.redis_url) as redis:
            await redis.delete("quorum:rl:register:ip:testclient")


async def test_a_password_cannot_be_changed_to_a_guessable_one(client: AsyncTestClient) -> None:
    account = await register(client)
    for weak in (" " * 10, PASSWORD + "1"):  # the old password with a digit is as good as the old password
        changed = await client.post("/v1/me/password", headers=account.headers,
                                    json={"currentPassword": PASSWORD, "newPassword": weak})
        assert changed.status_code == 422, changed.text
        assert changed.json()["errors"][0]["field"] == "newPassword"
    assert (await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})).status_code == 200


async def test_two_concurrent_refreshes_with_one_token_both_get_the_winners_pair(client: AsyncTestClient) -> None:
    account = await register(client)
    body = {"refreshToken": account.tokens["refreshToken"]}
    one, two = await asyncio.gather(client.post("/v1/auth/refresh", json=body),
                                    client.post("/v1/auth/refresh", json=body))
    assert one.status_code == two.status_code == 200, (one.text, two.text)
    assert one.json()["refreshToken"] == two.json()["refreshToken"]
    for pair in (one.json(), two.json()):
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {pair['accessToken']}"})
        assert me.status_code == 200
    # The family lives on: the shared successor rotates normally.
    onward = await client.post("/v1/auth/refresh", json={"refreshToken": one.json()["refreshToken"]})
    assert onward.status_code == 200


async def test_a_duplicate_refresh_after_the_grace_window_revokes_the_family(settings) -> None:
    strict = make_settings(settings.database_url, settings.redis_url, refresh_grace_seconds="0")
    async with AsyncTestClient(app=create_app(strict)) as api:
        account = await register(api)
        body = {"refreshToken": account.tokens["refreshToken"]}
        winner = (await api.post("/v1/auth/refresh", json=body)).json()
        await asyncio.sleep(0.01)
        assert (await api.post("/v1/auth/refresh", json=body)).status_code == 401
        assert (await api.post("/v1/auth/refresh", json={"refreshToken": winner["refreshToken"]})).status_code == 401
