"""Tenant-owned data. Every table except `tenants` carries `tenant_id`, and row-level security enforces it."""

from __future__ import annotations

import datetime
import enum
import uuid

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.mixins.uuid import UUID_UTILS_INSTALLED
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, ForeignKey, Index, String, text
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


metadata = Base.metadata
