"""The order a decision makes: stored as an intent with its decision, sent once, its answer stored; an answer
that is lost is found by looking the order up by its client id, never by sending it again."""

from __future__ import annotations

import asyncio
import uuid

import msgspec

from tenants import events
from tenants.events import EventType
from tenants.exchange_catalog import PAPER
from tenants.models import OrderState
from workers import ledger
from workers.brain.decision import Action, Decision
from workers.cycle.state import RunState
from workers.exchanges.base import (
    Exchange,
    ExchangeOrder,
    OrderIntent,
    OrderType,
    Side,
    client_order_id,
)
from workers.exchanges.errors import (
    DuplicateClientOrderId,
    ErrorAction,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderOutcomeUnknown,
    retry_read,
)

LOOKUP_ATTEMPTS = 4


def order_intent(
    bot_id: uuid.UUID, slot: int, final: Decision, position: ledger.OpenPositionRow | None,
) -> tuple[OrderIntent | None, str]:
    """The order the guarded decision asks for, and its leg (entry or close); (None, "") when it asks for none."""
    symbol = final.symbol
    if final.action in (Action.OPEN_LONG, Action.OPEN_SHORT) and position is None and final.size:
        side = Side.BUY if final.action is Action.OPEN_LONG else Side.SELL
        return OrderIntent(
            client_order_id=client_order_id(bot_id, slot, symbol, "entry"),
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            amount=final.size,
            stop_loss=final.stop_loss,
            take_profit=final.take_profit,
            leverage=final.leverage,
        ), "entry"
    if final.action is Action.CLOSE and position is not None and position.amount > 0:
        side = Side.SELL if position.side == "long" else Side.BUY
        return OrderIntent(
            client_order_id=client_order_id(bot_id, slot, symbol, "close"),
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            amount=float(position.amount),
            reduce_only=True,
        ), "close"
    return None, ""


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    """What sending one stored order came to: the exchange's answer, or the state it was marked with and why."""

    answer: ExchangeOrder | None
    state: OrderState
    error: ExchangeError | None = None

    @property
    def filled(self) -> bool:
        return self.answer is not None and (self.answer.filled or 0) > 0


async def place(
    run: RunState, exchange: Exchange, exchange_name: str, decision: ledger.DecisionRow, intent: OrderIntent, leg: str,
) -> bool:
    """Store the intent with its decision, send it once, store the answer. True if it filled."""
    async with run.session() as session:
        await ledger.store_decisions(session, [decision])
        run.placed += 1
        run.events += await events.record_many(session, [run.decision_message(decision)])
        order_id, new = await ledger.store_intent(
            session, run.tenant_id, run.bot_id, cycle_id=run.cycle_id, decision_id=decision.id,
            exchange=exchange_name, leg=leg, intent=intent,
        )
    if not new:
        return False  # this slot already sent (or gave up on) this order: reconcile owns it now
    sent = await send(run, exchange, exchange_name, order_id, intent, leg)
    if isinstance(sent.error, InsufficientFunds):
        run.events.append(
            await run.event(EventType.TRADE_SKIPPED, {"symbol": intent.symbol, "reason": str(sent.error)})
        )
    return sent.filled


async def send(
    run: RunState, exchange: Exchange, exchange_name: str, order_id: uuid.UUID, intent: OrderIntent, leg: str,
    *, close_reason: str = "signal",
) -> Sent:
    """Send the stored order `order_id` and store what came of it. An answer that is lost is looked up by the
    client id, never sent again; an error that says nothing about whether the order landed is raised after
    the order is marked failed."""
    run.orders += 1
    answer: ExchangeOrder | None = None
    try:
        if intent.leverage and intent.leverage > 1 and exchange_name != PAPER:
            await exchange.set_leverage(intent.symbol, intent.leverage)
        answer = await exchange.create_order(intent)
    except (OrderOutcomeUnknown, DuplicateClientOrderId):
        answer = await look_up(exchange, intent.symbol, intent.client_order_id)
        if answer is None:
            await mark(run, order_id, OrderState.UNKNOWN, "no answer from the exchange; looked up on the next cycle")
            return Sent(answer=None, state=OrderState.UNKNOWN)
    except (InsufficientFunds, InvalidOrder) as exc:
        await mark(run, order_id, OrderState.REJECTED, str(exc))
        return Sent(answer=None, state=OrderState.REJECTED, error=exc)
    except ExchangeError as exc:
        if exc.action is ErrorAction.RETRY_READ:  # the create may or may not have landed: look, never resend
            answer = await look_up(exchange, intent.symbol, intent.client_order_id)
            if answer is None:
                await mark(run, order_id, OrderState.UNKNOWN, f"{type(exc).__name__}; looked up on the next cycle")
                return Sent(answer=None, state=OrderState.UNKNOWN, error=exc)
        else:
            await mark(run, order_id, OrderState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
    async with run.session() as session:
        run.events += await ledger.record_order(
            session, run.tenant_id, run.bot_id, order_id, answer, leg=leg, leverage=intent.leverage,
            market_ms=run.candle_end.get(intent.symbol, 0), close_reason=close_reason,
        )
    return Sent(answer=answer, state=OrderState(answer.status.value))


async def look_up(exchange: Exchange, symbol: str, coid: str) -> ExchangeOrder | None:
    """The order with client id `coid`, asked a few times with back-off; None if the exchange has none."""
    for attempt in range(LOOKUP_ATTEMPTS):
        try:
            found = await retry_read(exchange.fetch_order_by_client_id, symbol, coid)
        except ExchangeError:
            found = None
        if found is not None:
            return found
        await asyncio.sleep(0.25 * 2**attempt)
    return None


async def mark(run: RunState, order_id: uuid.UUID, state: OrderState, error: str) -> None:
    async with run.session() as session:
        await ledger.mark_order(session, order_id, state, error[:500])
