"""One cycle as it goes: claim → credentials → market → reconcile → decide → orders → finish."""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import uuid
from collections.abc import Mapping
from decimal import Decimal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from quorum.logs import cycle_id_var
from tenants.events import EventType
from tenants.exchange_catalog import PAPER
from tenants.exchange_keys import key_contexts
from tenants.models import CycleStatus, ExchangeKey
from tenants.scope import TenantScope
from tenants.vault import Vault
from workers import ledger
from workers.agents.analysis import position_insight
from workers.agents.insight import AgentName, OpenPosition, PositionSide
from workers.brain.risk import COST_RESERVE_PCT, AccountState, AdjustmentKind, RiskConfig
from workers.brain.service import BotConfig, BrainKind, DecisionInputs, DecisionOutcome
from workers.cycle.orders import order_intent, place
from workers.cycle.reconcile import reconcile_orders, reconcile_positions
from workers.cycle.state import RunState
from workers.exchanges.base import Exchange
from workers.exchanges.errors import ErrorAction, ExchangeError, RateLimited, retry_read
from workers.exchanges.factory import Credentials
from workers.market.cache import MarketDataError, UnknownMarket
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.fills import settle_currency
from workers.metrics import observe_decision
from workers.notify.outbox import publish_events

log = logging.getLogger("workers.cycle")
CANDLES_PER_TIMEFRAME = 300


class ReportStatus(enum.StrEnum):
    """How a run ended: a stored cycle's status, or why no cycle was stored."""

    COMPLETED = CycleStatus.COMPLETED.value
    FAILED = CycleStatus.FAILED.value
    SKIPPED = "skipped"  # the slot already ran, or the bot is gone or stopped
    LOCKED = "locked"  # another cycle of the bot holds its lock


class CycleReport(msgspec.Struct, frozen=True, kw_only=True):
    status: ReportStatus
    cycle_id: uuid.UUID | None = None
    decisions: int = 0
    orders: int = 0
    error: str | None = None


