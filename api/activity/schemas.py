"""Wire types of the activity API: decisions, orders, positions and performance (camelCase).

Money, prices and amounts are exact decimals written as JSON strings ("0.015", "-12.5"): a JSON
number would round them.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

from api.wire import NextCursor, Response

DecimalText = Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="An exact decimal")]


class LevelView(Response, kw_only=True):
    name: str
    price: float


class InsightView(Response, kw_only=True):
    """One analysis agent's view of the symbol: score in [-1, 1], confidence in [0, 1]."""

    agent: str
    symbol: str
    score: float
    confidence: float
    reasons: list[str]
    levels: list[LevelView]
    values: dict[str, float]


class TradeDecisionView(Response, kw_only=True):
    action: Annotated[str, msgspec.Meta(description="WAIT, HOLD, OPEN_LONG, OPEN_SHORT or CLOSE")]
    symbol: str
    confidence: float
    entry: float | None
    stop_loss: float | None
    take_profit: float | None
    leverage: float
    size: float | None
    reasons: list[str]


class GuardChangeView(Response, kw_only=True):
    """What the risk guard did to the proposal: clamp (changed it), veto (refused it) or sized it."""

    kind: str
    rule: str
    detail: str


class ValidationIssueView(Response, kw_only=True):
    """What checking the model's answer against the bot's configuration found."""

    kind: str
    outcome: str
    detail: str


class DecisionView(Response, kw_only=True):
    id: uuid.UUID
    bot_id: uuid.UUID
    cycle_id: uuid.UUID
    symbol: str
    action: str
    confidence: float
    requested_brain: Annotated[str, msgspec.Meta(description="The brain the bot is configured with")]
    brain: Annotated[str, msgspec.Meta(description="The brain whose proposal reached the risk guard")]
    fallback: Annotated[str | None, msgspec.Meta(description="Why the rules brain decided instead, if it did")]
    fallback_detail: str
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: DecimalText
    latency_ms: float
    price: float | None
    insights: list[InsightView]
    proposal: TradeDecisionView | None
    final: TradeDecisionView | None
    guard_changes: list[GuardChangeView]
    validation: list[ValidationIssueView]
    created_at: datetime.datetime


class DecisionPage(Response, kw_only=True):
    items: list[DecisionView]
    next_cursor: NextCursor


class OrderView(Response, kw_only=True):
    id: uuid.UUID
    bot_id: uuid.UUID
    cycle_id: uuid.UUID | None
    decision_id: uuid.UUID | None
    client_order_id: str
    exchange: str
    symbol: str
    leg: Annotated[str, msgspec.Meta(description="entry or close")]
    side: str
    type: str
    amount: DecimalText
    price: DecimalText | None
    stop_loss: DecimalText | None
    take_profit: DecimalText | None
    leverage: DecimalText | None
    reduce_only: bool
    status: str
    exchange_order_id: str | None
    filled: DecimalText
    average_price: DecimalText | None
    fee: DecimalText
    error: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class OrderPage(Response, kw_only=True):
    items: list[OrderView]
    next_cursor: NextCursor


class PositionView(Response, kw_only=True):
    id: uuid.UUID
    bot_id: uuid.UUID
    symbol: str
    side: Annotated[str, msgspec.Meta(description="long or short")]
    status: Annotated[str, msgspec.Meta(description="open or closed")]
    amount: DecimalText
    entry_price: DecimalText
    leverage: DecimalText
    stop_loss: DecimalText | None
    take_profit: DecimalText | None
    mark_price: DecimalText | None
    unrealized_pnl: DecimalText
    exit_price: DecimalText | None
    realized_pnl: Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]+(\.[0-9]+)?$",
                                              description="After fees, once closed")]
    fees: DecimalText
    close_reason: Annotated[str | None, msgspec.Meta(description="signal, stop_loss, take_profit or external")]
    opened_at: datetime.datetime
    closed_at: datetime.datetime | None


class PositionPage(Response, kw_only=True):
    items: list[PositionView]
    next_cursor: NextCursor


class EquityPointView(Response, kw_only=True):
    at: datetime.datetime
    equity: DecimalText


class PerformanceView(Response, kw_only=True):
    equity_curve: Annotated[list[EquityPointView], msgspec.Meta(
        description="The account's equity after each cycle, oldest first, evenly thinned to at most `points`")]
    start_equity: DecimalText | None
    end_equity: DecimalText | None
    return_pct: Annotated[float | None, msgspec.Meta(description="End over start equity, in %")]
    max_drawdown_pct: Annotated[float, msgspec.Meta(description="Largest fall from a running peak, in %")]
    max_drawdown: DecimalText
    closed_positions: int
    winning_positions: int
    win_rate: Annotated[float | None, msgspec.Meta(description="Winning / closed positions; null before any close")]
    realized_pnl: Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]+(\.[0-9]+)?$",
                                              description="Of positions closed in the period, after fees")]
    fees: DecimalText
    open_positions: int
    unrealized_pnl: DecimalText
