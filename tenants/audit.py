"""The append-only audit log: who did what, to what, from where, and when."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import AuditEvent
from tenants.principal import Principal, PrincipalKind


class AuditAction(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"
    PASSWORD_CHANGED = "password_changed"
    EXCHANGE_KEY_LINKED = "exchange_key_linked"
    EXCHANGE_KEY_REFUSED = "exchange_key_refused"
    EXCHANGE_KEY_DELETED = "exchange_key_deleted"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    BOT_CREATED = "bot_created"
    BOT_CHANGED = "bot_changed"
    BOT_DELETED = "bot_deleted"
    BOT_STARTED = "bot_started"
    BOT_STOPPED = "bot_stopped"
    CLOSE_REQUESTED = "close_requested"  # close now: a position, a bot's positions, or everything (panic)
    WEBHOOK_CREATED = "webhook_created"
    WEBHOOK_CHANGED = "webhook_changed"
    WEBHOOK_DELETED = "webhook_deleted"
    WEBHOOK_DISABLED = "webhook_disabled"
    # Written by admin_set_user_active (migration 0005) in the user's tenant, actor type `platform_admin`.
    USER_DEACTIVATED = "user_deactivated"
    USER_ACTIVATED = "user_activated"


def record(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    action: AuditAction,
    actor: Principal | None = None,
    actor_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | None = None,
    client_ip: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the caller's transaction: it is stored exactly when the change is."""
    if actor is not None:
        actor_type = "api_key" if actor.kind is PrincipalKind.API_KEY else "user"
        actor_id = actor.api_key_id if actor.kind is PrincipalKind.API_KEY else actor.user_id
    else:
        actor_type = "user" if actor_id else "anonymous"
    session.add(AuditEvent(
        tenant_id=tenant_id, actor_type=actor_type, actor_id=actor_id, action=action,
        target_type=target_type, target_id=target_id, details=details or {},
        client_ip=(client_ip or (actor.client_ip if actor is not None else ""))[:64],
    ))


async def page(session: AsyncSession, *, limit: int, before: uuid.UUID | None) -> list[AuditEvent]:
    """Newest first, keyset-paginated on the time-ordered (UUIDv7) id: stable while events are added."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return list(await session.scalars(query))
