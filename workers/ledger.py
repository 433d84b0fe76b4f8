"""What a trading cycle reads and writes in PostgreSQL: cycles, decisions, orders, fills and positions.

Every function runs in the tenant's row-level-security context (`Database.transaction(tenant_id)`),
with Core statements: a cycle is a handful of short transactions, and the ORM's unit of work would
cost more than the statements themselves. The order of writes is what keeps money safe:

1. `claim_cycle` makes the (bot, slot) row; a slot already completed or failed is never run again.
2. `store_intent` records an order before it is sent; its client order id is unique per tenant, so
   a re-run of the same slot finds the intent instead of making a second order.
3. `record_order` stores what the exchange answered, the fill, and the position it opened or closed.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from decimal import Decimal

import msgspec
from sqlalchemy import and_, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from tenants import events
from tenants.events import EventMessage, EventType
from tenants.models import Bot, Cycle, DecisionLog, ExchangeKey, Fill, Order, Position
from workers.exchanges.base import ExchangeOrder, OrderIntent, OrderStatus

ZERO = Decimal(0)
FINAL_ORDER_STATUSES = frozenset({"filled", "canceled", "rejected", "expired", "failed"})
PENDING_ORDER_STATUSES = ("intent", "submitted", "open", "unknown")
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
    client_order_id: str
    symbol: str
    leg: str
    side: str
    amount: Decimal
    status: str
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: Decimal | None


class Claim(msgspec.Struct, kw_only=True):
    """A cycle this task may run: the bot as configured now, and the state the last cycles left."""

    cycle_id: uuid.UUID
    attempts: int
    bot: Bot
    key: ExchangeKey | None
    positions: list[OpenPositionRow]
    pending: list[PendingOrder]
    day_start_equity: Decimal | None


_CLAIM = text(
    "INSERT INTO cycles (id, tenant_id, bot_id, slot, status, attempts, created_at, updated_at) "
    "VALUES (:id, :tenant_id, :bot_id, :slot, 'running', 1, now(), now()) "
    "ON CONFLICT (tenant_id, bot_id, slot) DO UPDATE SET attempts = cycles.attempts + 1, updated_at = now() "
    "WHERE cycles.status = 'running' RETURNING id, attempts"
)


async def claim_cycle(session: AsyncSession, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> Claim | None:
    """Claim (bot, slot) for this run, or None: the bot is gone or stopped, or the slot already ran."""
    bot = await session.scalar(select(Bot).where(Bot.id == bot_id, Bot.is_active))
    if bot is None:
        return None
    row = (
        await session.execute(_CLAIM, {"id": uuid7(), "tenant_id": tenant_id, "bot_id": bot_id, "slot": slot})
    ).first()
    if row is None:
        return None
    # The bot's lock is held, so an older slot still `running` belongs to a worker that died; its orders
    # are reconciled by this cycle, and it is closed as abandoned.
    await session.execute(
        update(Cycle)
        .where(Cycle.bot_id == bot_id, Cycle.status == "running", Cycle.slot < slot)
        .values(status="failed", error=ABANDONED, finished_at=utcnow(), updated_at=utcnow())
    )
    key = None
    if bot.exchange_key_id is not None:
        key = await session.scalar(select(ExchangeKey).where(ExchangeKey.id == bot.exchange_key_id))
    positions = await claim_positions(session, bot_id)
    pending = [
        PendingOrder(
            id=o.id,
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            leg=o.leg,
            side=o.side,
            amount=o.amount,
            status=o.status,
            stop_loss=o.stop_loss,
            take_profit=o.take_profit,
            leverage=o.leverage,
        )
        for o in (
            await session.execute(
                select(
                    Order.id,
                    Order.client_order_id,
                    Order.symbol,
                    Order.leg,
                    Order.side,
                    Order.amount,
                    Order.status,
                    Order.stop_loss,
                    Order.take_profit,
                    Order.leverage,
                ).where(Order.bot_id == bot_id, Order.status.in_(PENDING_ORDER_STATUSES))
            )
        ).all()
    ]
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    day_start_equity = await session.scalar(
        select(Cycle.equity)
        .where(Cycle.bot_id == bot_id, Cycle.created_at >= midnight, Cycle.equity.is_not(None))
        .order_by(Cycle.id)
        .limit(1)
    )
    return Claim(
        cycle_id=row.id,
        attempts=row.attempts,
        bot=bot,
        key=key,
        positions=positions,
        pending=pending,
        day_start_equity=day_start_equity,
    )


async def claim_positions(session: AsyncSession, bot_id: uuid.UUID) -> list[OpenPositionRow]:
    """The bot's open positions as this cycle starts."""
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


async def finish_cycle(
    session: AsyncSession,
    cycle_id: uuid.UUID,
    *,
    status: str,
    started: datetime.datetime,
    error: str | None = None,
    equity: Decimal | None = None,
    unrealized: Decimal | None = None,
) -> None:
    now = utcnow()
    await session.execute(
        update(Cycle)
        .where(Cycle.id == cycle_id)
        .values(
            status=status,
            error=error[:500] if error else None,
            equity=equity,
            unrealized_pnl=unrealized,
            finished_at=now,
            duration_ms=(now - started).total_seconds() * 1000,
            updated_at=now,
        )
    )


async def store_decisions(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        await session.execute(insert(DecisionLog), list(rows))


async def store_intent(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    bot_id: uuid.UUID,
    *,
    cycle_id: uuid.UUID,
    decision_id: uuid.UUID | None,
    exchange: str,
    leg: str,
    intent: OrderIntent,
) -> tuple[uuid.UUID, str]:
    """Record the order before it is sent: (order row id, status). An existing intent is returned as is,
    and its status says whether it may still be sent ("intent" only on the first run)."""
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
                status="intent",
                filled=ZERO,
                fee=ZERO,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(Order.id, Order.status)
        )
    ).first()
    if row is not None:
        return row.id, "sending"
    existing = (
        await session.execute(select(Order.id, Order.status).where(Order.client_order_id == intent.client_order_id))
    ).one()
    return existing.id, existing.status


async def mark_order(session: AsyncSession, order_id: uuid.UUID, status: str, error: str | None = None) -> None:
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
    status = answer.status.value if answer.status is not OrderStatus.SUBMITTED else "submitted"
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
    sign = 1 if position.side == "long" else -1
    gross = (exit_price - position.entry_price) * position.amount * sign
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


async def mark_positions(session: AsyncSession, bot_id: uuid.UUID, marks: dict[str, tuple[Decimal, Decimal]]) -> None:
    """Store each open position's mark price and unrealised PnL: {symbol: (mark, unrealised)}."""
    for symbol, (mark, unrealized) in marks.items():
        await session.execute(
            update(Position)
            .where(and_(Position.bot_id == bot_id, Position.symbol == symbol, Position.status == "open"))
            .values(mark_price=mark, unrealized_pnl=unrealized, updated_at=func.now())
        )


async def pause_bot(session: AsyncSession, tenant_id: uuid.UUID, bot_id: uuid.UUID, reason: str) -> EventMessage:
    await session.execute(
        update(Bot).where(Bot.id == bot_id).values(is_active=False, paused_reason=reason[:200], updated_at=utcnow())
    )
    return await events.record(session, tenant_id, EventType.BOT_PAUSED, {"reason": reason[:200]}, bot_id)


def _s(value: float | None) -> str | None:
    return None if value is None else repr(value)
