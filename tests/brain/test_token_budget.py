"""The daily token budget per tenant: counted in Redis, checked before each call, the user told once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis

from tests.brain.builders import ManualClock, answer, bot, inputs
from tests.fakes.openai_server import FakeOpenAI, completion
from workers.brain.breaker import RedisCircuitBreaker
from workers.brain.budget import LocalOnlyBudget, RedisTokenBudget
from workers.brain.gpt import FallbackReason, GptBrain
from workers.brain.service import BrainKind, decide


async def test_over_budget_tenant_gets_the_rules_brain_and_is_told_once_per_day(
    fake_openai: FakeOpenAI,
    gpt: GptBrain,
    breaker: RedisCircuitBreaker,
    redis: Redis,
    key_prefix: str,
    clock: ManualClock,
) -> None:
    budget = RedisTokenBudget(redis, 1_000, prefix=key_prefix, clock=clock)
    config = bot()
    fake_openai.default = completion(answer(), prompt_tokens=1200, completion_tokens=80)

    first = await decide(config, inputs(), gpt=gpt, breaker=breaker, budget=budget)
    assert first.record.brain == BrainKind.GPT  # under budget before the call; the call takes it over
    assert not first.budget_exhausted_notify

    second = await decide(config, inputs(), gpt=gpt, breaker=breaker, budget=budget)
    assert second.record.brain == BrainKind.RULES
    assert second.record.fallback == FallbackReason.BUDGET_EXHAUSTED
    assert "1280 of 1000" in second.record.fallback_detail
    assert second.budget_exhausted_notify

    third = await decide(config, inputs(), gpt=gpt, breaker=breaker, budget=budget)
    assert third.record.fallback == FallbackReason.BUDGET_EXHAUSTED
    assert not third.budget_exhausted_notify  # already told today
    assert fake_openai.calls == 1

    clock.advance(86_400)  # a new UTC day: a fresh budget
    fourth = await decide(config, inputs(), gpt=gpt, breaker=breaker, budget=budget)
    assert fourth.record.brain == BrainKind.GPT
    assert fake_openai.calls == 2


async def test_budget_is_per_tenant(
    fake_openai: FakeOpenAI,
    gpt: GptBrain,
    breaker: RedisCircuitBreaker,
    redis: Redis,
    key_prefix: str,
    clock: ManualClock,
) -> None:
    budget = RedisTokenBudget(redis, 1_000, prefix=key_prefix, clock=clock)
    fake_openai.default = completion(answer(), prompt_tokens=1200, completion_tokens=80)
    spender, other = bot(), bot()
    await decide(spender, inputs(), gpt=gpt, breaker=breaker, budget=budget)
    assert (await decide(spender, inputs(), gpt=gpt, breaker=breaker, budget=budget)).record.brain == BrainKind.RULES
    assert (await decide(other, inputs(), gpt=gpt, breaker=breaker, budget=budget)).record.brain == BrainKind.GPT


async def test_workers_add_to_one_counter(redis: Redis, redis_url: str, key_prefix: str, clock: ManualClock) -> None:
    tenant = uuid.uuid4()
    other_redis = Redis.from_url(redis_url)
    try:
        a = RedisTokenBudget(redis, 10_000, prefix=key_prefix, clock=clock)
        b = RedisTokenBudget(other_redis, 10_000, prefix=key_prefix, clock=clock)
        await a.spend(tenant, 300)
        assert await b.spend(tenant, 200) == 500
        assert (await a.check(tenant)).used == 500
        ttl = await redis.ttl(f"{key_prefix}:llm-tokens:{tenant}:" + _utc_day(clock))
        assert 86_400 < ttl <= 2 * 86_400  # expires a day after its day ends
    finally:
        await other_redis.aclose()


async def test_zero_budget_means_unlimited(redis: Redis, key_prefix: str, clock: ManualClock) -> None:
    budget = RedisTokenBudget(redis, 0, prefix=key_prefix, clock=clock)
    tenant = uuid.uuid4()
    await budget.spend(tenant, 10_000_000)
    assert (await budget.check(tenant)).allowed


async def test_local_only_budget_counts_but_never_refuses() -> None:
    budget = LocalOnlyBudget()
    await budget.spend(uuid.uuid4(), 5_000_000)
    check = await budget.check(uuid.uuid4())
    assert check.allowed and check.used == 5_000_000 and not check.notify


def _utc_day(clock: ManualClock) -> str:
    return datetime.fromtimestamp(clock(), UTC).strftime("%Y%m%d")
