"""What a trading cycle reads and writes in PostgreSQL: cycles, decisions, orders, fills and positions.

Every function runs in the tenant's row-level-security context. What every cycle does, claim and
finish, is one statement each on asyncpg itself (`TenantScope.connection`): at a hundred cycles a
second per process, SQLAlchemy's work per statement would cost more than the statements. What only
cycles that trade do (orders, fills, positions) are Core statements in `TenantScope.session`.
The order of writes is what keeps money safe:

1. `claim_cycle` makes the (bot, slot) row; a slot already completed or failed is never run again.
2. `store_intent` records an order before it is sent; its client order id is unique per tenant, so
   a re-run of the same slot finds the intent instead of making a second order.
3. `record_order` stores what the exchange answered, the fill, and the position it opened or closed.
4. `record_exit` stores an exit the exchange made by itself (a stop or target reached) the same way:
   an order row, its fill, and the position closed at that fill with its fee.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from decimal import Decimal

import asyncpg
import msgspec
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from tenants import events
from tenants.events import EventMessage, EventType
from tenants.models import PENDING_ORDER_STATES, Bot, CycleStatus, ExchangeKey, Fill, Order, OrderState, Position
from workers.brain.service import DecisionRecord
from workers.exchanges.base import ExchangeOrder, OrderIntent
from workers.market.fills import pnl

ZERO = Decimal(0)
ABANDONED = "abandoned: its worker stopped mid-cycle; the next cycle reconciled its orders"


def money(value: float | None) -> Decimal | None:
    return Decimal(repr(value)) if value is not None else None


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class OpenPositionRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    symbol: str
    side: str
    amount: Decimal
    entry_price: Decimal
    leverage: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    fees: Decimal
    opened_at: datetime.datetime
    opened_market_ms: int


class PendingOrder(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    cycle_id: uuid.UUID | None  # None: sent outside any cycle, by a close-now (workers/close.py)
    client_order_id: str
    symbol: str
    leg: str
    side: str
    amount: Decimal
    status: str
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: Decimal | None


class BotRow(msgspec.Struct, frozen=True, kw_only=True):
    """The bot as its cycle reads it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    mode: str
    brain: str
    symbols: list[str]
    timeframes: list[str]
    leverage: Decimal
    risk_per_trade_pct: Decimal
    max_open_positions: int
    daily_loss_limit_pct: Decimal
    agent_weights: dict[str, float]
    exchange_key_id: uuid.UUID | None


class Claim(msgspec.Struct, kw_only=True):
    """A cycle this task may run: the bot as configured now, and the state the last cycles left."""

    cycle_id: uuid.UUID
    attempts: int
    bot: BotRow
    positions: list[OpenPositionRow]
    pending: list[PendingOrder]
    day_start_equity: Decimal | None
    webhooks: bool  # the tenant has an active webhook endpoint (else decisions and orders go to nobody)


