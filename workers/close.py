"""Close now, in a worker: the close requests the API stored (tenants/closes.py), done bot by bot.

For each bot the request touches, under the bot's lock (a cycle in progress finishes first; none starts
meanwhile), the way a cycle begins: orders without a final state looked up, positions the exchange closed
by itself booked. Then one reduce-only market order per target position, stored before it is sent under
the client order id `client_order_id(bot, "close:<position id>", symbol, "close")`: a second run of the
request (a retry, a worker that died) and a second request for the same position meet the same order,
look it up and book it, and never make another. The one order a second run sends again is one the
exchange says it has never seen; the exchange refuses a client id it knows, and a reduce-only order
cannot open anything. A bot closed entirely (scope bot or tenant) also has its resting orders cancelled.

The request ends with one result per target, stored in one statement, and its events published (each
closed position is a `trade.closed` with reason `manual`; each one that could not be closed a
`close.failed`, pushed).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import msgspec
from redis.exceptions import RedisError
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import Database
from tenants import events
from tenants.closes import CloseOutcome, CloseResult, CloseTarget
from tenants.events import EventType
from tenants.exchange_catalog import PAPER
from tenants.models import Bot, CloseRequest, CloseScope, CloseStatus, Order, OrderState, Position
from tenants.scope import NO_TENANT, TenantScope
from workers import ledger
from workers.cycle.orders import Sent, look_up, send
from workers.cycle.reconcile import MANUAL, reconcile_orders, reconcile_positions
from workers.cycle.run import CANDLES_PER_TIMEFRAME, decrypt_key
from workers.cycle.runner import CycleEnv
from workers.cycle.state import RunState
from workers.exchanges.base import Exchange, OrderIntent, OrderType, Side, client_order_id
from workers.exchanges.errors import ExchangeError, retry_read
from workers.exchanges.factory import Credentials
from workers.market.cache import MarketDataError
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.notify.outbox import publish_events

log = logging.getLogger("workers.close")
_CANCELLABLE = (OrderState.OPEN, OrderState.SUBMITTED)


def close_client_order_id(bot_id: uuid.UUID, position_id: uuid.UUID, symbol: str) -> str:
    """The one client order id a close-now of this position ever uses."""
    return client_order_id(bot_id, f"close:{position_id}", symbol, "close")


class CloseReport(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "done", "missing" (no such request), "already done"
    results: int = 0
    closed: int = 0


async def close_request(env: CycleEnv, tenant_id: uuid.UUID, close_id: uuid.UUID) -> CloseReport:
    """Do close request `close_id`: each of its bots at once, then its results stored and its events published."""
    scope = TenantScope.of(tenant_id)
    async with scope.session(env.database) as session:
        request = await session.get(CloseRequest, close_id)
        if request is None:
            return CloseReport(status="missing")
        if request.status == CloseStatus.DONE:
            return CloseReport(status="already done")
        targets = msgspec.convert(request.targets, list[CloseTarget])
        sweep = request.scope != CloseScope.POSITION  # a bot closed entirely: its newest positions too
        bots = list(dict.fromkeys(t.bot_id for t in targets))
        if request.scope == CloseScope.BOT and request.bot_id is not None and request.bot_id not in bots:
            bots.append(request.bot_id)
        elif request.scope == CloseScope.TENANT:
            held = select(Position.bot_id).where(Position.status == "open").distinct()
            bots += [b for b in (await session.scalars(held)).all() if b not in bots]
    runs = [BotClose(env, tenant_id, bot_id, close_id) for bot_id in bots]
    done = await asyncio.gather(
        *(run.execute([t.position_id for t in targets if t.bot_id == run.bot_id], sweep) for run in runs)
    )
    results = [result for bot_results in done for result in bot_results]
    async with scope.session(env.database) as session:
        await session.execute(
            update(CloseRequest).where(CloseRequest.id == close_id).values(
                status=CloseStatus.DONE, results=[msgspec.to_builtins(r) for r in results],
                targets=[msgspec.to_builtins(CloseTarget(r.position_id, r.bot_id)) for r in results],
                canceled_orders=sum(run.canceled for run in runs), finished_at=ledger.utcnow(),
                updated_at=ledger.utcnow(),
            )
        )
    events = [event for run in runs for event in run.events]
    webhooks = any(run.webhooks for run in runs)
    await publish_events(env.redis, events, env.send_task, webhooks=webhooks)
    closed = sum(r.status is CloseOutcome.CLOSED for r in results)
    log.info("close request done", extra={"close_id": str(close_id), "results": len(results), "closed": closed})
    return CloseReport(status="done", results=len(results), closed=closed)


class BotClose(RunState):
    """One bot's part of a close request, under the bot's lock."""

    def __init__(self, env: CycleEnv, tenant_id: uuid.UUID, bot_id: uuid.UUID, close_id: uuid.UUID) -> None:
        super().__init__(env, tenant_id, bot_id, slot=0)
        self.env, self.close_id = env, close_id
        self.canceled = 0

    async def execute(self, targets: list[uuid.UUID], sweep: bool) -> list[CloseResult]:
        """Close the bot's `targets` (and, with `sweep`, every other open position of it); one result each."""
        try:
            async with self.env.locks.hold(self.bot_id, wait=self.env.lock_ttl) as held:
                if not held:
                    return await self._unclosed(targets, "the bot's cycle did not finish in time; ask again")
                async with asyncio.timeout(self.env.soft_time_limit):
                    return await self._locked(targets, sweep)
        except RedisError as exc:
            return await self._unclosed(targets, f"could not take the bot's lock ({type(exc).__name__}); ask again")
        except TimeoutError:
            return await self._unclosed(targets, "the exchange did not answer in time; ask again")
        except Exception as exc:  # one bot's failure is its results', not the request's
            log.exception("close failed", extra={"bot_id": str(self.bot_id), "close_id": str(self.close_id)})
            return await self._unclosed(targets, f"{type(exc).__name__}: {exc}")

    async def _locked(self, targets: list[uuid.UUID], sweep: bool) -> list[CloseResult]:
        env = self.env
        async with self.session() as session:
            bot = await session.get(Bot, self.bot_id)
            positions = await ledger.claim_positions(session, self.bot_id)
            pending = await ledger.pending_orders(session, self.bot_id)
            self.webhooks = bool(await session.scalar(text(
                "SELECT EXISTS (SELECT FROM webhook_endpoints WHERE is_active)")))
            if sweep:
                added = [p.id for p in positions if p.id not in targets]
                if added:  # recorded before any order is sent, so a second run reports them too
                    targets = [*targets, *added]
                    await _add_targets(session, self.close_id, [CloseTarget(p, self.bot_id) for p in added])
            key = await ledger.load_key(session, bot.exchange_key_id) if bot and bot.exchange_key_id else None
            credentials: Credentials | None = (
                await decrypt_key(env.vault, session, key) if key is not None and bot.mode != PAPER else None
            )
        if bot is None or not targets:
            return await self._results(targets, {})
        exchange_name = key.exchange if key is not None and bot.mode != PAPER else PAPER
        if exchange_name != PAPER and credentials is None:
            return await self._unclosed(targets, "the bot's exchange key is gone; close it on the exchange")
        symbols = sorted({p.symbol for p in positions} | {o.symbol for o in pending})
        market = await self._market(exchange_name, symbols, sorted(bot.timeframes, key=TIMEFRAME_MS.__getitem__))
        if exchange_name == PAPER and any(not market.get(s) for s in symbols):
            return await self._unclosed(targets, "no price for the market right now; ask again in a minute")
        prices = {symbol: next(iter(series.values())) for symbol, series in market.items() if series}
        exchange = env.open_exchange(exchange_name, credentials, bool(key and key.testnet), self.tenant_id,
                                     self.bot_id, prices)
        credentials = None
        try:
            reread = await reconcile_orders(self, pending, exchange)
            positions = positions if reread is None else reread
            held = await retry_read(exchange.fetch_positions, symbols) if symbols else []
            still_open = await reconcile_positions(self, positions, exchange, exchange_name, held, market)
            failures: dict[uuid.UUID, str] = {}
            for position in still_open:
                if position.id in targets:
                    detail = await self._close(exchange, exchange_name, position)
                    if detail:
                        failures[position.id] = detail
            if sweep:
                await self._cancel_resting(exchange)
        finally:
            await exchange.close()
        return await self._results(targets, failures)

    async def _market(self, exchange_name: str, symbols: Sequence[str],
                      timeframes: Sequence[str]) -> dict[str, dict[str, Candles]]:
        """The trading-timeframe candles of `symbols`: the paper exchange's prices, and what an exit the exchange
        made by itself is estimated from. A live exchange fills at its own price, so it can do without them."""
        feed = self.env.feed
        venue = feed.exchange_for(exchange_name)
        market: dict[str, dict[str, Candles]] = {}
        for symbol in symbols:
            try:
                candles = await feed.cache.fetch_ohlcv(venue, symbol, timeframes[0], limit=CANDLES_PER_TIMEFRAME)
            except MarketDataError:
                continue
            market[symbol] = {timeframes[0]: candles}
            if len(candles):
                self.candle_end[symbol] = int(candles.timestamp[-1]) + TIMEFRAME_MS[timeframes[0]]
        for symbol in symbols:
            self.candle_end.setdefault(symbol, int(time.time() * 1000))
        return market

    async def _close(self, exchange: Exchange, exchange_name: str, position: ledger.OpenPositionRow) -> str:
        """Send (or find) the close of `position`; "" when it closed, else why not."""
        intent = OrderIntent(
            client_order_id=close_client_order_id(self.bot_id, position.id, position.symbol),
            symbol=position.symbol, side=Side.SELL if position.side == "long" else Side.BUY,
            type=OrderType.MARKET, amount=float(position.amount), reduce_only=True,
        )
        async with self.session() as session:
            order_id, new = await ledger.store_intent(
                session, self.tenant_id, self.bot_id, cycle_id=None, decision_id=None, exchange=exchange_name,
                leg="close", intent=intent,
            )
        if not new:  # an earlier run stored it: whatever it sent is on the exchange under this id
            found = await look_up(exchange, intent.symbol, intent.client_order_id)
            if found is not None:
                async with self.session() as session:
                    self.events += await ledger.record_order(
                        session, self.tenant_id, self.bot_id, order_id, found, leg="close", leverage=None,
                        market_ms=self.candle_end.get(intent.symbol, 0), close_reason=MANUAL,
                    )
                return "" if (found.filled or 0) > 0 else f"the exchange has the order as {found.status.value}"
        try:
            sent: Sent = await send(self, exchange, exchange_name, order_id, intent, "close", close_reason=MANUAL)
        except ExchangeError as exc:
            return f"{type(exc).__name__}: {exc}"
        if sent.filled:
            return ""
        if sent.state is OrderState.UNKNOWN:
            return "sent, no answer yet: the bot's next cycle looks it up"
        return str(sent.error) if sent.error else f"the order is {sent.state.value}"

    async def _cancel_resting(self, exchange: Exchange) -> None:
        async with self.session() as session:
            resting = (await session.execute(
                select(Order.id, Order.symbol, Order.exchange_order_id, Order.client_order_id)
                .where(Order.bot_id == self.bot_id, Order.status.in_(_CANCELLABLE))
            )).all()
        for order in resting:
            try:
                await exchange.cancel_order(order.symbol, order_id=order.exchange_order_id,
                                            client_order_id=order.client_order_id)
            except ExchangeError as exc:
                log.warning("resting order not cancelled", extra={"order_id": str(order.id), "error": str(exc)})
                continue
            async with self.session() as session:
                await ledger.mark_order(session, order.id, OrderState.CANCELED, "cancelled by a close-now")
            self.canceled += 1

    async def _unclosed(self, targets: list[uuid.UUID], detail: str) -> list[CloseResult]:
        return await self._results(targets, dict.fromkeys(targets, detail))

    async def _results(self, targets: list[uuid.UUID], failures: dict[uuid.UUID, str]) -> list[CloseResult]:
        """What became of each target, read back from the ledger; each one not closed is a `close.failed` event."""
        async with self.session() as session:
            rows = {p.id: p for p in (await session.scalars(select(Position).where(Position.id.in_(targets)))).all()}
            coids = {close_client_order_id(self.bot_id, p.id, p.symbol): p.id for p in rows.values()}
            orders = {coids[o.client_order_id]: o for o in (await session.scalars(
                select(Order).where(Order.client_order_id.in_(list(coids))))).all()}
            results = [_result(self.bot_id, target, rows.get(target), orders.get(target), failures.get(target, ""))
                       for target in targets]
            for result in results:
                if result.status not in (CloseOutcome.CLOSED, CloseOutcome.CLOSED_BY_EXCHANGE):
                    self.events.append(await events.record(session, self.tenant_id, EventType.CLOSE_FAILED, {
                        "positionId": str(result.position_id), "symbol": result.symbol, "side": result.side,
                        "status": result.status.value, "detail": result.detail,
                    }, self.bot_id))
        return results



