"""The fake Bybit checks signatures the way Bybit documents them, so the adapters' signing is really tested."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from tests.fakes.bybit_v5 import FakeBybitV5

API_KEY, SECRET = "rawkey", "raw-secret"


@pytest.fixture
def raw_fake(fake: FakeBybitV5) -> FakeBybitV5:
    fake.add_key(API_KEY, SECRET)
    return fake


def signed_headers(payload: str, *, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts, window = str(timestamp or int(time.time() * 1000)), "5000"
    sign = hmac.new(secret.encode(), (ts + API_KEY + window + payload).encode(), hashlib.sha256).hexdigest()
    return {"X-BAPI-API-KEY": API_KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": window, "X-BAPI-SIGN": sign}


def test_get_signed_over_its_query_string_is_accepted(raw_fake):
    query = "accountType=UNIFIED"

    answer = httpx.get(f"{raw_fake.origin}/v5/account/wallet-balance?{query}", headers=signed_headers(query)).json()

    assert answer["retCode"] == 0


def test_query_changed_after_signing_is_refused_as_a_bad_signature(raw_fake):
    headers = signed_headers("category=linear&symbol=BTCUSDT")

    answer = httpx.get(f"{raw_fake.origin}/v5/position/list?category=linear&symbol=ETHUSDT", headers=headers).json()

    assert answer["retCode"] == 10004


def test_post_signed_over_its_raw_body_is_accepted_and_a_changed_body_is_refused(raw_fake):
    body = json.dumps({"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "3", "sellLeverage": "3"})
    url = f"{raw_fake.origin}/v5/position/set-leverage"

    accepted = httpx.post(url, content=body, headers=signed_headers(body)).json()
    refused = httpx.post(url, content=body.replace('"3"', '"4"'), headers=signed_headers(body)).json()

    assert (accepted["retCode"], refused["retCode"]) == (0, 10004)


def test_stale_timestamp_and_unknown_key_are_refused(raw_fake):
    query = "accountType=UNIFIED"
    url = f"{raw_fake.origin}/v5/account/wallet-balance?{query}"

    stale = httpx.get(url, headers=signed_headers(query, timestamp=int(time.time() * 1000) - 60_000)).json()
    unknown = httpx.get(url, headers={**signed_headers(query), "X-BAPI-API-KEY": "nobody"}).json()

    assert (stale["retCode"], unknown["retCode"]) == (10002, 10003)