# One statement, one round trip: claim the (bot, slot) row (a slot already completed or failed is not
# claimed again), close the bot's older cycles still `running` (the bot's lock is held, so their worker
# died; this cycle reconciles their orders), and read what the cycle starts from. No row: the bot is
# gone or stopped, or the slot already ran.
_CLAIM = """
WITH bot AS (
    SELECT id, tenant_id, mode, brain, symbols, timeframes, leverage, risk_per_trade_pct, max_open_positions,
           daily_loss_limit_pct, agent_weights, exchange_key_id
    FROM bots WHERE id = $1 AND is_active
), claimed AS (
    INSERT INTO cycles (id, tenant_id, bot_id, slot, status, attempts, created_at, updated_at)
    SELECT $2, bot.tenant_id, bot.id, $3, 'running', 1, now(), now() FROM bot
    ON CONFLICT (tenant_id, bot_id, slot) DO UPDATE SET attempts = cycles.attempts + 1, updated_at = now()
    WHERE cycles.status = 'running'
    RETURNING id, attempts
), abandoned AS (
    UPDATE cycles SET status = 'failed', error = $4, finished_at = now(), updated_at = now()
    WHERE bot_id = $1 AND status = 'running' AND slot < $3 AND EXISTS (SELECT FROM claimed)
)
SELECT json_build_object(
    'cycle_id', claimed.id,
    'attempts', claimed.attempts,
    'bot', (SELECT row_to_json(bot) FROM bot),
    'positions', coalesce((
        SELECT json_agg(p) FROM (
            SELECT id, symbol, side, amount, entry_price, leverage, stop_loss, take_profit, fees, opened_at,
                   opened_market_ms
            FROM positions WHERE bot_id = $1 AND status = 'open') p), '[]'),
    'pending', coalesce((
        SELECT json_agg(o) FROM (
            SELECT id, cycle_id, client_order_id, symbol, leg, side, amount, status, stop_loss, take_profit, leverage
            FROM orders WHERE bot_id = $1 AND status = ANY($6::text[])) o), '[]'),
    'day_start_equity', (
        SELECT equity FROM cycles
        WHERE bot_id = $1 AND created_at >= $5 AND equity IS NOT NULL ORDER BY id LIMIT 1),
    'webhooks', EXISTS (SELECT FROM webhook_endpoints w, bot WHERE w.tenant_id = bot.tenant_id AND w.is_active)
)::text
FROM claimed
"""
_claim = msgspec.json.Decoder(Claim)


async def claim_cycle(conn: asyncpg.Connection, bot_id: uuid.UUID, slot: int) -> Claim | None:
    """Claim (bot, slot) for this run, or None: the bot is gone or stopped, or the slot already ran."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    found = await conn.fetchval(_CLAIM, bot_id, uuid7(), slot, ABANDONED, midnight, PENDING_ORDER_STATES)
    return _claim.decode(found) if found is not None else None


async def load_key(session: AsyncSession, key_id: uuid.UUID) -> ExchangeKey | None:
    """A live bot's exchange key, its fields still encrypted."""
    return await session.scalar(select(ExchangeKey).where(ExchangeKey.id == key_id))


async def claim_positions(session: AsyncSession, bot_id: uuid.UUID) -> list[OpenPositionRow]:
    """The bot's open positions (again, after reconciling orders changed them)."""
    rows = await session.execute(
        select(
            Position.id,
            Position.symbol,
            Position.side,
            Position.amount,
            Position.entry_price,
            Position.leverage,
            Position.stop_loss,
            Position.take_profit,
            Position.fees,
            Position.opened_at,
            Position.opened_market_ms,
        ).where(Position.bot_id == bot_id, Position.status == "open")
    )
    return [OpenPositionRow(**row._mapping) for row in rows.all()]


async def pending_orders(session: AsyncSession, bot_id: uuid.UUID) -> list[PendingOrder]:
    """The bot's orders without a final state (what `claim_cycle` reads, for a run outside a cycle)."""
    rows = await session.execute(
        select(Order.id, Order.cycle_id, Order.client_order_id, Order.symbol, Order.leg, Order.side, Order.amount,
               Order.status, Order.stop_loss, Order.take_profit, Order.leverage)
        .where(Order.bot_id == bot_id, Order.status.in_(PENDING_ORDER_STATES))
    )
    return [PendingOrder(**row._mapping) for row in rows.all()]


class Mark(msgspec.Struct, frozen=True, array_like=True):
    """An open position's mark price and unrealised PnL, as the exchange reports them."""

    symbol: str
    mark: Decimal
    unrealized: Decimal


