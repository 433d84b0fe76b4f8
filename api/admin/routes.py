"""Platform operators (`quorum admin grant EMAIL`) at /v1/admin: tenants, users, deactivation, system status.

Not a tenant role: a tenant owner is refused here like anyone else, and an API key always is.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from api.admin.schemas import (
    AdminTenantPage,
    AdminTenantView,
    AdminUserPage,
    AdminUserView,
    BreakerView,
    QueueView,
    SystemStatusView,
)
from api.dependencies import Admin, CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, problems
from api.wire import Cursor
from tenants.admin import AdminTenant, AdminUser
from tenants.errors import Forbidden, Unauthenticated
from tenants.principal import Principal

PAGE_SIZE_MAX = 200
Limit = Annotated[int, Parameter(ge=1, le=PAGE_SIZE_MAX, description="Page size")]


async def requires_platform_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard: the caller is a user with a live session who is a platform operator."""
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthenticated("send an access token: `Authorization: Bearer <token>`")
    if not await connection.app.state.admin.is_admin(principal):
        raise Forbidden("platform operators only")


requires_platform_admin.scopes = frozenset()  # type: ignore[attr-defined]  # no API-key scope reaches these


def _tenant(t: AdminTenant) -> AdminTenantView:
    return AdminTenantView(id=t.id, name=t.name, active=t.is_active, created_at=t.created_at, users=t.users,
                           bots=t.bots, active_bots=t.active_bots)


def _user(u: AdminUser) -> AdminUserView:
    return AdminUserView(id=u.id, tenant_id=u.tenant_id, email=u.email, role=u.role, active=u.is_active,
                         platform_admin=u.platform_admin, created_at=u.created_at, last_login_at=u.last_login_at)


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    security = BEARER
    guards = [requires_platform_admin]

    @get("/tenants", summary="Every tenant, newest first", responses=problems(400, AUTHENTICATED, BACKEND))
    async def list_tenants(self, principal: CurrentPrincipal, admin: Admin, limit: Limit = 50,
                           cursor: Cursor = None) -> AdminTenantPage:
        page = await admin.tenants(principal, limit, cursor)
        return AdminTenantPage(items=[_tenant(t) for t in page.items], next_cursor=page.next_cursor)

    @get("/users", summary="Every user (or one tenant's), newest first", responses=problems(400, AUTHENTICATED,
                                                                                              BACKEND))
    async def list_users(
        self, principal: CurrentPrincipal, admin: Admin, limit: Limit = 50, cursor: Cursor = None,
        tenant_id: Annotated[uuid.UUID | None, Parameter(query="tenantId", description="Only this tenant's")] = None,
    ) -> AdminUserPage:
        page = await admin.users(principal, tenant_id, limit, cursor)
        return AdminUserPage(items=[_user(u) for u in page.items], next_cursor=page.next_cursor)

    @post("/users/{user_id:uuid}/deactivate", status_code=HTTP_200_OK,
          summary="Deactivate a user: their sessions, refresh tokens and API keys stop working at once",
          responses=problems(404, 422, AUTHENTICATED, BACKEND))
    async def deactivate_user(self, user_id: uuid.UUID, principal: CurrentPrincipal, admin: Admin) -> AdminUserView:
        return _user(await admin.set_user_active(principal, user_id, False))

    @post("/users/{user_id:uuid}/activate", status_code=HTTP_200_OK,
          summary="Let a deactivated user log in again (their old sessions stay ended)",
          responses=problems(404, AUTHENTICATED, BACKEND))
    async def activate_user(self, user_id: uuid.UUID, principal: CurrentPrincipal, admin: Admin) -> AdminUserView:
        return _user(await admin.set_user_active(principal, user_id, True))

    @get("/status", summary="Queue depths, live workers, the dispatcher's last tick, the LLM circuit breakers",
         responses=problems(AUTHENTICATED, BACKEND))
    async def system_status(self, admin: Admin) -> SystemStatusView:
        s = await admin.status()
        return SystemStatusView(
            queues=[QueueView(name=q.name, waiting=q.waiting) for q in s.queues], unacked=s.unacked,
            workers=s.workers, last_dispatch_at=s.last_dispatch_at, dispatch_age_seconds=s.dispatch_age_seconds,
            llm_breakers=[BreakerView(name=b.name, state=b.state, recent_failures=b.recent_failures,
                                      open_until=b.open_until) for b in s.llm_breakers],
        )
