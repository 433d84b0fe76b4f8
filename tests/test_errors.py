"""Bad input gets RFC 9457 problem details that say what is wrong, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.exceptions import ClientException, SerializationException
from litestar.testing import AsyncTestClient

from api.request_body import decode_body
from tests.conftest import Account

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


async def test_malformed_json_is_a_400(client: AsyncTestClient) -> None:
    response = await client.post("/v1/auth/register", content=b'{"email": "a@b.c", ',
                                 headers={"content-type": "application/json"})
    body = assert_problem(response, 400)
    assert body["type"].endswith("/malformed-json")


async def test_unknown_fields_are_rejected_and_named(client: AsyncTestClient) -> None:
    response = await client.post("/v1/auth/login", json={"email": "a@b.co", "password": "x", "isAdmin": True})
    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "isAdmin", "message": "Object contains unknown field `isAdmin`"}]


async def test_validation_errors_name_the_field(client: AsyncTestClient) -> None:
    response = await client.post("/v1/auth/register", json={"email": "not-an-email", "password": "long enough pw"})
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "email"
    short = await client.post("/v1/auth/register", json={"email": "ok@example.com", "password": "short"})
    assert assert_problem(short, 422)["errors"][0]["field"] == "password"
    missing = await client.post("/v1/auth/register", json={"email": "ok@example.com"})
    assert "password" in assert_problem(missing, 422)["detail"]


async def test_wrong_body_type_is_rejected(client: AsyncTestClient) -> None:
    assert_problem(await client.post("/v1/auth/login", json=[1, 2, 3]), 422)
    assert_problem(await client.post("/v1/auth/login", json={"email": 5, "password": None}), 422)


async def test_oversized_bodies_are_a_413(client: AsyncTestClient) -> None:
    huge = b'{"email": "' + b"a" * 2_000_000 + b'"}'
    assert_problem(await client.post("/v1/auth/login", content=huge, headers={"content-type": "application/json"}),
                   413)


async def test_wrong_methods_are_a_405(client: AsyncTestClient) -> None:
    assert_problem(await client.delete("/health"), 405)
    assert_problem(await client.get("/v1/auth/login"), 405)


async def test_unknown_routes_are_a_404(client: AsyncTestClient) -> None:
    body = assert_problem(await client.get("/v1/no-such-thing"), 404)
    assert body["instance"] == "/v1/no-such-thing"


async def test_every_response_carries_its_request_id(client: AsyncTestClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/v1/nowhere", headers={"X-Request-ID": "bad id with spaces\n"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert generated.json()["requestId"] == generated.headers["x-request-id"]


async def test_nul_characters_are_refused_with_a_4xx(client: AsyncTestClient) -> None:
    for path, body in (("/v1/auth/login", {"email": "a\u0000@example.com", "password": "x"}),
                       ("/v1/auth/register", {"email": "a@example.com", "password": "long enough\u0000pw"})):
        response = await client.post(path, json=body)
        assert 400 <= response.status_code < 500, response.text


async def test_options_lists_every_method_of_a_path(client: AsyncTestClient) -> None:
    response = await client.options("/v1/exchange-keys")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, OPTIONS, POST"
    item = await client.options("/v1/exchange-keys/01a2001e-ed09-7002-9166-61a3e9e1a5ae")
    assert item.headers["allow"] == "DELETE, GET, OPTIONS"
    assert (await client.options("/v1/nowhere")).status_code == 404


async def test_a_body_that_is_not_utf8_is_a_400(client: AsyncTestClient) -> None:
    response = await client.post("/v1/auth/login", content=b'{"email":"\xff","password":"x"}',
                                 headers={"content-type": "application/json"})
    assert assert_problem(response, 400)["type"].endswith("/malformed-json")


async def test_json_nested_a_thousand_deep_is_refused_as_input(client: AsyncTestClient) -> None:
    # A typed decoder refuses the first value of the wrong shape (422) before it descends; a body
    # cut short inside the nesting is malformed (400). Neither is a 500.
    deep = b'{"email":' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = await client.post("/v1/auth/register", content=deep, headers={"content-type": "application/json"})
    assert assert_problem(response, 422)["errors"][0]["field"] == "email"
    cut = await client.post("/v1/auth/register", content=b'{"email":"a@b.co","password":' + b"[" * 5000,
                            headers={"content-type": "application/json"})
    assert assert_problem(cut, 422)["errors"][0]["field"] == "password"


def test_nesting_beyond_the_decoders_depth_is_malformed_not_a_crash() -> None:
    # Reached when the target type admits any value, where msgspec raises RecursionError.
    with pytest.raises(ClientException) as raised:
        decode_body(b"[" * 100_000 + b"]" * 100_000, Any)
    assert raised.value.status_code == 400 and isinstance(raised.value.__cause__, SerializationException)


async def test_a_number_sent_as_a_string_is_refused(client: AsyncTestClient, account: Account) -> None:
    response = await client.post("/v1/bots", json={"leverage": "5"}, headers=account.headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "leverage"
    assert body["errors"][0]["message"].endswith("got `str`")


async def test_every_response_carries_the_security_headers(client: AsyncTestClient, account: Account) -> None:
    for response in (await client.get("/health"), await client.get("/v1/no-such-thing"),
                     await client.get("/v1/me", headers=account.headers), await client.options("/v1/bots")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"


async def test_an_undocumented_query_parameter_is_a_400_naming_it(client: AsyncTestClient, account: Account) -> None:
    # A misspelt filter must not silently answer everything.
    response = await client.get("/v1/decisions?sybmol=BTC/USDT&limit=5&debug=1", headers=account.headers)
    body = assert_problem(response, 400)
    assert sorted(e["field"] for e in body["errors"]) == ["debug", "sybmol"]
    assert all(e["message"] == "unknown query parameter" for e in body["errors"])
    assert (await client.get("/v1/decisions?symbol=BTC/USDT&limit=5", headers=account.headers)).status_code == 200


@pytest.mark.parametrize("moment", ["0.5", "1733238000", "yesterday", "2026-13-01T00:00:00Z"])
async def test_a_time_that_is_not_iso_8601_is_a_400(client: AsyncTestClient, account: Account, moment: str) -> None:
    response = await client.get("/v1/decisions", params={"until": moment}, headers=account.headers)
    body = assert_problem(response, 400)
    assert [e["field"] for e in body["errors"]] == ["until"]


async def test_iso_8601_times_are_accepted_with_or_without_a_zone(client: AsyncTestClient, account: Account) -> None:
    for moment in ("2026-12-03T15:00:00Z", "2026-12-03T15:00:00+01:00", "2026-12-03T15:00:00"):
        response = await client.get("/v1/decisions", params={"since": moment}, headers=account.headers)
        assert response.status_code == 200, (moment, response.text)


async def test_a_422_names_every_bad_field_not_only_the_first(client: AsyncTestClient, account: Account) -> None:
    response = await client.post("/v1/bots", headers=account.headers, json={
        "name": "three wrongs", "leverage": "5", "riskPerTradePct": 999, "timeframes": ["9m"], "colour": "red",
    })
    body = assert_problem(response, 422)
    named = {e["field"]: e["message"] for e in body["errors"]}
    assert set(named) == {"leverage", "riskPerTradePct", "timeframes[0]", "colour"}, named
    assert named["leverage"] == "Expected `float`, got `str`"
    assert named["colour"] == "Object contains unknown field `colour`"
    missing = await client.post("/v1/auth/register", json={"email": "x"})
    assert {e["field"] for e in assert_problem(missing, 422)["errors"]} == {"email", "password"}


def test_the_collecting_pass_agrees_with_the_decoder_on_valid_bodies() -> None:
    from api.bots.schemas import BotRequest
    from api.request_body import _every_problem

    valid = b'{"name": "fine", "leverage": 2, "timeframes": ["1h"]}'
    assert decode_body(valid, BotRequest).leverage == 2
    assert _every_problem(valid, BotRequest) == []