class DecisionRow(msgspec.Struct, kw_only=True):
    """A decision as stored: the `decisions` table's columns, in its order (written as JSON rows)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    bot_id: uuid.UUID
    cycle_id: uuid.UUID | None
    symbol: str
    action: str
    confidence: float
    requested_brain: str
    brain: str
    fallback: str | None
    fallback_detail: str
    fingerprint: str
    prompt_hash: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: Decimal
    latency_ms: float
    record: DecisionRecord
    created_at: datetime.datetime
    updated_at: datetime.datetime


# The end of a cycle, in one statement: its decisions and events (rows as JSON, the columns' names as
# keys), the marks of its open positions, and its outcome.
_FINISH = """
WITH decided AS (
    INSERT INTO decisions SELECT * FROM json_populate_recordset(NULL::decisions, $1::json)
), evented AS (
    INSERT INTO events SELECT * FROM json_populate_recordset(NULL::events, $2::json)
), marked AS (
    UPDATE positions p SET mark_price = m.mark, unrealized_pnl = m.unrealized, updated_at = now()
    FROM json_to_recordset($3::json) AS m(symbol text, mark numeric, unrealized numeric)
    WHERE p.bot_id = $4 AND p.symbol = m.symbol AND p.status = 'open'
)
UPDATE cycles SET status = $5, error = $6, equity = $7, unrealized_pnl = $8, finished_at = $9,
    duration_ms = $10, updated_at = $9
