"""Tenant-owned data. Every table except `tenants` carries `tenant_id`, and row-level security enforces it."""

from __future__ import annotations

import datetime
import enum
import uuid
from decimal import Decimal

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.mixins.uuid import UUID_UTILS_INSTALLED
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, Numeric, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

if not UUID_UTILS_INSTALLED:  # advanced-alchemy would silently fall back to uuid4
    raise RuntimeError("uuid-utils is required for UUIDv7 ids: install advanced-alchemy[uuid]")

Base = UUIDv7AuditBase


class TenantOwned:
    """Mixin for every tenant-owned table: `tenant_id`, the leading column of its indexes."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, sort_order=-90)


class Tenant(Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(120))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class UserRole(enum.StrEnum):
    OWNER = "owner"
    MEMBER = "member"


class CycleStatus(enum.StrEnum):
    RUNNING = "running"  # claimed; a crash leaves it so, and the bot's next cycle closes it
    COMPLETED = "completed"
    FAILED = "failed"


class OrderState(enum.StrEnum):
    """An order's stored state: the exchange's states (`workers.exchanges.base.OrderStatus`) and the cycle's own."""

    INTENT = "intent"  # stored before it is sent; never answered yet
    SUBMITTED = "submitted"
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # sent, no answer, not found yet: looked up by client id on the next cycle
    FAILED = "failed"  # never made: refused before it reached the exchange, or the exchange has no such order


PENDING_ORDER_STATES = (OrderState.INTENT, OrderState.SUBMITTED, OrderState.OPEN, OrderState.UNKNOWN)


class User(TenantOwned, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are unique across tenants: login finds the account before it knows the tenant.
        Index("uq_users_email", "email", unique=True),
        Index("ix_users_tenant_id", "tenant_id"),
    )

    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=UserRole.OWNER)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    password_changed_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    last_login_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class AuthSession(TenantOwned, Base):
    """A login: the family of refresh tokens it issues. Revoking it ends the session and its access tokens."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_tenant_user", "tenant_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), default=None)


class RefreshToken(TenantOwned, Base):
    """One issued refresh token (its id is the token's `jti`). Each may be used once."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_tenant_session", "tenant_id", "session_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # The token issued when this one was used: a duplicate within the grace window gets it again.
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(default=None)



class TenantDataKey(TenantOwned, Base):
    """The tenant's AES-256 data key, wrapped by a master key. Rotation re-wraps it; the key itself stays."""

    __tablename__ = "tenant_data_keys"
    __table_args__ = (Index("uq_tenant_data_keys_tenant", "tenant_id", unique=True),)

    master_key_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)


class ExchangeKey(TenantOwned, Base):
    """A linked exchange account. The API key, secret and passphrase are stored only as ciphertext."""

    __tablename__ = "exchange_keys"
    __table_args__ = (Index("ix_exchange_keys_tenant", "tenant_id", "created_at"),)

    exchange: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(80))
    testnet: Mapped[bool] = mapped_column(Boolean, default=False)
    # `checking` while a worker asks the exchange what the key may do; `active` once accepted.
    status: Mapped[str] = mapped_column(String(16), default="checking")
    api_key_last4: Mapped[str] = mapped_column(String(4), default="")
    api_key_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    passphrase_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    can_withdraw: Mapped[bool | None] = mapped_column(Boolean, default=None)
    ip_whitelisted: Mapped[bool | None] = mapped_column(Boolean, default=None)
    can_trade: Mapped[bool | None] = mapped_column(Boolean, default=None)
    warnings: Mapped[list[str]] = mapped_column(JSONB, default=list)


class Bot(TenantOwned, Base):
    """A trading bot's configuration. Validation lives in the API schemas and `tenants.bots`."""

    __tablename__ = "bots"
    __table_args__ = (
        Index("ix_bots_tenant", "tenant_id", "created_at"),
        # At most one default bot per tenant: the one the mobile app's simple config screen edits.
        Index("uq_bots_tenant_default", "tenant_id", unique=True, postgresql_where=text("is_default")),
    )

    name: Mapped[str] = mapped_column(String(80))
    exchange_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("exchange_keys.id", ondelete="RESTRICT"), default=None
    )
    symbols: Mapped[list[str]] = mapped_column(JSONB)
    timeframes: Mapped[list[str]] = mapped_column(JSONB)
    leverage: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    risk_per_trade_pct: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    max_open_positions: Mapped[int] = mapped_column(Integer)
    daily_loss_limit_pct: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    cycle_interval_seconds: Mapped[int] = mapped_column(Integer)
    agent_weights: Mapped[dict[str, float]] = mapped_column(JSONB)
    brain: Mapped[str] = mapped_column(String(16))
    brain_model: Mapped[str | None] = mapped_column(String(80), default=None)
    mode: Mapped[str] = mapped_column(String(8))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    started_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # No completed cycle for three of its intervals since then (workers/watch.py); the next one clears it.
    silent_since: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class ApiKey(TenantOwned, Base):
    """An integrator's API key: only a keyed hash of its secret is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant", "tenant_id", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer)
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class AuditEvent(TenantOwned, Base):
    """Append-only: the application role may insert and read, never change or delete."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_id", "tenant_id", "id"),)

    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    action: Mapped[str] = mapped_column(String(48))
    target_type: Mapped[str | None] = mapped_column(String(32), default=None)
    target_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict)


