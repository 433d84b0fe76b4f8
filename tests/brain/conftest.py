"""Fixtures for the decision tests: a fake OpenAI-compatible server, Redis keys per test, GPT brains."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests.brain.builders import ManualClock, make_breaker
from tests.fakes.openai_server import FakeOpenAI
from workers.brain.breaker import RedisCircuitBreaker
from workers.brain.budget import RedisTokenBudget
from workers.brain.gpt import GptBrain, GptBrainConfig


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_openai(openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake server with an empty script and no recorded requests."""
    openai_server.reset()
    yield openai_server
    openai_server.reset()


@pytest.fixture
def key_prefix() -> str:
    return f"test:brain:{uuid.uuid4().hex}"


@pytest.fixture
async def redis(redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    """A client of the test Redis; the test's keys (under `key_prefix`) are deleted afterwards."""
    client = Redis.from_url(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{key_prefix}:*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gpt_config(fake_openai: FakeOpenAI) -> GptBrainConfig:
    return GptBrainConfig(
        openai_base_url=fake_openai.base_url,
        openai_api_key="test-key",
        openai_model="gpt-4o-mini",
        llm_timeout_seconds=2.0,
        llm_max_retries=2,
        llm_breaker_failures=3,
        llm_breaker_window_seconds=60.0,
        llm_breaker_cooldown_seconds=30.0,
        tenant_daily_token_budget=100_000,
    )


@pytest.fixture
async def gpt(gpt_config: GptBrainConfig) -> AsyncIterator[GptBrain]:
    brain = GptBrain(gpt_config)
    yield brain
    await brain.aclose()


@pytest.fixture
def breaker(redis: Redis, gpt_config: GptBrainConfig, key_prefix: str, clock: ManualClock) -> RedisCircuitBreaker:
    return make_breaker(redis, gpt_config, key_prefix, clock)


@pytest.fixture
def budget(redis: Redis, gpt_config: GptBrainConfig, key_prefix: str, clock: ManualClock) -> RedisTokenBudget:
    return RedisTokenBudget(redis, gpt_config.tenant_daily_token_budget, prefix=key_prefix, clock=clock)
