"""The tenant's audit log, for its owner."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.params import Parameter

from api.auth import requires
from api.dependencies import Accounts, CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, problems
from api.wire import Cursor, Response
from tenants.principal import Scope


class AuditEventView(Response):
    id: uuid.UUID
    at: datetime.datetime
    action: str
    actor_type: str
    actor_id: uuid.UUID | None
    target_type: str | None
    target_id: uuid.UUID | None
    client_ip: str
    details: dict[str, Any]


class AuditPage(Response):
    items: list[AuditEventView]
    next_cursor: uuid.UUID | None = msgspec.field(default=None)


@get("/v1/audit", tags=["audit"], security=BEARER, guards=[requires(Scope.AUDIT_READ)],
     responses=problems(AUTHENTICATED, BACKEND, 400), summary="The audit log, newest first (owner only)")
async def list_audit_events(
    principal: CurrentPrincipal,
    accounts: Accounts,
    limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> AuditPage:
    events = await accounts.audit_page(principal, limit=limit, before=cursor)
    items = [
        AuditEventView(id=e.id, at=e.created_at, action=e.action, actor_type=e.actor_type, actor_id=e.actor_id,
                       target_type=e.target_type, target_id=e.target_id, client_ip=e.client_ip, details=e.details)
        for e in events
    ]
    return AuditPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)
