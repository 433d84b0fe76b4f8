"""Bots: a tenant's trading bots, their validated configuration, start/stop, and the default bot.

Field ranges are checked by the API schemas from `tenants.bot_limits`; this service checks what one
field cannot say alone (unique symbols, a voting agent, a live bot's exchange key) and re-checks it
whenever a bot is started. Every change is audited in the transaction that makes it.
"""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import Database
from tenants import audit, bot_limits, bot_queries
from tenants.audit import AuditAction
from tenants.bot_limits import BotMode, BrainKind
from tenants.bot_queries import BotRecord
from tenants.errors import NotFound, Unprocessable
from tenants.exchange_catalog import PAPER
from tenants.models import Bot, ExchangeKey
from tenants.principal import Principal
from tenants.scope import TenantScope

# The wire names of the fields, for error messages and audit details.
_WIRE_NAMES = {
    "name": "name", "exchange_key_id": "exchangeKeyId", "symbols": "symbols", "timeframes": "timeframes",
    "leverage": "leverage", "risk_per_trade_pct": "riskPerTradePct", "max_open_positions": "maxOpenPositions",
    "daily_loss_limit_pct": "dailyLossLimitPct", "cycle_interval_seconds": "cycleIntervalSeconds",
    "agent_weights": "agentWeights", "brain": "brain", "brain_model": "brainModel", "mode": "mode",
}


class BotSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A bot's whole configuration, ranges already checked (the API schemas do it from `bot_limits`)."""

    name: str = bot_limits.DEFAULT_BOT_NAME
    exchange_key_id: uuid.UUID | None = None
    symbols: list[str] = msgspec.field(default_factory=lambda: list(bot_limits.DEFAULT_SYMBOLS))
    timeframes: list[str] = msgspec.field(default_factory=lambda: [str(t) for t in bot_limits.DEFAULT_TIMEFRAMES])
    leverage: Decimal = Decimal(str(bot_limits.DEFAULT_LEVERAGE))
    risk_per_trade_pct: Decimal = Decimal(str(bot_limits.DEFAULT_RISK_PER_TRADE_PCT))
    max_open_positions: int = bot_limits.DEFAULT_MAX_OPEN_POSITIONS
    daily_loss_limit_pct: Decimal = Decimal(str(bot_limits.DEFAULT_DAILY_LOSS_LIMIT_PCT))
    cycle_interval_seconds: int = bot_limits.DEFAULT_CYCLE_INTERVAL_SECONDS
    agent_weights: dict[str, float] = msgspec.field(default_factory=lambda: dict(bot_limits.DEFAULT_AGENT_WEIGHTS))
    brain: BrainKind = bot_limits.DEFAULT_BRAIN
    brain_model: str | None = None
    mode: BotMode = bot_limits.DEFAULT_MODE


