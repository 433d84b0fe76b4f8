"""Tenant-owned data. Every table except `tenants` carries `tenant_id`, and row-level security enforces it."""

from __future__ import annotations

import datetime
import enum
import uuid
from decimal import Decimal

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.mixins.uuid import UUID_UTILS_INSTALLED
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, Numeric, String, text
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


metadata = Base.metadata
