"""What a tenant's bots did: decisions (with what the brain saw and what the guard changed), orders,
positions and performance. Read-only, tenant-scoped, newest first.

Lists are keyset-paginated on the UUIDv7 id (time-ordered): a page's `next_cursor` is its last id and
the next page is everything older, so rows written meanwhile never shift or repeat a page.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy import BigInteger, Select, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import Database
from tenants.errors import NotFound
from tenants.models import Bot, Cycle, Order, Position
from tenants.principal import Principal
from tenants.scope import TenantScope

log = logging.getLogger(__name__)
T = TypeVar("T")


class ActivityFilter(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str | None = None
    since: datetime.datetime | None = None  # inclusive
    until: datetime.datetime | None = None  # exclusive


class Page(msgspec.Struct, Generic[T], frozen=True):
    items: list[T]
    next_cursor: uuid.UUID | None


# -- the parts of a stored DecisionRecord (workers/brain/service.py) the API shows ---------------------------
# Read leniently: unknown fields are ignored and a record that no longer fits shows without its details.

class RecordedLevel(msgspec.Struct, frozen=True):
    name: str
    price: float


class RecordedInsight(msgspec.Struct, frozen=True):
    agent: str
    symbol: str
    score: float
    confidence: float
    reasons: list[str] = []
    levels: list[RecordedLevel] = []
    values: dict[str, float] = {}


class RecordedDecision(msgspec.Struct, frozen=True):
    action: str
    symbol: str
    confidence: float
    entry: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    leverage: float = 1.0
    size: float | None = None
    reasons: list[str] = []


class RecordedAdjustment(msgspec.Struct, frozen=True):
    kind: str
    rule: str
    detail: str


class RecordedIssue(msgspec.Struct, frozen=True):
    kind: str
    outcome: str
    detail: str


class RecordedInputs(msgspec.Struct, frozen=True):
    price: float | None = None
    insights: list[RecordedInsight] = []


class DecisionDetails(msgspec.Struct, frozen=True):
    inputs: RecordedInputs = RecordedInputs()
    proposal: RecordedDecision | None = None
    final: RecordedDecision | None = None
    adjustments: list[RecordedAdjustment] = []
    validation: list[RecordedIssue] = []


def decision_details(record: str) -> DecisionDetails:
    """The shown parts of a stored record, from its JSON text."""
    try:
        return _details.decode(record)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        log.warning("a stored decision record does not fit the activity view", extra={"error": str(exc)})
        return DecisionDetails()


_details = msgspec.json.Decoder(DecisionDetails, strict=False)


class DecisionEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A decision as the activity view shows it: its columns, and its record's shown parts."""

    id: uuid.UUID
    bot_id: uuid.UUID
    cycle_id: uuid.UUID
    symbol: str
    action: str
    confidence: float
    requested_brain: str
    brain: str
    fallback: str | None
    fallback_detail: str
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: Decimal
    latency_ms: float
    created_at: datetime.datetime
    details: DecisionDetails


# The app's most read list, so it is read on the driver (`TenantScope.connection`): the record arrives as
# JSON text and is decoded once, straight into what is shown (through the ORM it was parsed to dicts, then
# converted, at several times the cost of the query).
# A decision page, newest first, as two fixed statements (one bot's, every bot's). An absent filter is a bound
# NULL: the time bounds and the cursor fall back to open ends, so each stays one range on the (tenant, bot, id)
# index; the optional symbol is the only OR.
_DECISIONS = """
SELECT id, bot_id, cycle_id, symbol, action, confidence, requested_brain, brain, fallback, fallback_detail, model,
       prompt_tokens, completion_tokens, cached_tokens, cost_usd, latency_ms, created_at, record::text
FROM decisions
WHERE tenant_id = $1 AND {bot}
  AND ($3::text IS NULL OR symbol = $3)
  AND created_at >= COALESCE($4::timestamptz, '-infinity') AND created_at < COALESCE($5::timestamptz, 'infinity')
  AND id < COALESCE($6::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
ORDER BY id DESC
LIMIT $7
"""
_DECISIONS_OF_BOT = _DECISIONS.replace("{bot}", "bot_id = $2")
_DECISIONS_OF_TENANT = _DECISIONS.replace("{bot}", "($2::uuid IS NULL)")
_BOT_EXISTS = "SELECT EXISTS (SELECT FROM bots WHERE tenant_id = $1 AND id = $2)"