# Money and amounts: exact decimals wide enough for any coin's smallest unit and any price.
Money = Numeric(38, 18)


class PaperAccount(TenantOwned, Base):
    """A paper bot's simulated account: cash per currency; changed only under a row lock."""

    __tablename__ = "paper_accounts"
    __table_args__ = (Index("uq_paper_accounts_bot", "tenant_id", "bot_id", unique=True),)

    bot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    balances: Mapped[dict[str, str]] = mapped_column(JSONB)  # currency → decimal string


class PaperOrder(TenantOwned, Base):
    """An order the paper exchange received; unique by client order id like a real exchange's."""

    __tablename__ = "paper_orders"
    __table_args__ = (Index("uq_paper_orders_client_id", "tenant_id", "account_id", "client_order_id", unique=True),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("paper_accounts.id", ondelete="CASCADE"))
    client_order_id: Mapped[str] = mapped_column(String(36))
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    amount: Mapped[Decimal] = mapped_column(Money)
    filled: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money, default=None)
    average: Mapped[Decimal | None] = mapped_column(Money, default=None)
    fee: Mapped[Decimal] = mapped_column(Money)
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_loss: Mapped[Decimal | None] = mapped_column(Money, default=None)
    take_profit: Mapped[Decimal | None] = mapped_column(Money, default=None)
    reason: Mapped[str] = mapped_column(String(16))  # order | stop_loss | take_profit


class PaperPosition(TenantOwned, Base):
    """An open paper position: one per account and symbol (netted, like a one-way perpetual account)."""

    __tablename__ = "paper_positions"
    __table_args__ = (Index("uq_paper_positions_symbol", "tenant_id", "account_id", "symbol", unique=True),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("paper_accounts.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(5))
    amount: Mapped[Decimal] = mapped_column(Money)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    leverage: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    stop_loss: Mapped[Decimal | None] = mapped_column(Money, default=None)
    take_profit: Mapped[Decimal | None] = mapped_column(Money, default=None)
    # Candles opening before this (ms) were already checked against the stop-loss and take-profit.
    checked_until_ms: Mapped[int] = mapped_column(BigInteger)


class Cycle(TenantOwned, Base):
    """One run of one bot for one slot. Unique (bot, slot): a redelivered task finds it and stops."""

    __tablename__ = "cycles"
    __table_args__ = (
        Index("uq_cycles_bot_slot", "tenant_id", "bot_id", "slot", unique=True),
        Index("ix_cycles_tenant_bot", "tenant_id", "bot_id", "id"),
    )

    bot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(BigInteger)  # seconds since the epoch at the slot's start
    status: Mapped[str] = mapped_column(String(12))  # CycleStatus
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    # The account after the cycle, in the quote currency of the bot's first symbol.
    equity: Mapped[Decimal | None] = mapped_column(Money, default=None)
    unrealized_pnl: Mapped[Decimal | None] = mapped_column(Money, default=None)


class DecisionLog(TenantOwned, Base):
    """One decision: the brain that made it (or the fallback and why), its inputs' fingerprint, tokens,
    and the outcome after the guard. `record` is the whole `DecisionRecord`, enough to replay it."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_tenant_bot", "tenant_id", "bot_id", "id"),
        Index("ix_decisions_tenant_day", "tenant_id", "created_at"),
    )

    bot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(12))
    confidence: Mapped[float] = mapped_column(Float)
    requested_brain: Mapped[str] = mapped_column(String(8))
    brain: Mapped[str] = mapped_column(String(8))
    fallback: Mapped[str | None] = mapped_column(String(32), default=None)
    fallback_detail: Mapped[str] = mapped_column(String(500), default="")
    fingerprint: Mapped[str] = mapped_column(String(64))
    prompt_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str | None] = mapped_column(String(80), default=None)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 8), default=Decimal(0))
    latency_ms: Mapped[float] = mapped_column(Float)
    record: Mapped[dict[str, object]] = mapped_column(JSONB)


class Order(TenantOwned, Base):
    """An order a bot meant to send, stored before it is sent, then updated with what the exchange says."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("uq_orders_client_id", "tenant_id", "client_order_id", unique=True),
        Index("ix_orders_tenant_bot", "tenant_id", "bot_id", "id"),
    )

    bot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    cycle_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cycles.id", ondelete="SET NULL"), default=None)
    decision_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("decisions.id", ondelete="SET NULL"), default=None
    )
    client_order_id: Mapped[str] = mapped_column(String(36))
    exchange: Mapped[str] = mapped_column(String(40))
    symbol: Mapped[str] = mapped_column(String(40))
    leg: Mapped[str] = mapped_column(String(16))  # entry | close
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(8))
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money, default=None)
    stop_loss: Mapped[Decimal | None] = mapped_column(Money, default=None)
    take_profit: Mapped[Decimal | None] = mapped_column(Money, default=None)
    leverage: Mapped[Decimal | None] = mapped_column(Numeric(6, 2), default=None)
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12))  # OrderState
    exchange_order_id: Mapped[str | None] = mapped_column(String(80), default=None)
    filled: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average_price: Mapped[Decimal | None] = mapped_column(Money, default=None)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    error: Mapped[str | None] = mapped_column(String(500), default=None)