class Run(RunState):
    """Claim → credentials → market → reconcile → decide → orders → finish."""

    async def execute(self) -> CycleReport:
        env = self.services
        async with TenantScope.of(self.tenant_id).connection(env.database) as conn:
            claim = await ledger.claim_cycle(conn, self.bot_id, self.slot)
        if claim is None:
            return CycleReport(status=ReportStatus.SKIPPED)
        self.cycle_id = claim.cycle_id
        self.webhooks = claim.webhooks
        cycle_id_var.set(str(claim.cycle_id))
        bot = claim.bot
        key: ExchangeKey | None = None
        credentials: Credentials | None = None
        if bot.mode != PAPER and bot.exchange_key_id is not None:
            async with self.session() as session:
                key = await ledger.load_key(session, bot.exchange_key_id)
                if key is not None:
                    credentials = await decrypt_key(env.vault, session, key)
        exchange_name = key.exchange if key is not None else PAPER
        if bot.mode != PAPER and credentials is None:
            return await self.pause("a live bot needs a linked exchange key")
        backoff_key = f"quorum:backoff:{exchange_name}:{key.id if key else bot.id}"
        if exchange_name != PAPER and await env.redis.exists(backoff_key):  # paper never asks us to slow down
            return await self.finish(CycleStatus.FAILED, "the exchange asked us to slow down; skipped this slot")

        venue = env.feed.exchange_for(exchange_name)
        timeframes = sorted(bot.timeframes, key=lambda tf: TIMEFRAME_MS[tf])
        try:
            market = await self._market(venue, list(bot.symbols), timeframes)
        except UnknownMarket as exc:
            return await self.pause(str(exc))
        except MarketDataError as exc:
            return await self.finish(CycleStatus.FAILED, f"market data unavailable: {exc}")
        prices = {symbol: series[timeframes[0]] for symbol, series in market.items()}
        testnet = bool(key and key.testnet)
        exchange = env.open_exchange(exchange_name, credentials, testnet, self.tenant_id, bot.id, prices)
        credentials = None
        try:
            return await self._trade(claim, exchange, exchange_name, venue, market)
        except ExchangeError as exc:
            if exc.action is ErrorAction.PAUSE_BOT:
                return await self.pause(f"the exchange refused the key: {exc}")
            if isinstance(exc, RateLimited):
                await env.redis.set(backoff_key, "1", ex=max(int(exc.retry_after or 30), 1))
            return await self.finish(CycleStatus.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            await exchange.close()

    async def _market(self, venue: str, symbols: list[str], timeframes: list[str]) -> dict[str, dict[str, Candles]]:
        cache = self.services.feed.cache
        pairs = [(s, tf) for s in symbols for tf in timeframes]
        series = await asyncio.gather(
            *(cache.fetch_ohlcv(venue, s, tf, limit=CANDLES_PER_TIMEFRAME) for s, tf in pairs)
        )
        market: dict[str, dict[str, Candles]] = {s: {} for s in symbols}
        for (symbol, timeframe), candles in zip(pairs, series, strict=True):
            market[symbol][timeframe] = candles
        return market

    async def _trade(
        self, claim: ledger.Claim, exchange: Exchange, exchange_name: str, venue: str,
        market: dict[str, dict[str, Candles]],
    ) -> CycleReport:
        bot = claim.bot
        symbols = list(bot.symbols)
        self.candle_end = {symbol: _candle_end(series) for symbol, series in market.items()}
        reread = await reconcile_orders(self, claim.pending, exchange)
        positions = claim.positions if reread is None else reread
        held = await retry_read(exchange.fetch_positions, symbols)
        open_rows = await reconcile_positions(self, positions, exchange, exchange_name, held, market)
        balance = await retry_read(exchange.fetch_balance)
        quote = settle_currency(symbols[0])
        unrealized = sum(
            (ledger.money(p.unrealized_pnl or 0.0) for p in held if settle_currency(p.symbol) == quote), Decimal(0)
        )
        cash = ledger.money(balance[quote].total) if quote in balance else Decimal(0)
        equity = cash + unrealized
        pnl_today = equity - claim.day_start_equity if claim.day_start_equity is not None else Decimal(0)
        config = _bot_config(bot)
        decisions: list[ledger.DecisionRow] = []

        for symbol in symbols:
            candles = market[symbol]
            trading = candles[next(iter(candles))]
            if not len(trading):
                continue
            positions = [_agent_position(p) for p in open_rows if p.symbol == symbol]
            insights = list(self.services.market_insights(venue, symbol, candles))
            managed = position_insight(symbol, candles, insights[0], positions)
            if managed is not None:
                insights.append(managed)
            inputs = DecisionInputs(
                symbol=symbol,
                price=float(trading.close[-1]),
                insights=tuple(insights),
                account=AccountState(equity=float(equity), open_positions=len(open_rows), pnl_today=float(pnl_today)),
                market=await retry_read(exchange.market_rules, symbol),
                position=positions[0] if positions else None,
            )
            outcome = await self.services.decide(config, inputs)
            record = outcome.record
            vetoed = any(a.kind is AdjustmentKind.VETO for a in record.adjustments)
            observe_decision(record.brain.value, record.proposal.action.value, vetoed)
            if outcome.budget_exhausted_notify:
                self.events.append(await self.event(EventType.BUDGET_EXHAUSTED, {"detail": record.fallback_detail}))
            row = decision_row(self.tenant_id, self.bot_id, self.cycle_id, outcome)
            position = next((p for p in open_rows if p.symbol == symbol), None)
            intent, leg = order_intent(self.bot_id, self.slot, outcome.decision, position)
            if intent is None:
                decisions.append(row)
                continue
            opened = await place(self, exchange, exchange_name, row, intent, leg)
            if opened and leg == "entry":
                open_rows.append(_placeholder(symbol))
            elif opened and leg == "close":
                open_rows = [p for p in open_rows if p.symbol != symbol]

        after = await retry_read(exchange.fetch_balance) if self.orders else balance
        cash = ledger.money(after[quote].total) if quote in after else Decimal(0)
        return await self.finish(
            CycleStatus.COMPLETED, None, equity=cash + unrealized, unrealized=unrealized, decisions=decisions
        )

    async def pause(self, reason: str) -> CycleReport:
        async with self.session() as session:
            self.events.append(await ledger.pause_bot(session, self.tenant_id, self.bot_id, reason))
        return await self.finish(CycleStatus.FAILED, f"bot paused: {reason}")

    async def finish(
        self,
        status: CycleStatus,
        error: str | None,
        *,
        equity: Decimal | None = None,
        unrealized: Decimal | None = None,
        decisions: list[ledger.DecisionRow] | None = None,
    ) -> CycleReport:
        assert self.cycle_id is not None
        decisions = decisions or []
        messages = [self.decision_message(r) for r in decisions]
        async with TenantScope.of(self.tenant_id).connection(self.services.database) as conn:
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
                marks=self.marks if status is CycleStatus.COMPLETED else (),
            )
        self.events += messages
        await publish_events(self.services.redis, self.events, self.services.send_task, webhooks=self.webhooks)
        return CycleReport(
            status=ReportStatus(status.value),
            cycle_id=self.cycle_id,
            decisions=len(decisions) + self.placed,
            orders=self.orders,
            error=error,
        )

    async def fail(self, error: str) -> CycleReport:
        """Record the cycle as failed after a timeout or an unexpected error (it may not have been claimed)."""
        if self.cycle_id is None:
            return CycleReport(status=ReportStatus.FAILED, error=error)
        try:
            return await asyncio.shield(self.finish(CycleStatus.FAILED, error))
        except Exception:
            log.exception("could not record the failed cycle", extra={"cycle_id": str(self.cycle_id)})
            return CycleReport(status=ReportStatus.FAILED, cycle_id=self.cycle_id, error=error)


async def decrypt_key(vault: Vault, session: AsyncSession, key: ExchangeKey) -> Credentials:
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
        side=PositionSide(row.side),
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


def decision_row(
    tenant_id: uuid.UUID, bot_id: uuid.UUID, cycle_id: uuid.UUID | None, outcome: DecisionOutcome
) -> ledger.DecisionRow:
    record = outcome.record
    tokens = record.tokens
    now = datetime.datetime.now(datetime.UTC)
    return ledger.DecisionRow(
        id=uuid7(),
        tenant_id=tenant_id,
        bot_id=bot_id,
        cycle_id=cycle_id,
        symbol=record.symbol,
        action=record.final.action.value,
        confidence=float(record.final.confidence),
        requested_brain=record.requested_brain.value,
        brain=record.brain.value,
        fallback=record.fallback.value if record.fallback else None,
        fallback_detail=record.fallback_detail[:500],
        fingerprint=record.fingerprint,
        prompt_hash=record.prompt_hash,
        model=record.model,
        prompt_tokens=tokens.prompt_tokens if tokens else 0,
        completion_tokens=tokens.completion_tokens if tokens else 0,
        cached_tokens=tokens.cached_tokens if tokens else 0,
        cost_usd=tokens.cost_usd if tokens else Decimal(0),
        latency_ms=record.latency_ms,
        record=record,
        created_at=now,
        updated_at=now,
    )
