"""A fake Bybit v5 for the exchange tests, and both Bybit adapters (ccxt and pybit) pointed at it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests.fakes.bybit_v5 import FakeBybitV5
from workers.exchanges.base import Exchange
from workers.exchanges.bybit import BybitExchange
from workers.exchanges.ccxt_exchange import CcxtExchange

Connect = Callable[..., Exchange]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBybitV5]:
    with FakeBybitV5() as server:
        yield server


@pytest.fixture(params=["ccxt", "pybit"])
async def connect(request: pytest.FixtureRequest, fake: FakeBybitV5) -> AsyncIterator[Connect]:
    """Builds the adapter under test for a key: ccxt's bybit, or pybit. Closes them afterwards."""
    made: list[Exchange] = []

    def make(api_key: str, secret: str, *, timeout_s: float = 5.0) -> Exchange:
        exchange: Exchange
        if request.param == "ccxt":
            exchange = CcxtExchange(
                "bybit", api_key=api_key, secret=secret, api_origin=fake.origin, timeout_ms=int(timeout_s * 1000)
            )
        else:
            exchange = BybitExchange(api_key=api_key, secret=secret, endpoint=fake.origin, timeout_s=timeout_s)
        made.append(exchange)
        return exchange

    yield make
    for exchange in made:
        await exchange.close()


@pytest.fixture
def new_key(fake: FakeBybitV5) -> Callable[..., tuple[str, str]]:
    """Registers a fresh key on its own account; returns (api key, secret)."""

    def register(**permissions: Any) -> tuple[str, str]:
        api_key, secret = f"key{uuid.uuid4().hex[:12]}", f"secret-{uuid.uuid4().hex}"
        fake.add_key(api_key, secret, **permissions)
        return api_key, secret

    return register


@pytest.fixture
def key(new_key: Callable[..., tuple[str, str]]) -> tuple[str, str]:
    return new_key()


@pytest.fixture
def exchange(connect: Connect, key: tuple[str, str]) -> Exchange:
    return connect(*key)
