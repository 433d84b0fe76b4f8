"""The GPT brain through the real `openai` client against a local OpenAI-compatible server.

Every failure of the model — bad JSON, refusal, cut-off, schema violation, errors after retries — must
leave the rules brain deciding, with the reason recorded; a good answer goes through validation and
the risk guard like any other decision.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import msgspec

from tests.brain.builders import PRICE, SYMBOL, answer, bot, inputs
from tests.fakes.openai_server import FakeOpenAI, Reply, completion, error
from workers.brain.breaker import RedisCircuitBreaker
from workers.brain.budget import RedisTokenBudget
from workers.brain.decision import Action
from workers.brain.gpt import (
    SYSTEM_PROMPT,
    FallbackReason,
    GptBrain,
    GptBrainConfig,
    estimate_cost,
    prompt_hash,
)
from workers.brain.risk import RiskRule
from workers.brain.service import BrainKind, DecisionOutcome, DecisionRecord, decide, rules_decision


async def run(gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget, **kw: object) -> DecisionOutcome:
    config = kw.pop("config", None) or bot()
    return await decide(config, kw.pop("inputs", None) or inputs(), gpt=gpt, breaker=breaker, budget=budget)


async def test_good_answer_is_decided_by_gpt_then_sized_by_the_guard(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion(answer()))
    outcome = await run(gpt, breaker, budget)
    record = outcome.record
    assert record.brain == BrainKind.GPT and record.fallback is None
    assert record.proposal.action == Action.OPEN_LONG and record.proposal.leverage == 2
    final = record.final
    assert final.action == Action.OPEN_LONG
    # 1% of 10,000 risked over a 4.0 stop distance: 25 units, within 2x leverage (200 units).
    assert final.size == 25.0
    assert (final.entry, final.stop_loss, final.take_profit) == (PRICE, 96.0, 108.0)
    assert any(a.rule == RiskRule.RISK_PER_TRADE for a in record.adjustments)
    assert record.gpt_proposal is not None and record.gpt_proposal.reasons == [
        "trend up on 5m and 1h",
        "support at 96 holds",
    ]
    assert not outcome.budget_exhausted_notify
    # the decision names its model and that model's training cutoff (the published one: none configured)
    assert (record.model, record.model_cutoff) == ("gpt-4o-mini", "2023-10-01")


async def test_usage_records_prompt_completion_cached_tokens_and_cost(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion(answer(), prompt_tokens=1200, completion_tokens=80, cached_tokens=1024))
    config = bot()
    outcome = await run(gpt, breaker, budget, config=config)
    tokens = outcome.record.tokens
    assert tokens is not None
    assert (tokens.tenant_id, tokens.bot_id) == (config.tenant_id, config.bot_id)
    assert tokens.model == "gpt-4o-mini-2024-07-18"  # what the server says it ran
    assert (tokens.prompt_tokens, tokens.completion_tokens, tokens.cached_tokens) == (1200, 80, 1024)
    # gpt-4o-mini: 176 uncached x $0.15 + 1024 cached x $0.075 + 80 x $0.60, per million.
    assert tokens.cost_usd == Decimal("0.0001512")
    assert tokens.cost_note == ""
    assert (await budget.check(config.tenant_id)).used == 1280


def test_unknown_model_costs_nothing_and_says_why() -> None:
    cost, note = estimate_cost("llama3.1:8b", 1000, 100, 0, GptBrainConfig().prices)
    assert cost == Decimal(0)
    assert "llama3.1:8b" in note


async def test_malformed_json_falls_back_to_rules_with_the_reason(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion('{"action": "OPEN_LONG", "symbol": '))
    record = (await run(gpt, breaker, budget)).record
    assert record.brain == BrainKind.RULES
    assert record.fallback == FallbackReason.INVALID_JSON
    assert record.model_answer == '{"action": "OPEN_LONG", "symbol": '
    assert record.tokens is not None  # the tokens were spent all the same
    assert record.proposal == rules_decision(bot(), inputs())


async def test_refusal_falls_back_to_rules(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion(None, refusal="I can't help with trading decisions."))
    record = (await run(gpt, breaker, budget)).record
    assert record.brain == BrainKind.RULES
    assert record.fallback == FallbackReason.REFUSAL
    assert "can't help" in record.fallback_detail


async def test_answer_cut_off_at_the_token_limit_falls_back_to_rules(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    # Even a cut-off that happens to parse is not trusted.
    fake_openai.reply(completion(answer(), finish_reason="length"))
    record = (await run(gpt, breaker, budget)).record
    assert record.brain == BrainKind.RULES
    assert record.fallback == FallbackReason.TRUNCATED


async def test_answer_outside_the_schema_falls_back_to_rules(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion(answer(leverage="lots", size=1000)))
    record = (await run(gpt, breaker, budget)).record
    assert record.brain == BrainKind.RULES
    assert record.fallback == FallbackReason.SCHEMA_VIOLATION


async def test_rate_limit_is_retried_by_the_client_and_then_succeeds(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(
        error(429, "Rate limit reached for gpt-4o-mini", kind="rate_limit_exceeded", retry_after_ms="10"),
        completion(answer()),
    )
    record = (await run(gpt, breaker, budget)).record
    assert fake_openai.calls == 2
    assert record.brain == BrainKind.GPT and record.fallback is None


async def test_server_errors_after_every_retry_fall_back_to_rules(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.default = error(503, "overloaded", retry_after_ms="10")
    record = (await run(gpt, breaker, budget)).record
    assert fake_openai.calls == 3  # the first attempt and llm_max_retries=2, no more
    assert record.brain == BrainKind.RULES
    assert record.fallback == FallbackReason.API_ERROR
    assert "503" in record.fallback_detail


async def test_prompt_starts_with_the_same_static_instructions_every_call(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion(answer()), completion(answer(action="WAIT", entry=None, stop_loss=None)))
    await run(gpt, breaker, budget)
    await run(gpt, breaker, budget, inputs=inputs(price=100.5))
    first, second = (r["messages"] for r in fake_openai.requests)
    assert first[0] == second[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert first[1]["content"].startswith("BOT CONSTRAINTS") and first[1] == second[1]
    assert first[2]["content"].startswith("MARKET") and first[2] != second[2]
    assert first[3]["content"].startswith("NEWS HEADLINES")


async def test_response_format_is_an_openai_strict_schema_narrowed_to_the_bot(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    config = bot(risk=msgspec.structs.replace(bot().risk, allow_short=False))
    fake_openai.reply(completion(answer()))
    await run(gpt, breaker, budget, config=config)
    fmt = fake_openai.requests[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    assert "$ref" not in json.dumps(schema) and "anyOf" not in json.dumps(schema)
    props = schema["properties"]
    assert props["symbol"]["enum"] == list(config.symbols)
    assert "OPEN_SHORT" not in props["action"]["enum"]
    assert props["stop_loss"]["type"] == ["number", "null"]


async def test_record_keeps_the_hash_of_the_exact_messages_sent(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion(answer()))
    record = (await run(gpt, breaker, budget)).record
    assert record.prompt_hash == prompt_hash(fake_openai.last_messages())
    assert len(record.prompt_hash) == 64


async def test_decision_record_round_trips_and_fingerprints_its_inputs(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(completion(answer()), completion(answer()))
    config = bot()
    a = (await run(gpt, breaker, budget, config=config)).record
    b = (await run(gpt, breaker, budget, config=config, inputs=inputs(price=100.2))).record
    stored = msgspec.json.encode(a)
    assert msgspec.json.decode(stored, type=DecisionRecord) == a
    canonical = msgspec.json.encode({"config": a.config, "inputs": a.inputs}, order="sorted")
    assert a.fingerprint == hashlib.sha256(canonical).hexdigest()
    assert a.fingerprint != b.fingerprint  # a different price is a different input


async def test_rules_brain_bot_produces_the_same_record_shape_without_calling_the_model(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    config = bot(brain=BrainKind.RULES)
    record = (await run(gpt, breaker, budget, config=config)).record
    assert fake_openai.calls == 0
    assert record.requested_brain == record.brain == BrainKind.RULES
    assert record.fallback is None and record.tokens is None and record.prompt_hash is None
    assert record.final.action == Action.OPEN_LONG and record.final.size is not None
    # Replaying the stored inputs through the rules brain gives the same proposal.
    assert rules_decision(record.config, record.inputs) == record.proposal


async def test_gpt_bot_without_a_configured_model_is_decided_by_rules(
    breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    outcome = await decide(bot(), inputs(), gpt=None, breaker=breaker, budget=budget)
    assert outcome.record.brain == BrainKind.RULES
    assert outcome.record.fallback == FallbackReason.NOT_CONFIGURED
    assert outcome.decision.symbol == SYMBOL


async def test_an_answer_that_is_not_a_chat_completion_falls_back_to_rules(
    fake_openai: FakeOpenAI, gpt: GptBrain, breaker: RedisCircuitBreaker, budget: RedisTokenBudget
) -> None:
    fake_openai.reply(Reply(body=b"<html>gateway</html>", headers={"Content-Type": "text/html"}),
                      Reply(body={"choices": "none today"}))
    for _ in range(2):
        record = (await run(gpt, breaker, budget)).record
        assert record.brain == BrainKind.RULES
        assert record.fallback == FallbackReason.API_ERROR, record.fallback_detail
        assert record.tokens is None