WHERE id = $11
"""
_encode = msgspec.json.Encoder().encode


async def finish_cycle(
    conn: asyncpg.Connection,
    cycle_id: uuid.UUID,
    bot_id: uuid.UUID,
    *,
    status: CycleStatus,
    started: datetime.datetime,
    error: str | None = None,
    equity: Decimal | None = None,
    unrealized: Decimal | None = None,
    decisions: Sequence[DecisionRow] = (),
    messages: Sequence[EventMessage] = (),
    marks: Sequence[Mark] = (),
) -> None:
    now = utcnow()
    await conn.execute(
        _FINISH,
        _encode(decisions).decode(),
        _encode([events.row(m) for m in messages]).decode(),
        _encode([{"symbol": m.symbol, "mark": m.mark, "unrealized": m.unrealized} for m in marks]).decode(),
        bot_id,
        status,
        error[:500] if error else None,
        equity,
        unrealized,
        now,
        (now - started).total_seconds() * 1000,
        cycle_id,
    )


_STORE_DECISIONS = text(
    "INSERT INTO decisions SELECT * FROM json_populate_recordset(NULL::decisions, CAST(:rows AS json))"
)


async def store_decisions(session: AsyncSession, rows: Sequence[DecisionRow]) -> None:
    if rows:
        await session.execute(_STORE_DECISIONS, {"rows": _encode(rows).decode()})


async def store_intent(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    bot_id: uuid.UUID,
    *,
    cycle_id: uuid.UUID | None,
    decision_id: uuid.UUID | None,
    exchange: str,
    leg: str,
    intent: OrderIntent,
) -> tuple[uuid.UUID, bool]:
    """Record the order before it is sent: (order row id, whether it is new). Only a new intent may be sent:
    one stored already (a run of this slot before a crash) belongs to reconciliation, which looks it up."""
    now = utcnow()
    row = (
        await session.execute(
            pg_insert(Order)
            .values(
                id=uuid7(),
                tenant_id=tenant_id,
                bot_id=bot_id,
                cycle_id=cycle_id,
                decision_id=decision_id,
                client_order_id=intent.client_order_id,
                exchange=exchange,
                symbol=intent.symbol,
                leg=leg,
                side=intent.side.value,
                type=intent.type.value,
                amount=money(intent.amount),
                price=money(intent.price),
                stop_loss=money(intent.stop_loss),
                take_profit=money(intent.take_profit),
                leverage=money(intent.leverage),
                reduce_only=intent.reduce_only,
                status=OrderState.INTENT,
                filled=ZERO,
                fee=ZERO,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(Order.id)
        )
    ).first()
    if row is not None:
        return row.id, True
    existing = await session.scalar(select(Order.id).where(Order.client_order_id == intent.client_order_id))
    assert existing is not None  # the insert met this client order id
    return existing, False


async def mark_order(session: AsyncSession, order_id: uuid.UUID, status: OrderState, error: str | None = None) -> None:
    await session.execute(
        update(Order).where(Order.id == order_id).values(status=status, error=error, updated_at=utcnow())
    )


async def record_order(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    bot_id: uuid.UUID,
    order_id: uuid.UUID,
    answer: ExchangeOrder,
    *,
    leg: str,
    leverage: float | None,
    market_ms: int,
    close_reason: str = "signal",
) -> list[EventMessage]:
    """Store the exchange's answer for order `order_id`, its new fill, and the position it opened or
    closed. Idempotent: a fill already recorded (same filled amount) is not recorded twice."""
    current = (
        await session.execute(select(Order.filled, Order.status).where(Order.id == order_id).with_for_update())
    ).one()
    filled = money(answer.filled) or ZERO
    status = OrderState(answer.status.value)
    average = money(answer.average)
    fee = money(answer.fee) or ZERO
    now = utcnow()
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(
            status=status,
            exchange_order_id=answer.id,
            filled=filled,
            average_price=average,
            fee=fee,
            error=None,
            updated_at=now,
        )
    )
    out: list[EventMessage] = []
    new = filled - current.filled
    if new <= 0 or average is None or answer.side is None:
        return out
    await session.execute(
        insert(Fill).values(
            id=uuid7(),
            tenant_id=tenant_id,
            bot_id=bot_id,
            order_id=order_id,
            symbol=answer.symbol,
            side=answer.side.value,
            amount=new,
            price=average,
            fee=fee,
            created_at=now,
            updated_at=now,
        )
    )
    out.append(
        await events.record(
            session,
            tenant_id,
            EventType.ORDER,
            {
                "orderId": str(order_id),
                "clientOrderId": answer.client_order_id,
                "symbol": answer.symbol,
                "side": answer.side.value,
                "amount": str(filled),
                "price": str(average),
                "status": status,
                "leg": leg,
            },
            bot_id,
        )
    )
    side = "long" if answer.side.value == "buy" else "short"
    if leg == "entry":
        out.append(
            await _open_position(session, tenant_id, bot_id, answer, side, new, average, fee, leverage, market_ms)
        )
    else:
        closed = await close_position(
            session, tenant_id, bot_id, answer.symbol, exit_price=average, fee=fee, reason=close_reason
        )
        out.extend(closed)
    return out


async def _open_position(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    bot_id: uuid.UUID,
    answer: ExchangeOrder,
    side: str,
    amount: Decimal,
    price: Decimal,
    fee: Decimal,
    leverage: float | None,
    market_ms: int,
) -> EventMessage:
    now = utcnow()
    existing = await session.scalar(
        select(Position).where(Position.bot_id == bot_id, Position.symbol == answer.symbol, Position.status == "open")
    )
    if existing is not None and existing.side == side:  # added to: average the entry
        total = existing.amount + amount
        existing.entry_price = (existing.entry_price * existing.amount + price * amount) / total
        existing.amount, existing.fees = total, existing.fees + fee
        position_id = existing.id
        await session.flush()
    else:
        position_id = uuid7()
        await session.execute(
            insert(Position).values(
                id=position_id,
                tenant_id=tenant_id,
                bot_id=bot_id,
                symbol=answer.symbol,
                side=side,
                status="open",
                amount=amount,
                entry_price=price,
                leverage=money(leverage or 1.0),
                stop_loss=money(answer.stop_loss),
                take_profit=money(answer.take_profit),
                mark_price=price,
                unrealized_pnl=ZERO,
                realized_pnl=ZERO,
                fees=fee,
                opened_at=now,
                opened_market_ms=market_ms,
                created_at=now,
                updated_at=now,
            )
        )
    return await events.record(
        session,
        tenant_id,
        EventType.TRADE_OPENED,
        {
            "positionId": str(position_id),
            "symbol": answer.symbol,
            "side": side,
            "amount": str(amount),
            "entryPrice": str(price),
            "stopLoss": _s(answer.stop_loss),
            "takeProfit": _s(answer.take_profit),
        },
        bot_id,
    )


async def entry_client_order_id(session: AsyncSession, bot_id: uuid.UUID, symbol: str) -> str | None:
    """The client order id of the order that opened the bot's position in `symbol`: its newest filled entry."""
    return await session.scalar(
        select(Order.client_order_id)
        .where(Order.bot_id == bot_id, Order.symbol == symbol, Order.leg == "entry", Order.filled > 0)
        .order_by(Order.id.desc())
        .limit(1)
    )


