"""Before a cycle decides, the database is brought in line with the exchange: orders left without a final state
are looked up by client id, and positions the exchange closed by itself are closed here."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tenants.events import EventMessage
from tenants.models import OrderState
from workers import ledger
from workers.cycle.state import RunState
from workers.exchanges.base import Exchange, ExchangeOrder, Position, PositionSide, exit_client_order_id
from workers.exchanges.errors import ExchangeError, retry_read
from workers.market.candles import Candles
from workers.market.fills import Holding, first_trigger

MANUAL = "manual"  # the close reason of a position closed now, from the app or the API (workers/close.py)


async def reconcile_orders(
    run: RunState, pending_orders: list[ledger.PendingOrder], exchange: Exchange,
) -> list[ledger.OpenPositionRow] | None:
    """Orders left without a final state (a crash, a lost answer) are looked up by client order id; then the
    bot's open positions are read again (None: there was nothing to look up, so they are as they were)."""
    for pending in pending_orders:
        found = await retry_read(exchange.fetch_order_by_client_id, pending.symbol, pending.client_order_id)
        async with run.session() as session:
            if found is None:
                if pending.status in (OrderState.INTENT, OrderState.UNKNOWN):
                    await ledger.mark_order(session, pending.id, OrderState.FAILED, "the exchange has no such order")
                continue
            run.events += await ledger.record_order(
                session, run.tenant_id, run.bot_id, pending.id, found, leg=pending.leg,
                leverage=float(pending.leverage) if pending.leverage else None,
                market_ms=run.candle_end.get(pending.symbol, 0),
                close_reason="signal" if pending.cycle_id is not None else MANUAL,
            )
    if not pending_orders:
        return None
    async with run.session() as session:
        return await ledger.claim_positions(session, run.bot_id)


async def reconcile_positions(
    run: RunState, positions: list[ledger.OpenPositionRow], exchange: Exchange, exchange_name: str,
    held: list[Position], market: dict[str, dict[str, Candles]],
) -> list[ledger.OpenPositionRow]:
    """Close here what the exchange closed (stop-loss, take-profit, by hand); the rest are marked to market
    when the cycle finishes. An exit the exchange reports (the paper exchange does, by `exit_client_order_id`)
    is recorded as the closing order with its own price and fee; otherwise the close is estimated from the
    candles, without a fee."""
    by_symbol = {p.symbol: p for p in held}
    still_open: list[ledger.OpenPositionRow] = []
    gone: list[ledger.OpenPositionRow] = []
    for row in positions:
        live = by_symbol.get(row.symbol)
        if live is None or live.side.value != row.side:
            gone.append(row)
            continue
        still_open.append(row)
        if live.mark_price is not None:
            run.marks.append(
                ledger.Mark(row.symbol, ledger.money(live.mark_price), ledger.money(live.unrealized_pnl or 0.0))
            )
    if not gone:
        return still_open
    async with run.session() as session:
        entries = {row.symbol: await ledger.entry_client_order_id(session, run.bot_id, row.symbol) for row in gone}
    exits: dict[str, ExchangeOrder] = {}
    for symbol, entry in entries.items():
        if entry is None:
            continue
        try:
            found = await retry_read(exchange.fetch_order_by_client_id, symbol, exit_client_order_id(entry))
        except ExchangeError:
            found = None
        if found is not None and (found.filled or 0) > 0 and found.average is not None:
            exits[symbol] = found
    closed: list[EventMessage] = []
    async with run.session() as session:
        for row in gone:
            reason, price = how_closed(row, market.get(row.symbol))
            exit_ = exits.get(row.symbol)
            if exit_ is not None:
                closed += await ledger.record_exit(
                    session, run.tenant_id, run.bot_id, exit_, cycle_id=run.cycle_id, exchange=exchange_name,
                    reason=reason, market_ms=run.candle_end.get(row.symbol, 0),
                )
            else:
                closed += await ledger.close_position(
                    session, run.tenant_id, run.bot_id, row.symbol, exit_price=price, fee=Decimal(0), reason=reason,
                )
    run.events += closed
    return still_open


def how_closed(row: ledger.OpenPositionRow, candles: Mapping[str, Candles] | None) -> tuple[str, Decimal]:
    """Why and where the exchange closed `row`: its stop or target if a candle since it opened reached it."""
    trading = next(iter(candles.values())) if candles else None
    if trading is None or not len(trading):
        return "external", row.entry_price
    holding = Holding(symbol=row.symbol, side=PositionSide(row.side), amount=row.amount,
                      entry_price=row.entry_price, stop_loss=row.stop_loss, take_profit=row.take_profit)
    # The candles after the one the open was decided on.
    hit = first_trigger(trading, row.opened_market_ms, holding)
    if hit is not None:
        return hit.reason, hit.price
    return "external", ledger.money(float(trading.close[-1]))
