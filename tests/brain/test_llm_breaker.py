"""The circuit breaker around the model, shared by every worker through Redis."""

from __future__ import annotations

import asyncio

import msgspec
from redis.asyncio import Redis

from tests.brain.builders import ManualClock, answer, bot, inputs, make_breaker
from tests.fakes.openai_server import FakeOpenAI, Reply, completion
from workers.brain.breaker import BreakerState, RedisCircuitBreaker
from workers.brain.budget import RedisTokenBudget
from workers.brain.gpt import FallbackReason, GptBrain, GptBrainConfig
from workers.brain.service import BrainKind, decide


async def test_repeated_timeouts_open_the_breaker_for_every_worker_and_a_probe_closes_it(
    fake_openai: FakeOpenAI,
    gpt_config: GptBrainConfig,
    redis: Redis,
    redis_url: str,
    key_prefix: str,
    clock: ManualClock,
    budget: RedisTokenBudget,
) -> None:
    config = msgspec.structs.replace(gpt_config, llm_timeout_seconds=0.2, llm_max_retries=0)
    fake_openai.default = Reply(delay=1.0, body=completion(answer()).body)  # slower than the timeout
    bot_config = bot()

    worker_a = GptBrain(config)
    breaker_a = make_breaker(redis, config, key_prefix, clock)
    try:
        for _ in range(config.llm_breaker_failures):
            record = (await decide(bot_config, inputs(), gpt=worker_a, breaker=breaker_a, budget=budget)).record
            assert record.brain == BrainKind.RULES
            assert record.fallback == FallbackReason.TIMEOUT
        assert await breaker_a.state() == BreakerState.OPEN

        calls = fake_openai.calls
        record = (await decide(bot_config, inputs(), gpt=worker_a, breaker=breaker_a, budget=budget)).record
        assert record.fallback == FallbackReason.BREAKER_OPEN
        assert record.final.action is not None and record.brain == BrainKind.RULES
        assert fake_openai.calls == calls  # the model was not called at all
    finally:
        await worker_a.aclose()

    # Another worker: its own brain, its own Redis connection, the same breaker.
    other_redis = Redis.from_url(redis_url)
    worker_b = GptBrain(config)
    breaker_b = make_breaker(other_redis, config, key_prefix, clock)
    try:
        record = (await decide(bot_config, inputs(), gpt=worker_b, breaker=breaker_b, budget=budget)).record
        assert record.fallback == FallbackReason.BREAKER_OPEN
        assert fake_openai.calls == calls

        # After the cooldown one probe goes through; the model answers again and the breaker closes.
        clock.advance(config.llm_breaker_cooldown_seconds + 1)
        fake_openai.default = None
        fake_openai.reply(completion(answer()))
        record = (await decide(bot_config, inputs(), gpt=worker_b, breaker=breaker_b, budget=budget)).record
        assert record.brain == BrainKind.GPT and record.fallback is None
        assert await breaker_a.state() == BreakerState.CLOSED
    finally:
        await worker_b.aclose()
        await other_redis.aclose()


async def test_only_one_worker_probes_after_the_cooldown_and_a_failed_probe_reopens(
    redis: Redis, redis_url: str, gpt_config: GptBrainConfig, key_prefix: str, clock: ManualClock
) -> None:
    first = make_breaker(redis, gpt_config, key_prefix, clock)
    other_redis = Redis.from_url(redis_url)
    second = make_breaker(other_redis, gpt_config, key_prefix, clock)
    try:
        for _ in range(gpt_config.llm_breaker_failures):
            assert await first.allow() == BreakerState.CLOSED
            await first.record_failure()
        assert await second.allow() == BreakerState.OPEN

        clock.advance(gpt_config.llm_breaker_cooldown_seconds)
        assert await first.allow() == BreakerState.HALF_OPEN  # this caller is the probe
        assert await second.allow() == BreakerState.OPEN  # the others keep using the rules brain
        await first.record_failure()
        assert await second.state() == BreakerState.OPEN

        clock.advance(gpt_config.llm_breaker_cooldown_seconds)
        assert await second.allow() == BreakerState.HALF_OPEN
        await second.record_success()
        assert await first.allow() == BreakerState.CLOSED
    finally:
        await other_redis.aclose()


async def test_failures_spread_wider_than_the_window_do_not_open_the_breaker(
    redis: Redis, gpt_config: GptBrainConfig, key_prefix: str, clock: ManualClock
) -> None:
    breaker = make_breaker(
        redis, msgspec.structs.replace(gpt_config, llm_breaker_window_seconds=0.2), key_prefix, clock
    )
    for _ in range(gpt_config.llm_breaker_failures - 1):
        await breaker.record_failure()
    await asyncio.sleep(0.3)  # the failure counter expires with the window (Redis time)
    await breaker.record_failure()
    assert await breaker.allow() == BreakerState.CLOSED


async def test_bad_answers_do_not_count_as_outages(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.default = completion("not json at all")
    for _ in range(5):
        record = (await decide(bot(), inputs(), gpt=gpt, breaker=breaker, budget=budget)).record
        assert record.fallback == FallbackReason.INVALID_JSON
    assert await breaker.state() == BreakerState.CLOSED
