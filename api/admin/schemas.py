"""Wire types of the platform operators' API (camelCase)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

from api.wire import NextCursor, Response


class AdminTenantView(Response, kw_only=True):
    id: uuid.UUID
    name: str
    active: bool
    created_at: datetime.datetime
    users: int
    bots: int
    active_bots: int


class AdminTenantPage(Response, kw_only=True):
    items: list[AdminTenantView]
    next_cursor: NextCursor


class AdminUserView(Response, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    role: str
    active: bool
    platform_admin: bool
    created_at: datetime.datetime
    last_login_at: datetime.datetime | None


class AdminUserPage(Response, kw_only=True):
    items: list[AdminUserView]
    next_cursor: NextCursor


class QueueView(Response, kw_only=True):
    name: str
    waiting: Annotated[int, msgspec.Meta(description="Tasks in the queue, not yet taken by a worker")]


class BreakerView(Response, kw_only=True):
    name: Annotated[str, msgspec.Meta(description="The model endpoint the breaker guards")]
    state: Annotated[str, msgspec.Meta(description="closed, open or half_open")]
    recent_failures: int
    open_until: datetime.datetime | None


class SystemStatusView(Response, kw_only=True):
    queues: list[QueueView]
    unacked: Annotated[int, msgspec.Meta(description="Tasks taken by workers and not yet finished")]
    workers: Annotated[list[str], msgspec.Meta(description="Workers that answered a ping just now")]
    last_dispatch_at: datetime.datetime | None
    dispatch_age_seconds: Annotated[float | None, msgspec.Meta(description="Seconds since the dispatcher ran")]
    llm_breakers: list[BreakerView]