class BotChanges(msgspec.Struct, frozen=True, kw_only=True):
    """A partial update: UNSET leaves a field as it is; `exchange_key_id=None` unlinks the key."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    exchange_key_id: uuid.UUID | None | msgspec.UnsetType = msgspec.UNSET
    symbols: list[str] | msgspec.UnsetType = msgspec.UNSET
    timeframes: list[str] | msgspec.UnsetType = msgspec.UNSET
    leverage: Decimal | msgspec.UnsetType = msgspec.UNSET
    risk_per_trade_pct: Decimal | msgspec.UnsetType = msgspec.UNSET
    max_open_positions: int | msgspec.UnsetType = msgspec.UNSET
    daily_loss_limit_pct: Decimal | msgspec.UnsetType = msgspec.UNSET
    cycle_interval_seconds: int | msgspec.UnsetType = msgspec.UNSET
    agent_weights: dict[str, float] | msgspec.UnsetType = msgspec.UNSET
    brain: BrainKind | msgspec.UnsetType = msgspec.UNSET
    brain_model: str | None | msgspec.UnsetType = msgspec.UNSET
    mode: BotMode | msgspec.UnsetType = msgspec.UNSET


class BotPage(msgspec.Struct, frozen=True):
    items: list[BotRecord]
    next_cursor: uuid.UUID | None


class BotService:
    def __init__(self, db: Database, default_symbols: tuple[str, ...] = ()) -> None:
        self.db = db
        # The default bot's symbols when the deployment sets them (the offline embedded default trades
        # the markets it has recorded candles for); else bot_limits.DEFAULT_SYMBOLS.
        self.default_symbols = default_symbols

    async def create(self, principal: Principal, settings: BotSettings) -> Bot:
        async with TenantScope.of(principal).session(self.db) as session:
            bot = Bot(tenant_id=principal.tenant_id, is_active=False, is_default=False)
            _apply(bot, msgspec.structs.asdict(settings))
            await _check(session, principal, bot)
            session.add(bot)
            await session.flush()
            _audit(session, principal, AuditAction.BOT_CREATED, bot, {"mode": bot.mode})
        return bot

    async def list(self, principal: Principal, limit: int, cursor: uuid.UUID | None = None) -> BotPage:
        """Newest first (ids are UUIDv7), keyset-paginated: pass the page's `next_cursor` to get the next."""
        async with TenantScope.of(principal).connection(self.db, read_only=True) as connection:
            rows = await connection.fetch(bot_queries.LIST, principal.tenant_id, limit + 1, cursor)
        bots = [bot_queries.record(r) for r in rows[:limit]]
        return BotPage(items=bots, next_cursor=bots[-1].id if len(rows) > limit else None)

    async def get(self, principal: Principal, bot_id: uuid.UUID) -> BotRecord:
        async with TenantScope.of(principal).connection(self.db, read_only=True) as connection:
            row = await connection.fetchrow(bot_queries.GET, bot_id, principal.tenant_id)
        if row is None:
            raise NotFound("no bot with this id")
        return bot_queries.record(row)

    async def update(self, principal: Principal, bot_id: uuid.UUID, changes: BotChanges) -> Bot:
        values = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not msgspec.UNSET}
        async with TenantScope.of(principal).session(self.db) as session:
            bot = await _find(session, principal, bot_id, lock=True)
            if values:
                _apply(bot, values)
                await _check(session, principal, bot)
                _audit(session, principal, AuditAction.BOT_CHANGED, bot,
                       {"fields": sorted(_WIRE_NAMES[k] for k in values)})
                await session.flush()
        return bot

    async def delete(self, principal: Principal, bot_id: uuid.UUID) -> None:
        async with TenantScope.of(principal).session(self.db) as session:
            bot = await _find(session, principal, bot_id, lock=True)
            await session.delete(bot)
            _audit(session, principal, AuditAction.BOT_DELETED, bot, {"name": bot.name})

    async def start(self, principal: Principal, bot_id: uuid.UUID) -> Bot:
        """Activate the bot after checking its configuration again (a linked key may have changed)."""
        async with TenantScope.of(principal).session(self.db) as session:
            bot = await _find(session, principal, bot_id, lock=True)
            await _check(session, principal, bot)
            was_active = bot.is_active
            bot.is_active, bot.paused_reason = True, None
            if not was_active:  # the silence watch counts from here (workers/watch.py)
                bot.started_at, bot.silent_since = datetime.datetime.now(datetime.UTC), None
            _audit(session, principal, AuditAction.BOT_STARTED, bot,
                   {"mode": bot.mode, "wasActive": was_active})
            await session.flush()
        return bot

    async def stop(self, principal: Principal, bot_id: uuid.UUID) -> Bot:
        async with TenantScope.of(principal).session(self.db) as session:
            bot = await _find(session, principal, bot_id, lock=True)
            was_active = bot.is_active
            bot.is_active, bot.silent_since = False, None  # a stopped bot is not silent
            _audit(session, principal, AuditAction.BOT_STOPPED, bot, {"wasActive": was_active})
            await session.flush()
        return bot

    async def get_default_config(self, principal: Principal) -> Bot:
        """The tenant's default bot, created (paper, rules brain, BTC/USDT) the first time it is asked for."""
        async with TenantScope.of(principal).session(self.db) as session:
            return await _default_bot(session, principal, self.default_symbols)

    async def put_default_config(self, principal: Principal, settings: BotSettings) -> Bot:
        """Replace the default bot's whole configuration; its id, active flag and history stay."""
        async with TenantScope.of(principal).session(self.db) as session:
            bot = await _default_bot(session, principal)
            _apply(bot, msgspec.structs.asdict(settings))
            await _check(session, principal, bot)
            _audit(session, principal, AuditAction.BOT_CHANGED, bot,
                   {"fields": sorted(_WIRE_NAMES.values()), "default": True})
            await session.flush()
        return bot


# -- internals ---------------------------------------------------------------------------------------


