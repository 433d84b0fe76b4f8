"""Tables of notifications and operations: push devices and preferences, webhook endpoints and their
deliveries, the delivery state of each event, and the platform's operators (migration 0005); the
daily summaries recorded and webhook secrets kept through a rotation's overlap (migration 0006).

Kept apart from `tenants.models` and sharing its `Base`, so the same metadata describes every table;
`tenants.migrations.env` and tests/test_migrations.py import this module so the comparison sees them.
"""

from __future__ import annotations

import datetime
import enum
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.models import Base, TenantOwned

# An FCM registration token is about 160 characters today; the limit leaves room and fits a btree.
DEVICE_TOKEN_MAX_LENGTH = 1024
WEBHOOK_URL_MAX_LENGTH = 2048


class DevicePlatform(enum.StrEnum):
    IOS = "ios"
    ANDROID = "android"
    WEB = "web"


class Device(TenantOwned, Base):
    """A phone (or browser) of a user that receives push notifications through FCM."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("uq_devices_token", "tenant_id", "token", unique=True),
        Index("ix_devices_tenant_user", "tenant_id", "user_id"),
        # The one lookup across tenants: a token registered here leaves every other tenant (migration 0005).
        Index("ix_devices_token_any_tenant", "token"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(8))
    token: Mapped[str] = mapped_column(String(DEVICE_TOKEN_MAX_LENGTH))
    app_version: Mapped[str] = mapped_column(String(32), default="")
    last_seen_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class NotificationPreferences(TenantOwned, Base):
    """Which event types one user wants pushed; a type not named here takes its default."""

    __tablename__ = "notification_preferences"
    __table_args__ = (Index("uq_notification_preferences_user", "tenant_id", "user_id", unique=True),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    push: Mapped[dict[str, bool]] = mapped_column(JSONB, default=dict)


class WebhookEndpoint(TenantOwned, Base):
    """An integrator's HTTPS endpoint. The signing secret is stored only encrypted under the tenant vault;
    after a rotation the previous one is kept (encrypted too) until `previous_secret_expires_at`."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_tenant", "tenant_id", "id"),
        # The sweep's view: endpoints holding a previous secret (few, and only for a day or so).
        Index("ix_webhook_endpoints_previous_secret", "tenant_id", "previous_secret_expires_at",
              postgresql_where=text("previous_secret_expires_at IS NOT NULL")),
    )

    url: Mapped[str] = mapped_column(String(WEBHOOK_URL_MAX_LENGTH))
    description: Mapped[str] = mapped_column(String(200), default="")
    event_types: Mapped[list[str]] = mapped_column(JSONB, default=list)  # empty: every type
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    last_failure_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    previous_secret_expires_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None)


class WebhookDeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its first attempt
    SENDING = "sending"  # a worker holds it until `locked_until`
    RETRYING = "retrying"  # failed; the next attempt is due at `next_attempt_at`
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # every attempt failed, or the endpoint was disabled


class WebhookDelivery(TenantOwned, Base):
    """One event sent to one endpoint: its body, status, attempts and the last answer."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("uq_webhook_deliveries_event", "tenant_id", "endpoint_id", "event_id", unique=True),
        Index("ix_webhook_deliveries_endpoint", "tenant_id", "endpoint_id", "id"),
        # The sweep's view: deliveries not finished (few at any time).
        Index("ix_webhook_deliveries_unfinished", "tenant_id", "next_attempt_at",
              postgresql_where=text("status IN ('pending', 'sending', 'retrying')")),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)  # the EventMessage sent as the body
    status: Mapped[str] = mapped_column(String(12), default=WebhookDeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    locked_until: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(300), default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    delivered_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class EventDeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # committed, not yet handed to push and webhooks
    DELIVERING = "delivering"  # a worker holds it until `locked_until`
    FAILED = "failed"  # gave up after `attempts`


class EventDelivery(TenantOwned, Base):
    """An event not yet handed to push and webhooks; its id is the event's id. A trigger adds the row with
    the event, so one committed but never enqueued is found by the sweep; delivering it deletes the row,
    so the table holds only what is still to do."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_undelivered", "tenant_id", "created_at",
              postgresql_where=text("status IN ('pending', 'delivering')")),
    )

    status: Mapped[str] = mapped_column(String(12), default=EventDeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    error: Mapped[str | None] = mapped_column(String(300), default=None)


class DailySummary(TenantOwned, Base):
    """A tenant's summary of one UTC day, recorded as the `summary.daily` event `event_id`. Unique per
    (tenant, day): a second run, a second beat or a retry after a crash finds the row and records nothing."""

    __tablename__ = "daily_summaries"
    __table_args__ = (Index("uq_daily_summaries_day", "tenant_id", "day", unique=True),)

    day: Mapped[datetime.date] = mapped_column(Date)
    event_id: Mapped[uuid.UUID]
    bots: Mapped[int] = mapped_column(Integer)  # how many bots the summary covers


class PlatformAdmin(Base):
    """A user who operates the platform (not a tenant role). Granted only by `quorum admin grant EMAIL`;
    the application role cannot read or write this table, only ask `is_platform_admin`."""

    __tablename__ = "platform_admins"
    __table_args__ = (Index("uq_platform_admins_user", "user_id", unique=True),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    granted_by: Mapped[str] = mapped_column(String(120), default="")
