"""One decision, start to finish: the LLM proposes, code disposes, and the record explains it.

`decide` runs: budget check → breaker check → GPT call → validation → (the rules brain whenever any
of those fails) → risk guard → `DecisionRecord`. The rules brain path produces the same record, so
every decision is stored, replayed and explained the same way. I/O is limited to the GPT call and
the shared breaker/budget store; the brains' logic, validation and the guard are pure.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from tenants.bot_limits import BrainKind  # one brain kind for the API, the bots and the decisions
from workers.agents.insight import AgentName, Headline, Insight, OpenPosition
from workers.brain.breaker import BreakerState, CircuitBreaker, CoordinationUnavailable, RedisCircuitBreaker
from workers.brain.budget import RedisTokenBudget, TokenBudget
from workers.brain.decision import Decision
from workers.brain.gpt import FallbackReason, GptBrain, GptBrainConfig, GptResult, TokenUsage
from workers.brain.risk import AccountState, Adjustment, RiskConfig, guard
from workers.brain.rules import RulesBrain, RulesParams
from workers.brain.validation import BotConstraints, GptProposal, IssueOutcome, ValidationIssue, validate_proposal
from workers.exchanges.base import MarketRules

log = logging.getLogger(__name__)


class BotConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a bot's configuration a decision depends on."""

    tenant_id: UUID
    bot_id: UUID
    symbols: tuple[str, ...]
    brain: BrainKind = BrainKind.RULES
    risk: RiskConfig = RiskConfig()
    entry_band_pct: float = 1.0  # the GPT brain's entry must lie this close to the price, in %
    weights: dict[AgentName, float] | None = None  # the rules brain's per-agent weights
    rules: RulesParams = RulesParams()

    def constraints(self) -> BotConstraints:
        return BotConstraints(
            symbols=self.symbols,
            allow_short=self.risk.allow_short,
            max_leverage=self.risk.max_leverage,
            entry_band_pct=self.entry_band_pct,
        )


