"""Wire types of push devices and notification preferences (camelCase, unknown fields rejected)."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema

from api.wire import Request, Response
from tenants.devices import PUSHABLE
from tenants.notify_models import DEVICE_TOKEN_MAX_LENGTH, DevicePlatform

# The event types a phone can be told about, as a closed set for the schema (and the OpenAPI document).
PushableEventType = enum.StrEnum("PushableEventType", {t.name: t.value for t in sorted(PUSHABLE)})

DeviceToken = Annotated[str, msgspec.Meta(
    min_length=1, max_length=DEVICE_TOKEN_MAX_LENGTH, pattern=r"^[A-Za-z0-9_:.\-]+$",
    description="The FCM registration token the app got from Firebase Messaging",
)]
AppVersion = Annotated[str, msgspec.Meta(max_length=32, pattern=r"^[A-Za-z0-9_.+\-]*$",
                                         description="The app's version, e.g. 1.4.2")]
PushChoices = Annotated[dict[PushableEventType, bool], msgspec.Meta(
    max_length=len(PUSHABLE),
    description="Event type -> pushed or not; types left out take their defaults",
    extra_json_schema={"extra": {"propertyNames": Schema(type=OpenAPIType.STRING,
                                                          enum=sorted(t.value for t in PUSHABLE))}},
)]


class DeviceRequest(Request, kw_only=True):
    platform: DevicePlatform
    token: DeviceToken
    app_version: AppVersion = ""


class DeviceView(Response, kw_only=True):
    id: uuid.UUID
    platform: DevicePlatform
    token_ending: Annotated[str, msgspec.Meta(description="The token's last 8 characters, to tell devices apart")]
    app_version: str
    last_seen_at: datetime.datetime
    created_at: datetime.datetime


class NotificationPreferencesRequest(Request, kw_only=True):
    push: PushChoices


class NotificationPreferencesView(Response, kw_only=True):
    push: Annotated[dict[str, bool], msgspec.Meta(description="Every pushable event type and whether it is pushed")]
