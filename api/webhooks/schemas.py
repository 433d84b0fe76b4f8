"""Wire types of webhook endpoints and their deliveries (camelCase, unknown fields rejected)."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated

import msgspec

from api.wire import NextCursor, Request, Response, text
from tenants.notify_models import WEBHOOK_URL_MAX_LENGTH, WebhookDeliveryStatus
from tenants.webhooks import SUBSCRIBABLE

SubscribableEventType = enum.StrEnum("SubscribableEventType", {t.name: t.value for t in sorted(SUBSCRIBABLE)})

WebhookUrl = Annotated[str, msgspec.Meta(
    min_length=8, max_length=WEBHOOK_URL_MAX_LENGTH, pattern=r"^https?://[^\s\u0000]+$",
    description="Where events are POSTed: https:// and a public address (private ones only where allowed)",
)]
Description = text(0, 200, description="For you: what this endpoint is")
EventTypes = Annotated[list[SubscribableEventType], msgspec.Meta(
    max_length=len(SUBSCRIBABLE), description="Event types to send; empty or left out: every type",
    extra_json_schema={"extra": {"uniqueItems": True}},
)]


class WebhookRequest(Request, kw_only=True):
    url: WebhookUrl
    description: Description = ""
    event_types: EventTypes = msgspec.field(default_factory=list)


class WebhookPatchRequest(Request, kw_only=True):
    """Only the fields present change; `active: true` re-enables a disabled endpoint."""

    url: WebhookUrl | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class RotateSecretRequest(Request, kw_only=True):
    overlap_hours: Annotated[int, msgspec.Meta(
        ge=0, le=168,
        description="How long the replaced secret keeps signing too (deliveries carry both signatures); "
                    "0 stops it at once",
    )] = 24


class WebhookView(Response, kw_only=True):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    active: bool
    disabled_reason: Annotated[str | None, msgspec.Meta(description="Why the service disabled it")]
    consecutive_failures: int
    last_success_at: datetime.datetime | None
    last_failure_at: datetime.datetime | None
    previous_secret_expires_at: Annotated[datetime.datetime | None, msgspec.Meta(
        description="After a rotation: until then deliveries are signed with the previous secret too")]
    created_at: datetime.datetime
    updated_at: datetime.datetime


class CreatedWebhook(WebhookView, kw_only=True):
    secret: Annotated[str, msgspec.Meta(description="The signing secret: shown this once, store it now")]


class WebhookDeliveryView(Response, kw_only=True):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: WebhookDeliveryStatus
    attempts: int
    response_status: Annotated[int | None, msgspec.Meta(description="The endpoint's last HTTP status")]
    error: str | None
    duration_ms: float | None
    next_attempt_at: datetime.datetime | None
    delivered_at: datetime.datetime | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class WebhookDeliveryPage(Response, kw_only=True):
    items: list[WebhookDeliveryView]
    next_cursor: NextCursor