async def _find(session: AsyncSession, principal: Principal, bot_id: uuid.UUID, *, lock: bool) -> Bot:
    query = select(Bot).where(Bot.id == bot_id, Bot.tenant_id == principal.tenant_id)
    bot = await session.scalar(query.with_for_update() if lock else query)
    if bot is None:
        raise NotFound("no bot with this id")
    return bot


async def _default_bot(
    session: AsyncSession, principal: Principal, symbols: tuple[str, ...] = ()
) -> Bot:
    query = select(Bot).where(Bot.tenant_id == principal.tenant_id, Bot.is_default).with_for_update()
    bot = await session.scalar(query)
    if bot is not None:
        return bot
    bot = Bot(tenant_id=principal.tenant_id, is_active=False, is_default=True)
    defaults = BotSettings(symbols=list(symbols)) if symbols else BotSettings()
    _apply(bot, msgspec.structs.asdict(defaults))
    try:
        async with session.begin_nested():
            session.add(bot)
    except IntegrityError:
        # A concurrent request created it first (one default per tenant: uq_bots_tenant_default).
        found = await session.scalar(query)
        assert found is not None
        return found
    _audit(session, principal, AuditAction.BOT_CREATED, bot, {"mode": bot.mode, "default": True})
    return bot


def _apply(bot: Bot, values: dict[str, Any]) -> None:
    for field, value in values.items():
        if field == "leverage":
            value = value.quantize(bot_limits.LEVERAGE_STEP)
        elif field in ("risk_per_trade_pct", "daily_loss_limit_pct"):
            value = value.quantize(bot_limits.PCT_STEP)
        elif field in ("brain", "mode"):
            value = str(value)
        elif field in ("symbols", "timeframes"):
            value = [str(v) for v in value]
        elif field == "agent_weights":
            value = {str(k): float(v) for k, v in value.items()}
        setattr(bot, field, value)
    # Only the GPT brain has a model; switching to rules forgets it, switching to GPT picks the default.
    if bot.brain == BrainKind.GPT:
        bot.brain_model = bot.brain_model or bot_limits.DEFAULT_GPT_MODEL
    else:
        bot.brain_model = None


async def _check(session: AsyncSession, principal: Principal, bot: Bot) -> None:
    """What no single field can say: raise 422 naming each field at fault."""
    errors: list[dict[str, str]] = []
    if len(set(bot.symbols)) != len(bot.symbols):
        errors.append({"field": "symbols", "message": "each symbol may appear only once"})
    if len(set(bot.timeframes)) != len(bot.timeframes):
        errors.append({"field": "timeframes", "message": "each timeframe may appear only once"})
    unknown = sorted(set(bot.agent_weights) - set(bot_limits.AGENT_NAMES))
    if unknown:
        errors.append({"field": "agentWeights",
                       "message": f"unknown agent(s) {', '.join(unknown)}; known: {', '.join(bot_limits.AGENT_NAMES)}"})
    elif not any(weight > 0 for weight in bot.agent_weights.values()):
        errors.append({"field": "agentWeights", "message": "at least one agent needs a weight above 0"})
    exchange: str | None = None
    if bot.exchange_key_id is not None:
        # Another tenant's key is invisible here (and to row-level security): it reads as nonexistent,
        # and so does a key the exchange has not yet confirmed (status `checking`).
        exchange = await session.scalar(select(ExchangeKey.exchange).where(
            ExchangeKey.id == bot.exchange_key_id, ExchangeKey.tenant_id == principal.tenant_id,
            ExchangeKey.status == "active"))
        if exchange is None:
            errors.append({"field": "exchangeKeyId", "message": "no exchange key with this id"})
    if bot.mode == BotMode.LIVE and not any(e["field"] == "exchangeKeyId" for e in errors):
        if bot.exchange_key_id is None:
            errors.append({"field": "exchangeKeyId", "message": "live mode needs a linked exchange key"})
        elif exchange == PAPER:
            errors.append({"field": "exchangeKeyId", "message": "live mode needs a real exchange key, not a paper one"})
    if errors:
        raise Unprocessable("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


def _audit(session: AsyncSession, principal: Principal, action: AuditAction, bot: Bot,
           details: dict[str, Any]) -> None:
    audit.record(session, tenant_id=principal.tenant_id, action=action, actor=principal,
                 target_type="bot", target_id=bot.id, details=details)
