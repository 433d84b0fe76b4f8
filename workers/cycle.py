"""One trading cycle of one bot for one slot: lock → claim → reconcile → market → agents → brain → guard
→ orders → persist → events. Runs on the worker process's long-lived event loop.

Safety rules, in the order they apply:
- A per-bot Redis lock: two cycles of one bot never overlap (the lock expires after the hard limit,
  so a crashed worker cannot hold it forever).
- `ledger.claim_cycle`: the (bot, slot) row is unique; a completed or failed slot is never run again,
  a slot left `running` by a crash is resumed.
- Reconcile first: orders without a final state are looked up on the exchange by client order id,
  positions are compared with the exchange's, and a position the exchange closed (stop-loss,
  take-profit) is closed here with its PnL.
- An order is stored as an intent before it is sent, under a client order id made from bot, slot,
  symbol and leg; a lost answer is resolved by looking it up, never by sending again.
- Exchange errors map to actions (workers.exchanges.errors): pause the bot, back off, skip and
  notify, or retry reads.
- A soft time limit abandons the cycle and records it as failed; nothing one bot does raises into
  another's cycle.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal

import msgspec
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from quorum.database import Database
from quorum.logs import cycle_id_var
from tenants import events
from tenants.events import EventMessage, EventType
from tenants.exchange_catalog import PAPER
from tenants.exchange_keys import key_contexts
from tenants.models import ExchangeKey
from tenants.scope import TenantScope
from tenants.vault import Vault
from workers import ledger
from workers.agents.analysis import market_insights, position_insight
from workers.agents.insight import AgentName, Insight, OpenPosition
from workers.agents.insight import PositionSide as AgentSide
from workers.brain.decision import Action, Decision
from workers.brain.risk import AccountState, AdjustmentKind, RiskConfig
from workers.brain.service import BotConfig, BrainKind, DecisionInputs, DecisionOutcome
from workers.exchanges.base import (
    Exchange,
    ExchangeOrder,
    OrderIntent,
    OrderType,
    Position,
    PositionSide,
    Side,
    client_order_id,
    exit_client_order_id,
)
from workers.exchanges.errors import (
    DuplicateClientOrderId,
    ErrorAction,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderOutcomeUnknown,
    RateLimited,
    retry_read,
)
from workers.exchanges.factory import Credentials
from workers.market.cache import MarketDataError, UnknownMarket
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.feed import MarketFeed
from workers.market.fills import Holding, first_trigger, settle_currency
from workers.metrics import observe_cycle, observe_decision
from workers.notify.outbox import SendTask, publish_events

log = logging.getLogger(__name__)
CANDLES_PER_TIMEFRAME = 300
LOOKUP_ATTEMPTS = 4
# Kept back from the notional cap for the taker fee and slippage of the fill (about 0.1% + 0.05% on
# most venues and on paper), with room to spare, so a position sized to the cap does not bounce.
COST_RESERVE_PCT = 1.0

Decide = Callable[[BotConfig, DecisionInputs], Awaitable[DecisionOutcome]]
OpenExchange = Callable[[str, Credentials | None, bool, uuid.UUID, uuid.UUID, Mapping[str, Candles]], Exchange]

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class CycleReport(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # completed | failed | skipped (slot done or bot inactive) | locked | backing_off
    cycle_id: uuid.UUID | None = None
    decisions: int = 0
    orders: int = 0
    error: str | None = None


class CycleEnv:
    """Everything cycles share in one worker process: built once, used by every cycle on the loop."""

    def __init__(
        self,
        *,
        database: Database,
        vault: Vault,
        redis: Redis,
        feed: MarketFeed,
        decide: Decide,
        open_exchange: OpenExchange,
        send_task: SendTask,
        soft_time_limit: float,
        lock_ttl: float,
        concurrency: int = 64,
    ) -> None:
        self.database, self.vault, self.redis, self.feed = database, vault, redis, feed
        self.decide, self.open_exchange, self.send_task = decide, open_exchange, send_task
        self.soft_time_limit, self.lock_ttl = soft_time_limit, lock_ttl
        self._gate = asyncio.Semaphore(concurrency)  # cycles at once in this process
        self._release = redis.register_script(_RELEASE)
        # Market insights per (venue, symbol, timeframes, last candle): the same for every bot on that market.
        self._insights: dict[tuple[str, str, tuple[str, ...], int], list[Insight]] = {}

    def market_insights(self, venue: str, symbol: str, candles: Mapping[str, Candles]) -> list[Insight]:
        trading = next(iter(candles.values()))
        last = int(trading.timestamp[-1]) if len(trading) else 0
        key = (venue, symbol, tuple(candles), last)
        found = self._insights.get(key)
        if found is None:
            if len(self._insights) > 4096:
                self._insights.clear()
            found = self._insights[key] = market_insights(symbol, candles)
        return found

    async def run(self, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> CycleReport:
        """Run the bot's cycle for `slot` under its lock and the soft time limit, once one of the process's
        `concurrency` places is free; never raises for the bot's own failures (they are recorded on the cycle)."""
        async with self._gate:
            started = time.perf_counter()
            report = await self._run(tenant_id, bot_id, slot)
            observe_cycle(time.perf_counter() - started, report.status)
            return report

    async def _run(self, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> CycleReport:
        lock_key, token = f"quorum:cycle-lock:{bot_id}", secrets.token_hex(8)
        try:
            if not await self.redis.set(lock_key, token, nx=True, px=int(self.lock_ttl * 1000)):
                return CycleReport(status="locked")
        except Exception as exc:  # Redis unreachable: nothing was claimed; the next tick tries again
            log.warning("cycle lock unavailable", extra={"bot_id": str(bot_id), "error": str(exc)})
            return CycleReport(status="failed", error=f"lock unavailable: {type(exc).__name__}")
        run = _Run(self, tenant_id, bot_id, slot)
        try:
            async with asyncio.timeout(self.soft_time_limit):
                return await run.execute()
        except TimeoutError:
            return await run.fail(f"timed out after {self.soft_time_limit:g} s")
        except Exception as exc:  # the bot's failure is recorded on its cycle, not raised into the worker
            log.exception("cycle failed", extra={"bot_id": str(bot_id), "slot": slot})
            return await run.fail(f"{type(exc).__name__}: {exc}")
        finally:
            try:
                await self._release(keys=[lock_key], args=[token])
            except Exception:
                log.warning("cycle lock not released; it expires by itself", extra={"bot_id": str(bot_id)})


class _Run:
    """The state of one cycle as it goes."""

    def __init__(self, env: CycleEnv, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> None:
        self.env, self.tenant_id, self.bot_id, self.slot = env, tenant_id, bot_id, slot
        self.started = ledger.utcnow()
        self.cycle_id: uuid.UUID | None = None
        self.events: list[EventMessage] = []
        self.orders = 0
        self.candle_end: dict[str, int] = {}
        self.placed = 0  # decisions stored with their order (the others are stored at the end)
        self.marks: list[ledger.Mark] = []  # open positions' marks, stored when the cycle finishes
        self.webhooks = True  # until the claim says whether the tenant has a webhook endpoint

    async def execute(self) -> CycleReport:
        env = self.env
        async with TenantScope.of(self.tenant_id).connection(env.database) as conn:
            claim = await ledger.claim_cycle(conn, self.bot_id, self.slot)
        if claim is None:
            return CycleReport(status="skipped")
        self.cycle_id = claim.cycle_id
        self.webhooks = claim.webhooks
        cycle_id_var.set(str(claim.cycle_id))
        bot = claim.bot
        key: ExchangeKey | None = None
        credentials: Credentials | None = None
        if bot.mode != PAPER and bot.exchange_key_id is not None:
            async with TenantScope.of(self.tenant_id).session(env.database) as session:
                key = await ledger.load_key(session, bot.exchange_key_id)
                if key is not None:
                    credentials = await _decrypt(env.vault, session, key)
        exchange_name = key.exchange if key is not None else PAPER
        if bot.mode != PAPER and credentials is None:
            return await self._pause("a live bot needs a linked exchange key")
        backoff_key = f"quorum:backoff:{exchange_name}:{key.id if key else bot.id}"
        if exchange_name != PAPER and await env.redis.exists(backoff_key):  # paper never asks us to slow down
            return await self.finish("failed", "the exchange asked us to slow down; skipped this slot")

        venue = env.feed.exchange_for(exchange_name)
        timeframes = sorted(bot.timeframes, key=lambda tf: TIMEFRAME_MS[tf])
        try:
            market = await self._market(venue, list(bot.symbols), timeframes)
        except UnknownMarket as exc:
            return await self._pause(f"market data: {exc}")
        except MarketDataError as exc:
            return await self.finish("failed", f"market data unavailable: {exc}")
        prices = {symbol: series[timeframes[0]] for symbol, series in market.items()}
        testnet = bool(key and key.testnet)
        exchange = env.open_exchange(exchange_name, credentials, testnet, self.tenant_id, bot.id, prices)
        credentials = None
        try:
            return await self._trade(claim, exchange, exchange_name, venue, market, backoff_key)
        except ExchangeError as exc:
            if exc.action is ErrorAction.PAUSE_BOT:
                return await self._pause(f"the exchange refused the key: {exc}")
            if isinstance(exc, RateLimited):
                await env.redis.set(backoff_key, "1", ex=max(int(exc.retry_after or 30), 1))
            return await self.finish("failed", f"{type(exc).__name__}: {exc}")
        finally:
            await exchange.close()

    async def _market(self, venue: str, symbols: list[str], timeframes: list[str]) -> dict[str, dict[str, Candles]]:
        cache = self.env.feed.cache
        pairs = [(s, tf) for s in symbols for tf in timeframes]
        series = await asyncio.gather(
            *(cache.fetch_ohlcv(venue, s, tf, limit=CANDLES_PER_TIMEFRAME) for s, tf in pairs)
        )
        market: dict[str, dict[str, Candles]] = {s: {} for s in symbols}
        for (symbol, timeframe), candles in zip(pairs, series, strict=True):
            market[symbol][timeframe] = candles
        return market

    async def _trade(
        self,
        claim: ledger.Claim,
        exchange: Exchange,
        exchange_name: str,
        venue: str,
        market: dict[str, dict[str, Candles]],
        backoff_key: str,
    ) -> CycleReport:
        bot = claim.bot
        symbols = list(bot.symbols)
        self.candle_end = {symbol: _candle_end(series) for symbol, series in market.items()}
        await self._reconcile_orders(claim, exchange)
        held = await retry_read(exchange.fetch_positions, symbols)
        open_rows = await self._reconcile_positions(claim, exchange, exchange_name, held, market)
        balance = await retry_read(exchange.fetch_balance)
        quote = settle_currency(symbols[0])
        unrealized = sum(
            (ledger.money(p.unrealized_pnl or 0.0) for p in held if settle_currency(p.symbol) == quote), Decimal(0)
        )
        cash = ledger.money(balance[quote].total) if quote in balance else Decimal(0)
        equity = cash + unrealized
        pnl_today = equity - claim.day_start_equity if claim.day_start_equity is not None else Decimal(0)
        config = _bot_config(bot)
        decisions: list[dict[str, object]] = []

        for symbol in symbols:
            candles = market[symbol]
            trading = candles[next(iter(candles))]
            if not len(trading):
                continue
            price = float(trading.close[-1])
            positions = [_agent_position(p) for p in open_rows if p.symbol == symbol]
            insights = list(self.env.market_insights(venue, symbol, candles))
            managed = position_insight(symbol, candles, insights[0], positions)
            if managed is not None:
                insights.append(managed)
            rules = await retry_read(exchange.market_rules, symbol)
            account = AccountState(equity=float(equity), open_positions=len(open_rows), pnl_today=float(pnl_today))
            inputs = DecisionInputs(
                symbol=symbol,
                price=price,
                insights=tuple(insights),
                account=account,
                market=rules,
                position=positions[0] if positions else None,
            )
            outcome = await self.env.decide(config, inputs)
            record = outcome.record
            vetoed = any(a.kind is AdjustmentKind.VETO for a in record.adjustments)
            observe_decision(record.brain.value, record.proposal.action.value, vetoed)
            if outcome.budget_exhausted_notify:
                self.events.append(
                    await self._event(EventType.BUDGET_EXHAUSTED, {"detail": outcome.record.fallback_detail})
                )
            decision_id, row = _decision_row(self.tenant_id, self.bot_id, self.cycle_id, outcome)
            final = outcome.decision
            position = next((p for p in open_rows if p.symbol == symbol), None)
            intent, leg = self._intent(final, position)
            if intent is None:
                decisions.append(row)
                continue
            opened = await self._place(exchange, exchange_name, row, decision_id, intent, leg)
            if opened and leg == "entry":
                open_rows.append(_placeholder(symbol))
            elif opened and leg == "close":
                open_rows = [p for p in open_rows if p.symbol != symbol]

        after = await retry_read(exchange.fetch_balance) if self.orders else balance
        cash = ledger.money(after[quote].total) if quote in after else Decimal(0)
        return await self.finish(
            "completed", None, equity=cash + unrealized, unrealized=unrealized, decisions=decisions
        )

    def _intent(self, final: Decision, position: ledger.OpenPositionRow | None) -> tuple[OrderIntent | None, str]:
        symbol = final.symbol
        if final.action in (Action.OPEN_LONG, Action.OPEN_SHORT) and position is None and final.size:
            side = Side.BUY if final.action is Action.OPEN_LONG else Side.SELL
            return OrderIntent(
                client_order_id=client_order_id(self.bot_id, self.slot, symbol, "entry"),
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
                client_order_id=client_order_id(self.bot_id, self.slot, symbol, "close"),
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                amount=float(position.amount),
                reduce_only=True,
            ), "close"
        return None, ""

    async def _place(
        self,
        exchange: Exchange,
        exchange_name: str,
        decision_row: dict[str, object],
        decision_id: uuid.UUID,
        intent: OrderIntent,
        leg: str,
    ) -> bool:
        """Store the intent with its decision, send it once, store the answer. True if it filled."""
        async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
            await ledger.store_decisions(session, [decision_row])
            self.placed += 1
            self.events.append(await self._decision_event(session, decision_row))
            order_id, status = await ledger.store_intent(
                session,
                self.tenant_id,
                self.bot_id,
                cycle_id=self.cycle_id,
                decision_id=decision_id,
                exchange=exchange_name,
                leg=leg,
                intent=intent,
            )
        if status != "sending":
            return False  # this slot already sent (or gave up on) this order: reconcile owns it now
        self.orders += 1
        answer: ExchangeOrder | None = None
        try:
            if intent.leverage and intent.leverage > 1 and exchange_name != PAPER:
                await exchange.set_leverage(intent.symbol, intent.leverage)
            answer = await exchange.create_order(intent)
        except (OrderOutcomeUnknown, DuplicateClientOrderId):
            answer = await self._look_up(exchange, intent.symbol, intent.client_order_id)
            if answer is None:
                await self._mark(order_id, "unknown", "no answer from the exchange; looked up on the next cycle")
                return False
        except InsufficientFunds as exc:
            await self._mark(order_id, "rejected", str(exc))
            self.events.append(
                await self._event(EventType.TRADE_SKIPPED, {"symbol": intent.symbol, "reason": str(exc)})
            )
            return False
        except InvalidOrder as exc:
            await self._mark(order_id, "rejected", str(exc))
            return False
        except ExchangeError as exc:
            if exc.action is ErrorAction.RETRY_READ:  # the create may or may not have landed: look, never resend
                answer = await self._look_up(exchange, intent.symbol, intent.client_order_id)
                if answer is None:
                    await self._mark(order_id, "unknown", f"{type(exc).__name__}; looked up on the next cycle")
                    return False
            else:
                await self._mark(order_id, "failed", f"{type(exc).__name__}: {exc}")
                raise
        async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
            self.events.extend(
                await ledger.record_order(
                    session,
                    self.tenant_id,
                    self.bot_id,
                    order_id,
                    answer,
                    leg=leg,
                    leverage=intent.leverage,
                    market_ms=self.candle_end.get(intent.symbol, 0),
                )
            )
        return (answer.filled or 0) > 0

    async def _look_up(self, exchange: Exchange, symbol: str, coid: str) -> ExchangeOrder | None:
        for attempt in range(LOOKUP_ATTEMPTS):
            try:
                found = await retry_read(exchange.fetch_order_by_client_id, symbol, coid)
            except ExchangeError:
                found = None
            if found is not None:
                return found
            await asyncio.sleep(0.25 * 2**attempt)
        return None

    async def _mark(self, order_id: uuid.UUID, status: str, error: str) -> None:
        async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
            await ledger.mark_order(session, order_id, status, error[:500])

    async def _reconcile_orders(self, claim: ledger.Claim, exchange: Exchange) -> None:
        """Orders left without a final state (a crash, a lost answer) are looked up by client order id."""
        for pending in claim.pending:
            found = await retry_read(exchange.fetch_order_by_client_id, pending.symbol, pending.client_order_id)
            async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
                if found is None:
                    if pending.status in ("intent", "unknown"):
                        await ledger.mark_order(session, pending.id, "failed", "the exchange has no such order")
                    continue
                self.events.extend(
                    await ledger.record_order(
                        session,
                        self.tenant_id,
                        self.bot_id,
                        pending.id,
                        found,
                        leg=pending.leg,
                        leverage=float(pending.leverage) if pending.leverage else None,
                        market_ms=self.candle_end.get(pending.symbol, 0),
                    )
                )
        if claim.pending:  # positions may have changed: read them again
            async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
                fresh = await ledger.claim_positions(session, self.bot_id)
            claim.positions = fresh

    async def _reconcile_positions(
        self,
        claim: ledger.Claim,
        exchange: Exchange,
        exchange_name: str,
        held: list[Position],
        market: dict[str, dict[str, Candles]],
    ) -> list[ledger.OpenPositionRow]:
        """Close here what the exchange closed (stop-loss, take-profit, by hand); the rest are marked to market
        when the cycle finishes. An exit the exchange reports (the paper exchange does, by `exit_client_order_id`)
        is recorded as the closing order with its own price and fee; otherwise the close is estimated from the
        candles, without a fee."""
        by_symbol = {p.symbol: p for p in held}
        still_open: list[ledger.OpenPositionRow] = []
        gone: list[ledger.OpenPositionRow] = []
        for row in claim.positions:
            live = by_symbol.get(row.symbol)
            if live is None or live.side.value != row.side:
                gone.append(row)
                continue
            still_open.append(row)
            if live.mark_price is not None:
                self.marks.append(
                    ledger.Mark(row.symbol, ledger.money(live.mark_price), ledger.money(live.unrealized_pnl or 0.0))
                )
        if not gone:
            return still_open
        async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
            entries = {row.symbol: await ledger.entry_client_order_id(session, self.bot_id, row.symbol) for row in gone}
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
        closed_events: list[EventMessage] = []
        async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
            for row in gone:
                reason, price = _how_closed(row, market.get(row.symbol))
                exit_ = exits.get(row.symbol)
                if exit_ is not None:
                    closed_events += await ledger.record_exit(
                        session, self.tenant_id, self.bot_id, exit_, cycle_id=self.cycle_id, exchange=exchange_name,
                        reason=reason, market_ms=self.candle_end.get(row.symbol, 0),
                    )
                else:
                    closed_events += await ledger.close_position(
                        session, self.tenant_id, self.bot_id, row.symbol, exit_price=price, fee=Decimal(0),
                        reason=reason,
                    )
        self.events.extend(closed_events)
        return still_open

    async def _decision_event(self, session: AsyncSession, row: dict[str, object]) -> EventMessage:
        (message,) = await events.record_many(session, [self._decision_message(row)])
        return message

    def _decision_message(self, row: dict[str, object]) -> EventMessage:
        payload = {
            "decisionId": str(row["id"]), "symbol": row["symbol"], "action": row["action"], "brain": row["brain"],
            "confidence": row["confidence"], "fallback": row["fallback"],
        }
        return events.new_message(self.tenant_id, EventType.DECISION, payload, self.bot_id)

    async def _event(self, type_: EventType, payload: dict[str, object]) -> EventMessage:
        async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
            return await events.record(session, self.tenant_id, type_, payload, self.bot_id)

    async def _pause(self, reason: str) -> CycleReport:
        async with TenantScope.of(self.tenant_id).session(self.env.database) as session:
            self.events.append(await ledger.pause_bot(session, self.tenant_id, self.bot_id, reason))
        return await self.finish("failed", f"bot paused: {reason}")

    async def finish(
        self,
        status: str,
        error: str | None,
        *,
        equity: Decimal | None = None,
        unrealized: Decimal | None = None,
        decisions: list[dict[str, object]] | None = None,
    ) -> CycleReport:
        assert self.cycle_id is not None
        decisions = decisions or []
        messages = [self._decision_message(r) for r in decisions]
        async with TenantScope.of(self.tenant_id).connection(self.env.database) as conn:
            await ledger.finish_cycle(
                conn,
                self.cycle_id,
                self.bot_id,
                status=status,
                started=self.started,
                error=error,
                equity=equity,
                unrealized=unrealized,
                decisions=decisions,
                messages=messages,
                marks=self.marks if status == "completed" else (),
            )
        self.events += messages
        await publish_events(self.env.redis, self.events, self.env.send_task, webhooks=self.webhooks)
        return CycleReport(
            status=status,
            cycle_id=self.cycle_id,
            decisions=len(decisions) + self.placed,
            orders=self.orders,
            error=error,
        )

    async def fail(self, error: str) -> CycleReport:
        """Record the cycle as failed after a timeout or an unexpected error (it may not have been claimed)."""
        if self.cycle_id is None:
            return CycleReport(status="failed", error=error)
        try:
            return await asyncio.shield(self.finish("failed", error))
        except Exception:
            log.exception("could not record the failed cycle", extra={"cycle_id": str(self.cycle_id)})
            return CycleReport(status="failed", cycle_id=self.cycle_id, error=error)


async def _decrypt(vault: Vault, session: AsyncSession, key: ExchangeKey) -> Credentials:
    api_ctx, secret_ctx, pass_ctx = key_contexts(key)
    return Credentials(
        api_key=await vault.decrypt(session, api_ctx, key.api_key_ciphertext or b""),
        secret=await vault.decrypt(session, secret_ctx, key.secret_ciphertext or b""),
        passphrase=(
            await vault.decrypt(session, pass_ctx, key.passphrase_ciphertext) if key.passphrase_ciphertext else None
        ),
    )


def _bot_config(bot: ledger.BotRow) -> BotConfig:
    weights = {
        AgentName(k): float(v) for k, v in (bot.agent_weights or {}).items() if k in AgentName.__members__.values()
    }
    return BotConfig(
        tenant_id=bot.tenant_id,
        bot_id=bot.id,
        symbols=tuple(bot.symbols),
        brain=BrainKind(bot.brain),
        risk=RiskConfig(
            max_leverage=float(bot.leverage),
            risk_per_trade_pct=float(bot.risk_per_trade_pct),
            max_open_positions=int(bot.max_open_positions),
            daily_loss_limit_pct=float(bot.daily_loss_limit_pct),
            cost_reserve_pct=COST_RESERVE_PCT,
        ),
        weights=weights or None,
    )


def _agent_position(row: ledger.OpenPositionRow) -> OpenPosition:
    return OpenPosition(
        symbol=row.symbol,
        side=AgentSide(row.side),
        entry_price=float(row.entry_price),
        amount=float(row.amount),
        opened_at=row.opened_market_ms,
        stop_loss=float(row.stop_loss) if row.stop_loss is not None else None,
        take_profit=float(row.take_profit) if row.take_profit is not None else None,
    )


def _placeholder(symbol: str) -> ledger.OpenPositionRow:
    """A position just opened in this cycle: counts against max open positions for the next symbols."""
    zero = Decimal(0)
    return ledger.OpenPositionRow(
        id=uuid.UUID(int=0),
        symbol=symbol,
        side="long",
        amount=zero,
        entry_price=zero,
        leverage=Decimal(1),
        stop_loss=None,
        take_profit=None,
        fees=zero,
        opened_at=ledger.utcnow(),
        opened_market_ms=0,
    )


def _candle_end(series: Mapping[str, Candles]) -> int:
    """When the last trading candle the cycle saw closed (ms): the market time of what it does."""
    trading = next(iter(series.values()))
    return int(trading.timestamp[-1]) + TIMEFRAME_MS[trading.timeframe] if len(trading) else 0


def _how_closed(row: ledger.OpenPositionRow, candles: Mapping[str, Candles] | None) -> tuple[str, Decimal]:
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


def _decision_row(
    tenant_id: uuid.UUID, bot_id: uuid.UUID, cycle_id: uuid.UUID | None, outcome: DecisionOutcome
) -> tuple[uuid.UUID, dict[str, object]]:
    record = outcome.record
    tokens = record.tokens
    now = datetime.datetime.now(datetime.UTC)
    decision_id = uuid7()
    return decision_id, {
        "id": decision_id,
        "tenant_id": tenant_id,
        "bot_id": bot_id,
        "cycle_id": cycle_id,
        "symbol": record.symbol,
        "action": record.final.action.value,
        "confidence": float(record.final.confidence),
        "requested_brain": record.requested_brain.value,
        "brain": record.brain.value,
        "fallback": record.fallback.value if record.fallback else None,
        "fallback_detail": record.fallback_detail[:500],
        "fingerprint": record.fingerprint,
        "prompt_hash": record.prompt_hash,
        "model": record.model,
        "prompt_tokens": tokens.prompt_tokens if tokens else 0,
        "completion_tokens": tokens.completion_tokens if tokens else 0,
        "cached_tokens": tokens.cached_tokens if tokens else 0,
        "cost_usd": tokens.cost_usd if tokens else Decimal(0),
        "latency_ms": record.latency_ms,
        "record": record,
        "created_at": now,
        "updated_at": now,
    }


def slot_of(now: float, interval_seconds: int) -> int:
    """The slot (its start, in seconds since the epoch) that `now` falls in, for a bot with this interval."""
    return int(now // interval_seconds * interval_seconds)
