"""What the bots did: `/v1/bots/{id}/decisions|orders|positions|performance` and the tenant-wide
`/v1/decisions`. Newest first, `?limit=&cursor=` → `{items, nextCursor}`, filters by symbol and time."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get
from litestar.openapi.spec import Example
from litestar.params import Parameter

from api.activity.schemas import (
    DecisionPage,
    DecisionView,
    EquityPointView,
    GuardChangeView,
    InsightView,
    LevelView,
    OrderPage,
    OrderView,
    PerformanceView,
    PositionPage,
    PositionView,
    TradeDecisionView,
    ValidationIssueView,
)
from api.auth import requires
from api.dependencies import Activity, CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, problems
from api.wire import Cursor
from tenants import bot_limits
from tenants.activity import ActivityFilter, DecisionEntry, RecordedDecision, decimal_text
from tenants.models import Order, Position
from tenants.principal import Scope

READ = [requires(Scope.ACTIVITY_READ)]
PAGE_SIZE_MAX = 100
PAGE = problems(400, 404, AUTHENTICATED, BACKEND)

Limit = Annotated[int, Parameter(ge=1, le=PAGE_SIZE_MAX, description="Page size")]
Symbol = Annotated[str | None, Parameter(pattern=bot_limits.SYMBOL_PATTERN, description="Only this symbol",
                                         examples=[Example(value="BTC/USDT")])]
Since = Annotated[datetime.datetime | None, Parameter(description="From this time on (inclusive, ISO 8601)",
                                                      examples=[Example(value="2026-12-01T00:00:00Z")])]
Until = Annotated[datetime.datetime | None, Parameter(description="Before this time (exclusive, ISO 8601)",
                                                      examples=[Example(value="2026-12-02T00:00:00Z")])]


def _filter(symbol: str | None, since: datetime.datetime | None, until: datetime.datetime | None) -> ActivityFilter:
    return ActivityFilter(symbol=symbol, since=_aware(since), until=_aware(until))


def _aware(moment: datetime.datetime | None) -> datetime.datetime | None:
    """A time without a zone is UTC."""
    return moment.replace(tzinfo=datetime.UTC) if moment is not None and moment.tzinfo is None else moment


def _trade(decision: RecordedDecision | None) -> TradeDecisionView | None:
    return None if decision is None else msgspec.convert(decision, TradeDecisionView, from_attributes=True)


def _decision(row: DecisionEntry) -> DecisionView:
    details = row.details
    return DecisionView(
        id=row.id, bot_id=row.bot_id, cycle_id=row.cycle_id, symbol=row.symbol, action=row.action,
        confidence=row.confidence, requested_brain=row.requested_brain, brain=row.brain, fallback=row.fallback,
        fallback_detail=row.fallback_detail, model=row.model, prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens, cached_tokens=row.cached_tokens,
        cost_usd=decimal_text(row.cost_usd) or "0", latency_ms=row.latency_ms, price=details.inputs.price,
        insights=[
            InsightView(agent=i.agent, symbol=i.symbol, score=i.score, confidence=i.confidence,
                        reasons=list(i.reasons), levels=[LevelView(name=v.name, price=v.price) for v in i.levels],
                        values=dict(i.values))
            for i in details.inputs.insights
        ],
        proposal=_trade(details.proposal), final=_trade(details.final),
        guard_changes=[GuardChangeView(kind=a.kind, rule=a.rule, detail=a.detail) for a in details.adjustments],
        validation=[ValidationIssueView(kind=v.kind, outcome=v.outcome, detail=v.detail) for v in details.validation],
        created_at=row.created_at,
    )


def _order(o: Order) -> OrderView:
    d = decimal_text
    return OrderView(
        id=o.id, bot_id=o.bot_id, cycle_id=o.cycle_id, decision_id=o.decision_id, client_order_id=o.client_order_id,
        exchange=o.exchange, symbol=o.symbol, leg=o.leg, side=o.side, type=o.type, amount=d(o.amount) or "0",
        price=d(o.price), stop_loss=d(o.stop_loss), take_profit=d(o.take_profit), leverage=d(o.leverage),
        reduce_only=o.reduce_only, status=o.status, exchange_order_id=o.exchange_order_id, filled=d(o.filled) or "0",
        average_price=d(o.average_price), fee=d(o.fee) or "0", error=o.error, created_at=o.created_at,
        updated_at=o.updated_at,
    )


def _position(p: Position) -> PositionView:
    d = decimal_text
    return PositionView(
        id=p.id, bot_id=p.bot_id, symbol=p.symbol, side=p.side, status=p.status, amount=d(p.amount) or "0",
        entry_price=d(p.entry_price) or "0", leverage=d(p.leverage) or "1", stop_loss=d(p.stop_loss),
        take_profit=d(p.take_profit), mark_price=d(p.mark_price), unrealized_pnl=d(p.unrealized_pnl) or "0",
        exit_price=d(p.exit_price), realized_pnl=d(p.realized_pnl) or "0", fees=d(p.fees) or "0",
        close_reason=p.close_reason, opened_at=p.opened_at, closed_at=p.closed_at,
    )


class BotActivityController(Controller):
    path = "/v1/bots/{bot_id:uuid}"
    tags = ["activity"]
    security = BEARER
    guards = READ

    @get("/decisions", summary="The bot's decisions: what the agents saw, the brain used, what the guard changed",
         responses=PAGE)
    async def list_bot_decisions(self, bot_id: uuid.UUID, principal: CurrentPrincipal, activity: Activity,
                                 limit: Limit = 50, cursor: Cursor = None, symbol: Symbol = None, since: Since = None,
                                 until: Until = None) -> DecisionPage:
        page = await activity.decisions(principal, bot_id, _filter(symbol, since, until), limit, cursor)
        return DecisionPage(items=[_decision(r) for r in page.items], next_cursor=page.next_cursor)

    @get("/orders", summary="The bot's orders, as stored before sending and updated from the exchange",
         responses=PAGE)
    async def list_bot_orders(self, bot_id: uuid.UUID, principal: CurrentPrincipal, activity: Activity,
                              limit: Limit = 50, cursor: Cursor = None, symbol: Symbol = None, since: Since = None,
                              until: Until = None) -> OrderPage:
        page = await activity.orders(principal, bot_id, _filter(symbol, since, until), limit, cursor)
        return OrderPage(items=[_order(o) for o in page.items], next_cursor=page.next_cursor)

    @get("/positions", summary="The bot's positions, open and closed", responses=PAGE)
    async def list_bot_positions(
        self, bot_id: uuid.UUID, principal: CurrentPrincipal, activity: Activity, limit: Limit = 50,
        cursor: Cursor = None, symbol: Symbol = None, since: Since = None, until: Until = None,
        status: Annotated[Literal["open", "closed"] | None, Parameter(description="Only open or closed")] = None,
    ) -> PositionPage:
        page = await activity.positions(principal, bot_id, _filter(symbol, since, until), limit, cursor, status)
        return PositionPage(items=[_position(p) for p in page.items], next_cursor=page.next_cursor)

    @get("/performance", summary="Equity curve, drawdown, realised PnL, win rate and fees", responses=PAGE)
    async def get_bot_performance(
        self, bot_id: uuid.UUID, principal: CurrentPrincipal, activity: Activity, since: Since = None,
        until: Until = None,
        points: Annotated[int, Parameter(ge=2, le=2000, description="Most points in the equity curve")] = 500,
    ) -> PerformanceView:
        p = await activity.performance(principal, bot_id, _aware(since), _aware(until), points)
        d = decimal_text
        start, end = p.start_equity, p.end_equity
        return PerformanceView(
            equity_curve=[EquityPointView(at=point.at, equity=d(point.equity) or "0") for point in p.equity_curve],
            start_equity=d(start), end_equity=d(end),
            return_pct=round(float((end - start) / start * 100), 6) if start and end is not None else None,
            max_drawdown_pct=p.max_drawdown_pct, max_drawdown=d(p.max_drawdown) or "0",
            closed_positions=p.closed_positions, winning_positions=p.winning_positions, win_rate=p.win_rate,
            realized_pnl=d(p.realized_pnl) or "0", fees=d(p.fees) or "0", open_positions=p.open_positions,
            unrealized_pnl=d(p.unrealized_pnl) or "0",
        )


class DecisionController(Controller):
    path = "/v1/decisions"
    tags = ["activity"]
    security = BEARER
    guards = READ

    @get("/", summary="Decisions of every bot of the tenant, newest first", responses=problems(400, AUTHENTICATED,
                                                                                                  BACKEND))
    async def list_decisions(
        self, principal: CurrentPrincipal, activity: Activity, limit: Limit = 50, cursor: Cursor = None,
        symbol: Symbol = None, since: Since = None, until: Until = None,
        bot_id: Annotated[uuid.UUID | None, Parameter(query="botId", description="Only this bot's")] = None,
    ) -> DecisionPage:
        page = await activity.decisions(principal, bot_id, _filter(symbol, since, until), limit, cursor,
                                        require_bot=False)
        return DecisionPage(items=[_decision(r) for r in page.items], next_cursor=page.next_cursor)
