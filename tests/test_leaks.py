"""An exchange secret, once linked and used, appears nowhere: not in the database, responses, logs or Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from litestar.testing import AsyncTestClient

from quorum.settings import Settings
from tests.conftest import register
from tests.fakes.bybit_v5 import FakeBybitV5


def _database_dump(settings: Settings) -> str:
    with psycopg.connect(settings.database_url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(
            str(row[0]) for table in tables for row in conn.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608
        )


def _redis_dump(url: str) -> bytes:
    client = redis.Redis.from_url(url)
    chunks: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            chunks.append(client.get(key) or b"")
        elif kind == b"list":
            chunks.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            chunks.extend(v for pair in client.hgetall(key).items() for v in pair)
        elif kind in (b"set", b"zset"):
            chunks.extend(client.smembers(key) if kind == b"set" else client.zrange(key, 0, -1))
    return b"\n".join(chunks)


@pytest.mark.parametrize("exchange", ["bybit"])
async def test_a_linked_secret_appears_nowhere(
    exchange: str, client: AsyncTestClient, settings: Settings, fake_bybit: FakeBybitV5,
    key_check_worker: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    api_key = f"LEAK{uuid.uuid4().hex[:14].upper()}"
    secret = f"SECRET-{uuid.uuid4().hex}-{uuid.uuid4().hex}"
    passphrase = f"PASS-{uuid.uuid4().hex}"
    fake_bybit.add_key(api_key, secret)
    account = await register(client)

    responses = []
    linked = await client.post("/v1/exchange-keys", headers=account.headers, json={
        "exchange": exchange, "label": "leak test", "apiKey": api_key, "secret": secret, "passphrase": passphrase})
    assert linked.status_code == 201, linked.text  # the worker decrypted and used it to ask the exchange
    responses.append(linked.text)
    responses.append((await client.get("/v1/exchange-keys", headers=account.headers)).text)
    responses.append((await client.get(f"/v1/exchange-keys/{linked.json()['id']}", headers=account.headers)).text)
    responses.append((await client.get("/v1/audit", headers=account.headers)).text)
    # A failed link with a wrong secret must not echo it either.
    wrong = await client.post("/v1/exchange-keys", headers=account.headers, json={
        "exchange": exchange, "label": "x", "apiKey": api_key, "secret": secret + "-wrong"})
    responses.append(wrong.text)

    needles = {"secret": secret, "passphrase": passphrase, "api key": api_key}
    places = {
        "API responses": "\n".join(responses),
        "database (every table)": _database_dump(settings),
        "API logs": caplog.text,
        "worker logs": await asyncio.to_thread(key_check_worker.read_text, errors="replace"),
        "Redis (Celery messages and results)": _redis_dump(settings.redis_url).decode(errors="replace"),
    }
    # The places were really captured: the worker ran the check task and the API logged the requests.
    assert "quorum.check_exchange_key" in places["worker logs"]
    assert "POST /v1/exchange-keys" in places["API logs"]
    for place, text in places.items():
        for what, needle in needles.items():
            assert needle not in text, f"the {what} leaked into {place}"
            assert needle.encode().hex() not in text, f"the {what} leaked (hex) into {place}"