# -- performance ---------------------------------------------------------------------------------------------

class EquityPoint(msgspec.Struct, frozen=True):
    at: datetime.datetime
    equity: Decimal


class Performance(msgspec.Struct, frozen=True, kw_only=True):
    equity_curve: list[EquityPoint]  # at most `points` points, evenly thinned, first and last kept
    start_equity: Decimal | None
    end_equity: Decimal | None
    max_drawdown_pct: float  # the largest fall from a running peak of the whole curve, in %
    max_drawdown: Decimal  # the same fall in quote currency
    closed_positions: int
    winning_positions: int
    win_rate: float | None  # winning / closed, None before the first close
    realized_pnl: Decimal
    fees: Decimal
    open_positions: int
    unrealized_pnl: Decimal


class ActivityService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def decisions(self, principal: Principal, bot_id: uuid.UUID | None, where: ActivityFilter, limit: int,
                        cursor: uuid.UUID | None = None, *, require_bot: bool = True) -> Page[DecisionEntry]:
        """One bot's decisions (404 for a bot not the tenant's unless `require_bot` is False), or every bot's."""
        query = _DECISIONS_OF_BOT if bot_id is not None else _DECISIONS_OF_TENANT
        args = (principal.tenant_id, bot_id, where.symbol, where.since, where.until, cursor, limit + 1)
        async with TenantScope.of(principal).connection(self.db, read_only=True) as connection:
            if bot_id is not None and require_bot and not await connection.fetchval(
                _BOT_EXISTS, principal.tenant_id, bot_id
            ):
                raise NotFound("no bot with this id")
            rows = await connection.fetch(query, *args)
        items = [
            DecisionEntry(
                id=r[0], bot_id=r[1], cycle_id=r[2], symbol=r[3], action=r[4], confidence=r[5], requested_brain=r[6],
                brain=r[7], fallback=r[8], fallback_detail=r[9], model=r[10], prompt_tokens=r[11],
                completion_tokens=r[12], cached_tokens=r[13], cost_usd=r[14], latency_ms=r[15], created_at=r[16],
                details=decision_details(r[17]),
            )
            for r in rows[:limit]
        ]
        return Page(items=items, next_cursor=items[-1].id if len(rows) > limit else None)

    async def orders(self, principal: Principal, bot_id: uuid.UUID, where: ActivityFilter, limit: int,
                     cursor: uuid.UUID | None = None) -> Page[Order]:
        return await self._page(principal, Order, bot_id, where, limit, cursor)

    async def positions(self, principal: Principal, bot_id: uuid.UUID, where: ActivityFilter, limit: int,
                        cursor: uuid.UUID | None = None, status: str | None = None) -> Page[Position]:
        extra = [Position.status == status] if status else []
        return await self._page(principal, Position, bot_id, where, limit, cursor, extra)

    async def performance(self, principal: Principal, bot_id: uuid.UUID, since: datetime.datetime | None,
                          until: datetime.datetime | None, points: int) -> Performance:
        """The equity curve (from each cycle's equity), drawdown, and what closed positions made."""
        in_range = [Cycle.tenant_id == principal.tenant_id, Cycle.bot_id == bot_id, Cycle.equity.is_not(None)]
        if since is not None:
            in_range.append(Cycle.created_at >= since)
        if until is not None:
            in_range.append(Cycle.created_at < until)
        numbered = select(
            Cycle.created_at, Cycle.equity,
            func.row_number().over(order_by=Cycle.id).label("rn"),
            func.count().over().label("n"),
            func.max(Cycle.equity).over(order_by=Cycle.id, rows=(None, 0)).label("peak"),
        ).where(*in_range).subquery()
        # Every step-th point from the first, and the last: never more than `points`.
        step = func.greatest(1, cast(func.ceil((numbered.c.n - 1) / float(max(points - 1, 1))), BigInteger))
        curve_query = (select(numbered.c.created_at, numbered.c.equity)
                       .where(((numbered.c.rn - 1) % step == 0) | (numbered.c.rn == numbered.c.n))
                       .order_by(numbered.c.rn))
        drawdown_query = select(
            func.coalesce(func.max(1 - numbered.c.equity / func.nullif(numbered.c.peak, 0)), 0),
            func.coalesce(func.max(numbered.c.peak - numbered.c.equity), 0),
        )
        closed_range = [Position.tenant_id == principal.tenant_id, Position.bot_id == bot_id,
                        Position.status == "closed"]
        if since is not None:
            closed_range.append(Position.closed_at >= since)
        if until is not None:
            closed_range.append(Position.closed_at < until)
        closed_query = select(
            func.count(), func.count().filter(Position.realized_pnl > 0),
            func.coalesce(func.sum(Position.realized_pnl), 0), func.coalesce(func.sum(Position.fees), 0),
        ).where(*closed_range)
        open_query = select(func.count(), func.coalesce(func.sum(Position.unrealized_pnl), 0)).where(
            Position.tenant_id == principal.tenant_id, Position.bot_id == bot_id, Position.status == "open"
        )
        async with TenantScope.of(principal).session(self.db) as session:
            await _require_bot(session, principal, bot_id)
            curve = [EquityPoint(at=r.created_at, equity=r.equity) for r in (await session.execute(curve_query))]
            drawdown_ratio, drawdown = (await session.execute(drawdown_query)).one()
            closed, wins, realized, fees = (await session.execute(closed_query)).one()
            open_count, unrealized = (await session.execute(open_query)).one()
        return Performance(
            equity_curve=curve,
            start_equity=curve[0].equity if curve else None,
            end_equity=curve[-1].equity if curve else None,
            max_drawdown_pct=round(float(drawdown_ratio) * 100, 6),
            max_drawdown=Decimal(drawdown),
            closed_positions=closed,
            winning_positions=wins,
            win_rate=round(wins / closed, 6) if closed else None,
            realized_pnl=Decimal(realized),
            fees=Decimal(fees),
            open_positions=open_count,
            unrealized_pnl=Decimal(unrealized),
        )

    async def _page(self, principal: Principal, model: Any, bot_id: uuid.UUID | None, where: ActivityFilter,
                    limit: int, cursor: uuid.UUID | None, extra: list[Any] | None = None, *,
                    require_bot: bool = True) -> Page[Any]:
        query: Select[Any] = select(model).where(model.tenant_id == principal.tenant_id, *(extra or []))
        if bot_id is not None:
            query = query.where(model.bot_id == bot_id)
        if where.symbol is not None:
            query = query.where(model.symbol == where.symbol)
        if where.since is not None:
            query = query.where(model.created_at >= where.since)
        if where.until is not None:
            query = query.where(model.created_at < where.until)
        if cursor is not None:
            query = query.where(model.id < cursor)
        query = query.order_by(model.id.desc()).limit(limit + 1)
        async with TenantScope.of(principal).session(self.db) as session:
            if bot_id is not None and require_bot:
                await _require_bot(session, principal, bot_id)
            rows = list((await session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(items=rows, next_cursor=rows[-1].id if more else None)


async def _require_bot(session: AsyncSession, principal: Principal, bot_id: uuid.UUID) -> None:
    """Another tenant's bot (or none) is 404 here as everywhere, not an empty list."""
    found = await session.scalar(select(Bot.id).where(and_(Bot.tenant_id == principal.tenant_id, Bot.id == bot_id)))
    if found is None:
        raise NotFound("no bot with this id")


def decimal_text(value: Decimal | None) -> str | None:
    """An exact decimal as plain text without trailing zeros ("0.1", "-2", never "1E+1")."""
    if value is None:
        return None
    normalized = value.normalize()
    return format(normalized if normalized != 0 else Decimal(0), "f")