class DecisionInputs(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one decision reads besides the bot's configuration."""

    symbol: str
    price: float | None
    insights: tuple[Insight, ...]
    account: AccountState
    market: MarketRules | None = None  # the exchange's order rules; None: unknown (no rounding, no minimums)
    position: OpenPosition | None = None
    headlines: tuple[Headline, ...] = ()


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What was decided, by which brain, from what, and what the guard changed: enough to replay it.

    `config` and `inputs` are everything the decision read; `fingerprint` identifies them, so equal
    inputs can be found and a rules decision replayed (`rules_decision` + `guard`) to the same result.
    """

    tenant_id: UUID
    bot_id: UUID
    symbol: str
    at: datetime
    config: BotConfig
    inputs: DecisionInputs
    requested_brain: BrainKind
    brain: BrainKind  # the brain whose proposal reached the guard
    fallback: FallbackReason | None
    fallback_detail: str
    fingerprint: str  # sha256 of the canonical encoding of the config and inputs
    prompt_hash: str | None  # sha256 of the exact messages sent to the model
    model: str | None
    tokens: TokenUsage | None
    latency_ms: float  # the brain step: the model call (with retries) and/or the rules brain
    model_answer: str | None  # the model's raw content, when there was one
    gpt_proposal: GptProposal | None  # the model's answer as parsed, before validation
    validation: tuple[ValidationIssue, ...]
    proposal: Decision  # what the brain proposed to the guard
    adjustments: tuple[Adjustment, ...]
    final: Decision
    # The end of the model's training data (YYYY-MM-DD) when configured or published: a backtest over an
    # earlier period is contaminated (the model may have read about it).
    model_cutoff: str | None = None


def shared_breaker_and_budget(redis: Redis, config: GptBrainConfig) -> tuple[RedisCircuitBreaker, RedisTokenBudget]:
    """The circuit breaker and token budget every worker shares through `redis`, as `config` sets them."""
    breaker = RedisCircuitBreaker(
        redis,
        config.breaker_name,
        failure_threshold=config.llm_breaker_failures,
        window_seconds=config.llm_breaker_window_seconds,
        cooldown_seconds=config.llm_breaker_cooldown_seconds,
        # A probe holds its lock for at most one full call with every retry.
        probe_timeout_seconds=config.llm_timeout_seconds * (config.llm_max_retries + 1) + 30,
    )
    return breaker, RedisTokenBudget(redis, config.tenant_daily_token_budget)


class DecisionOutcome(msgspec.Struct, frozen=True):
    record: DecisionRecord
    budget_exhausted_notify: bool = False  # tell the tenant, once per day, that the rules brain took over

    @property
    def decision(self) -> Decision:
        return self.record.final


_CANONICAL = msgspec.json.Encoder(order="sorted")


def fingerprint(config: BotConfig, inputs: DecisionInputs) -> str:
    """sha256 over the canonical JSON of the configuration and the inputs (sorted keys, exact floats)."""
    return hashlib.sha256(_CANONICAL.encode({"config": config, "inputs": inputs})).hexdigest()


def rules_decision(config: BotConfig, inputs: DecisionInputs) -> Decision:
    params = config.rules
    if not config.risk.allow_short and params.allow_short:
        params = msgspec.structs.replace(params, allow_short=False)
    brain = RulesBrain(config.weights, params)
    return brain.decide(inputs.symbol, inputs.insights, inputs.position, inputs.price)


async def decide(
    config: BotConfig,
    inputs: DecisionInputs,
    *,
    gpt: GptBrain | None,
    breaker: CircuitBreaker,
    budget: TokenBudget,
    at: datetime | None = None,
    propose: Callable[[BotConfig, DecisionInputs], Decision] = rules_decision,
) -> DecisionOutcome:
    """Decide for `inputs.symbol` with the bot's brain, falling back to the rules brain, then guard it.
    `propose` is the rules brain's step (a test may script the proposal the guard then meets)."""
    at = at or datetime.now(UTC)
    started = time.perf_counter()
    fallback: FallbackReason | None = None
    detail = ""
    notify = False
    result: GptResult | None = None
    issues: tuple[ValidationIssue, ...] = ()
    proposal: Decision | None = None

    if config.brain == BrainKind.GPT:
        if gpt is None:
            fallback, detail = FallbackReason.NOT_CONFIGURED, "no model base URL or API key configured"
        else:
            fallback, detail, notify, result = await _ask_gpt(config, inputs, gpt, breaker, budget)
        if result is not None and result.proposal is not None:
            validated = validate_proposal(
                result.proposal, config.constraints(), inputs.symbol, inputs.price, inputs.position
            )
            issues = validated.issues
            if validated.decision is None:
                fallback = FallbackReason.REJECTED_BY_VALIDATION
                detail = "; ".join(i.detail for i in issues if i.outcome == IssueOutcome.REJECTED)
            else:
                proposal = validated.decision

    brain = BrainKind.GPT if proposal is not None else BrainKind.RULES
    if proposal is None:
        proposal = propose(config, inputs)
    latency_ms = (time.perf_counter() - started) * 1000
    guarded = guard(proposal, config.risk, inputs.account, inputs.market, inputs.price)

    record = DecisionRecord(
        tenant_id=config.tenant_id,
        bot_id=config.bot_id,
        symbol=inputs.symbol,
        at=at,
        config=config,
        inputs=inputs,
        requested_brain=config.brain,
        brain=brain,
        fallback=fallback,
        fallback_detail=detail,
        fingerprint=fingerprint(config, inputs),
        prompt_hash=result.prompt_hash if result is not None else None,
        model=gpt.model if gpt is not None and config.brain == BrainKind.GPT else None,
        model_cutoff=gpt.cutoff if gpt is not None and config.brain == BrainKind.GPT else None,
        tokens=result.usage if result is not None else None,
        latency_ms=latency_ms,
        model_answer=result.answer if result is not None else None,
        gpt_proposal=result.proposal if result is not None else None,
        validation=issues,
        proposal=proposal,
        adjustments=guarded.adjustments,
        final=guarded.decision,
    )
    return DecisionOutcome(record, budget_exhausted_notify=notify)


async def _ask_gpt(
    config: BotConfig,
    inputs: DecisionInputs,
    gpt: GptBrain,
    breaker: CircuitBreaker,
    budget: TokenBudget,
) -> tuple[FallbackReason | None, str, bool, GptResult | None]:
    """(fallback reason, detail, notify the tenant, the model's result) — the budget, breaker and call."""
    try:
        check = await budget.check(config.tenant_id)
        if not check.allowed:
            return (
                FallbackReason.BUDGET_EXHAUSTED,
                f"{check.used} of {check.limit} tokens used today (UTC)",
                check.notify,
                None,
            )
        state = await breaker.allow()
    except CoordinationUnavailable as exc:
        return FallbackReason.COORDINATION_UNAVAILABLE, str(exc), False, None
    if state == BreakerState.OPEN:
        return FallbackReason.BREAKER_OPEN, "the model failed repeatedly; waiting for the cooldown", False, None

    result = await gpt.propose(
        tenant_id=config.tenant_id,
        bot_id=config.bot_id,
        constraints=config.constraints(),
        symbol=inputs.symbol,
        price=inputs.price,
        insights=inputs.insights,
        headlines=inputs.headlines,
        position=inputs.position,
    )
    try:
        if result.failure is not None and result.failure.is_outage:
            await breaker.record_failure()
        else:
            await breaker.record_success()  # the service answered, even if the answer is unusable
        if result.usage is not None:
            await budget.spend(config.tenant_id, result.usage.total_tokens)
    except CoordinationUnavailable as exc:
        # The decision stands; the counters miss one call. Say so where operators look.
        log.warning("llm breaker/budget not updated", extra={"error": str(exc), "tenant_id": str(config.tenant_id)})
    return result.failure, result.detail, False, result