class Fill(TenantOwned, Base):
    """An execution of (part of) an order."""

    __tablename__ = "fills"
    __table_args__ = (Index("ix_fills_tenant_bot", "tenant_id", "bot_id", "id"),)

    bot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)


class Position(TenantOwned, Base):
    """A bot's position from open to close, with its realised PnL; at most one open per bot and symbol."""

    __tablename__ = "positions"
    __table_args__ = (
        Index("ix_positions_tenant_bot", "tenant_id", "bot_id", "id"),
        Index(
            "uq_positions_open", "tenant_id", "bot_id", "symbol", unique=True, postgresql_where=text("status = 'open'")
        ),
    )

    bot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(8))  # open | closed
    amount: Mapped[Decimal] = mapped_column(Money)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    leverage: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    stop_loss: Mapped[Decimal | None] = mapped_column(Money, default=None)
    take_profit: Mapped[Decimal | None] = mapped_column(Money, default=None)
    mark_price: Mapped[Decimal | None] = mapped_column(Money, default=None)
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    exit_price: Mapped[Decimal | None] = mapped_column(Money, default=None)
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fees: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    close_reason: Mapped[str | None] = mapped_column(String(16), default=None)  # signal|stop_loss|take_profit|external
    opened_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    # The market's clock at the open (ms): the wall clock live, the recording's time in replay.
    opened_market_ms: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class CloseScope(enum.StrEnum):
    """What a close request closes."""

    POSITION = "position"  # one position
    BOT = "bot"  # every open position of one bot
    TENANT = "tenant"  # every open position of every bot of the tenant (panic)


class CloseStatus(enum.StrEnum):
    PENDING = "pending"  # handed to a worker, not done yet
    DONE = "done"  # every target has a result (closed, or why not)


class CloseRequest(TenantOwned, Base):
    """An ask to close now: its targets (positions with their bots) and, once done, each one's result. The
    caller's Idempotency-Key names it: the same key within a day is this request again (migration 0012)."""

    __tablename__ = "close_requests"
    __table_args__ = (
        Index("ix_close_requests_tenant", "tenant_id", "id"),
        Index("uq_close_requests_key", "tenant_id", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_close_requests_pending", "enqueued_at", postgresql_where=text("status = 'pending'")),
    )

    scope: Mapped[str] = mapped_column(String(8))  # CloseScope
    bot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bots.id", ondelete="SET NULL"), default=None)
    position_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    stop_bots: Mapped[bool] = mapped_column(Boolean)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))  # CloseStatus
    targets: Mapped[list[dict[str, str]]] = mapped_column(JSONB)  # [{"positionId", "botId"}]
    results: Mapped[list[dict[str, object]]] = mapped_column(JSONB)  # one per target, in the targets' order
    canceled_orders: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class Event(TenantOwned, Base):
    """The outbox of what happened (trade opened, bot paused, ...), written in the transaction that made it
    happen; push, webhooks and the live stream deliver from here."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_tenant", "tenant_id", "id"),)

    bot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bots.id", ondelete="SET NULL"), default=None)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)


metadata = Base.metadata
