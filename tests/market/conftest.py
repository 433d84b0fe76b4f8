"""Fixtures for the market-data tests: the recorded candles and a real Redis with per-test key prefixes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from workers.market.replay import ReplaySource, default_ohlcv_dir


@pytest.fixture(scope="session")
def ohlcv_dir() -> Path:
    folder = default_ohlcv_dir()
    assert folder.is_dir(), f"recorded candles not found in {folder}; set QUORUM_DATA_DIR"
    return folder


@pytest.fixture(scope="session")
def replay(ohlcv_dir: Path) -> ReplaySource:
    return ReplaySource(ohlcv_dir)


@pytest.fixture(scope="session")
def market_redis_url(redis_url: str) -> str:
    """The project's test Redis (REDIS_URL, else an embedded one), from tests/conftest.py."""
    return redis_url


@pytest.fixture
async def redis_prefix(market_redis_url: str) -> AsyncIterator[str]:
    """A key prefix owned by one test; its keys are deleted afterwards, nobody else's are touched."""
    prefix = f"test:market:{uuid.uuid4().hex}"
    yield prefix
    client = Redis.from_url(market_redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