async def record_exit(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    bot_id: uuid.UUID,
    answer: ExchangeOrder,
    *,
    cycle_id: uuid.UUID | None,
    exchange: str,
    reason: str,
    market_ms: int,
) -> list[EventMessage]:
    """An exit the exchange made by itself (`reason`: stop_loss, take_profit): its order row, its fill, and the
    position closed at the fill's price with its fee. Idempotent by the order's client order id."""
    assert answer.client_order_id is not None and answer.side is not None
    now = utcnow()
    order_id = await session.scalar(
        pg_insert(Order)
        .values(
            id=uuid7(),
            tenant_id=tenant_id,
            bot_id=bot_id,
            cycle_id=cycle_id,
            decision_id=None,
            client_order_id=answer.client_order_id,
            exchange=exchange,
            symbol=answer.symbol,
            leg="close",
            side=answer.side.value,
            type=(answer.type.value if answer.type else "market"),
            amount=money(answer.amount if answer.amount is not None else answer.filled) or ZERO,
            stop_loss=money(answer.stop_loss),
            take_profit=money(answer.take_profit),
            reduce_only=True,
            status=OrderState.INTENT,
            filled=ZERO,
            fee=ZERO,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(Order.id)
    )
    if order_id is None:  # recorded by an earlier cycle
        return []
    return await record_order(
        session, tenant_id, bot_id, order_id, answer, leg="close", leverage=None, market_ms=market_ms,
        close_reason=reason,
    )


_CLOSE_EVENTS = {"stop_loss": EventType.STOP_LOSS_HIT, "take_profit": EventType.TAKE_PROFIT_HIT}


async def close_position(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    bot_id: uuid.UUID,
    symbol: str,
    *,
    exit_price: Decimal,
    fee: Decimal,
    reason: str,
) -> list[EventMessage]:
    """Close the bot's open position in `symbol` at `exit_price`, realising its PnL."""
    position = await session.scalar(
        select(Position)
        .where(Position.bot_id == bot_id, Position.symbol == symbol, Position.status == "open")
        .with_for_update()
    )
    if position is None:
        return []
    gross = pnl(position.side, position.entry_price, exit_price, position.amount)
    fees = position.fees + fee
    now = utcnow()
    position.status, position.exit_price, position.mark_price = "closed", exit_price, exit_price
    position.realized_pnl, position.fees, position.unrealized_pnl = gross - fees, fees, ZERO
    position.close_reason, position.closed_at = reason, now
    await session.flush()
    return [
        await events.record(
            session,
            tenant_id,
            _CLOSE_EVENTS.get(reason, EventType.TRADE_CLOSED),
            {
                "positionId": str(position.id),
                "symbol": symbol,
                "side": position.side,
                "amount": str(position.amount),
                "entryPrice": str(position.entry_price),
                "exitPrice": str(exit_price),
                "realizedPnl": str(position.realized_pnl),
                "reason": reason,
            },
            bot_id,
        )
    ]


async def pause_bot(session: AsyncSession, tenant_id: uuid.UUID, bot_id: uuid.UUID, reason: str) -> EventMessage:
    await session.execute(
        update(Bot).where(Bot.id == bot_id).values(is_active=False, paused_reason=reason[:200], updated_at=utcnow())
    )
    return await events.record(session, tenant_id, EventType.BOT_PAUSED, {"reason": reason[:200]}, bot_id)


def _s(value: float | None) -> str | None:
    return None if value is None else repr(value)
