"""Wire types of the bots API (camelCase, unknown fields rejected); every limit comes from `tenants.bot_limits`.

Percentages and leverage travel as JSON numbers and are stored as Decimal; `tenantId`, `id`, the active
and default flags are not fields of any request, so a body cannot set them.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import Body

from api.wire import NextCursor, Request, Response, text
from tenants import bot_limits as limits
from tenants.bot_limits import BotMode, BrainKind, Timeframe

Name = text(limits.NAME_MIN_LENGTH, limits.NAME_MAX_LENGTH, description="Shown in the app")
# Litestar documents the constraints of list items and dict values from `Body(...)` only, msgspec enforces
# them from `Meta(...)`: items and values carry both, built from the same limits.
_SYMBOL_DOC = "ccxt unified symbol: BASE/QUOTE (spot) or BASE/QUOTE:SETTLE (perpetual), uppercase"
Symbol = Annotated[
    str,
    msgspec.Meta(pattern=limits.SYMBOL_PATTERN),
    Body(pattern=limits.SYMBOL_PATTERN, description=_SYMBOL_DOC),
]
# `extra` is what Litestar adds to the field's OpenAPI schema (keys are OpenAPI names); tenants.bots enforces it.
_UNIQUE = {"extra": {"uniqueItems": True}}
Symbols = Annotated[list[Symbol], msgspec.Meta(
    min_length=limits.SYMBOLS_MIN, max_length=limits.SYMBOLS_MAX, description="Unique symbols to trade",
    extra_json_schema=_UNIQUE,
)]
Timeframes = Annotated[list[Timeframe], msgspec.Meta(
    min_length=limits.TIMEFRAMES_MIN, max_length=limits.TIMEFRAMES_MAX, description="Unique candle timeframes",
    extra_json_schema=_UNIQUE,
)]
Leverage = Annotated[float, msgspec.Meta(ge=limits.LEVERAGE_MIN, le=limits.LEVERAGE_MAX,
                                         description="1 = no leverage (spot)")]
RiskPerTradePct = Annotated[float, msgspec.Meta(
    ge=limits.RISK_PER_TRADE_PCT_MIN, le=limits.RISK_PER_TRADE_PCT_MAX,
    description="Percent of equity lost when a trade's stop-loss is hit",
)]
MaxOpenPositions = Annotated[int, msgspec.Meta(ge=limits.MAX_OPEN_POSITIONS_MIN, le=limits.MAX_OPEN_POSITIONS_MAX)]
DailyLossLimitPct = Annotated[float, msgspec.Meta(
    ge=limits.DAILY_LOSS_LIMIT_PCT_MIN, le=limits.DAILY_LOSS_LIMIT_PCT_MAX,
    description="Percent of the day's starting equity lost before the bot stops trading for the day",
)]
CycleIntervalSeconds = Annotated[int, msgspec.Meta(
    ge=limits.CYCLE_INTERVAL_SECONDS_MIN, le=limits.CYCLE_INTERVAL_SECONDS_MAX,
    description="Seconds between trading cycles",
)]
AgentName = Literal[limits.AGENT_NAMES]  # type: ignore[valid-type]
AgentWeight = Annotated[
    float,
    msgspec.Meta(ge=limits.AGENT_WEIGHT_MIN, le=limits.AGENT_WEIGHT_MAX),
    Body(ge=limits.AGENT_WEIGHT_MIN, le=limits.AGENT_WEIGHT_MAX),
]
AgentWeights = Annotated[dict[AgentName, AgentWeight], msgspec.Meta(
    min_length=1, max_length=len(limits.AGENT_NAMES),
    description=f"Agent -> weight in [0, 1]; agents: {', '.join(limits.AGENT_NAMES)}; at least one above 0",
    extra_json_schema={"extra": {
        "minProperties": 1,
        "propertyNames": Schema(type=OpenAPIType.STRING, enum=list(limits.AGENT_NAMES)),
        "not": {"additionalProperties": {"const": 0}},  # not every weight 0
    }},
)]
BrainModel = text(limits.BRAIN_MODEL_MIN_LENGTH, limits.BRAIN_MODEL_MAX_LENGTH,
                  description=f"The GPT brain's model (default {limits.DEFAULT_GPT_MODEL}); ignored by the rules brain")
ExchangeKeyId = Annotated[uuid.UUID, msgspec.Meta(
    description="A linked exchange key of this tenant; live mode needs one of a real (not paper) exchange",
)]


class BotRequest(Request, kw_only=True):
    """A whole bot configuration; omitted fields take their defaults."""

    name: Name = limits.DEFAULT_BOT_NAME
    exchange_key_id: ExchangeKeyId | None = None
    symbols: Symbols = msgspec.field(default_factory=lambda: list(limits.DEFAULT_SYMBOLS))
    timeframes: Timeframes = msgspec.field(default_factory=lambda: list(limits.DEFAULT_TIMEFRAMES))
    leverage: Leverage = limits.DEFAULT_LEVERAGE
    risk_per_trade_pct: RiskPerTradePct = limits.DEFAULT_RISK_PER_TRADE_PCT
    max_open_positions: MaxOpenPositions = limits.DEFAULT_MAX_OPEN_POSITIONS
    daily_loss_limit_pct: DailyLossLimitPct = limits.DEFAULT_DAILY_LOSS_LIMIT_PCT
    cycle_interval_seconds: CycleIntervalSeconds = limits.DEFAULT_CYCLE_INTERVAL_SECONDS
    agent_weights: AgentWeights = msgspec.field(default_factory=lambda: dict(limits.DEFAULT_AGENT_WEIGHTS))
    brain: BrainKind = limits.DEFAULT_BRAIN
    brain_model: BrainModel | None = None
    mode: BotMode = limits.DEFAULT_MODE


class BotPatchRequest(Request, kw_only=True):
    """Only the fields present change; `exchangeKeyId: null` unlinks the key."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    exchange_key_id: ExchangeKeyId | None | msgspec.UnsetType = msgspec.UNSET
    symbols: Symbols | msgspec.UnsetType = msgspec.UNSET
    timeframes: Timeframes | msgspec.UnsetType = msgspec.UNSET
    leverage: Leverage | msgspec.UnsetType = msgspec.UNSET
    risk_per_trade_pct: RiskPerTradePct | msgspec.UnsetType = msgspec.UNSET
    max_open_positions: MaxOpenPositions | msgspec.UnsetType = msgspec.UNSET
    daily_loss_limit_pct: DailyLossLimitPct | msgspec.UnsetType = msgspec.UNSET
    cycle_interval_seconds: CycleIntervalSeconds | msgspec.UnsetType = msgspec.UNSET
    agent_weights: AgentWeights | msgspec.UnsetType = msgspec.UNSET
    brain: BrainKind | msgspec.UnsetType = msgspec.UNSET
    brain_model: BrainModel | None | msgspec.UnsetType = msgspec.UNSET
    mode: BotMode | msgspec.UnsetType = msgspec.UNSET


class BotView(Response, kw_only=True):
    id: uuid.UUID
    name: str
    exchange_key_id: uuid.UUID | None
    symbols: list[str]
    timeframes: list[Timeframe]
    leverage: float
    risk_per_trade_pct: float
    max_open_positions: int
    daily_loss_limit_pct: float
    cycle_interval_seconds: int
    agent_weights: dict[str, float]
    brain: BrainKind
    brain_model: str | None
    mode: BotMode
    active: bool
    is_default: bool
    paused_reason: Annotated[str | None, msgspec.Meta(
        description="Why the system paused the bot (e.g. the exchange refused its key); cleared on start")]
    silent_since: Annotated[datetime.datetime | None, msgspec.Meta(
        description="Active, yet no cycle has completed for three of its intervals since this time (workers "
                    "down, queue stuck): its positions are not managed meanwhile. Cleared by the next completed "
                    "cycle")]
    created_at: datetime.datetime
    updated_at: datetime.datetime


class BotListResponse(Response, kw_only=True):
    items: list[BotView]
    next_cursor: NextCursor