def _result(bot_id: uuid.UUID, target: uuid.UUID, position: Position | None, order: Order | None,
            failure: str) -> CloseResult:
    if position is None:
        return CloseResult(position_id=target, bot_id=bot_id, symbol="", side="", amount="0",
                           status=CloseOutcome.CLOSED_BY_EXCHANGE, detail="the position is gone")
    common = {"position_id": position.id, "bot_id": bot_id, "symbol": position.symbol, "side": position.side,
              "amount": str(position.amount), "client_order_id": order.client_order_id if order else None}
    if position.status == "closed":
        mine = position.close_reason == MANUAL and order is not None and order.filled > 0
        return CloseResult(**common, status=CloseOutcome.CLOSED if mine else CloseOutcome.CLOSED_BY_EXCHANGE,
                           exit_price=str(position.exit_price), realized_pnl=str(position.realized_pnl),
                           detail="" if mine else f"closed before the order: {position.close_reason}")
    if order is not None and order.status == OrderState.REJECTED:
        return CloseResult(**common, status=CloseOutcome.REJECTED, detail=failure or (order.error or ""))
    if order is not None and order.status in (OrderState.UNKNOWN, OrderState.SUBMITTED, OrderState.OPEN):
        return CloseResult(**common, status=CloseOutcome.UNKNOWN, detail=failure or "no answer from the exchange yet")
    return CloseResult(**common, status=CloseOutcome.FAILED, detail=failure or "not sent")


async def _add_targets(session: AsyncSession, close_id: uuid.UUID, added: list[CloseTarget]) -> None:
    await session.execute(
        text("UPDATE close_requests SET targets = targets || CAST(:added AS jsonb), updated_at = now() "
             "WHERE id = :id"),
        {"id": close_id, "added": msgspec.json.encode(added).decode()},
    )


_STALE = text("SELECT tenant_id, close_id FROM stale_close_requests(:before, :limit)")


async def sweep_closes(database: Database, enqueue: Callable[[uuid.UUID, uuid.UUID], None], *,
                       older_than_seconds: float, limit: int = 500) -> int:
    """Hand again to a worker every close request still pending long after it was handed over (its worker died
    or its message was lost); returns how many."""
    before = ledger.utcnow() - datetime.timedelta(seconds=older_than_seconds)
    async with NO_TENANT.session(database) as session:
        stale = (await session.execute(_STALE, {"before": before, "limit": limit})).all()
    for tenant_id, close_id in stale:
        async with TenantScope.of(tenant_id).session(database) as session:
            await session.execute(update(CloseRequest).where(CloseRequest.id == close_id)
                                  .values(enqueued_at=ledger.utcnow()))
        enqueue(tenant_id, close_id)
    return len(stale)
