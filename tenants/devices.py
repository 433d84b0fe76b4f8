"""Push devices and notification preferences: each user's phones and which events they want pushed.

Devices belong to a user (a signed-in session registers its own phone); preferences are per user and
per event type. Types a user has not set take `PUSH_DEFAULTS`.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping

import msgspec
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants.errors import Forbidden, NotFound, Unprocessable
from tenants.events import EventType
from tenants.notify_models import Device, DevicePlatform, NotificationPreferences
from tenants.principal import Principal, PrincipalKind
from tenants.scope import TenantScope

# What a phone is told about, unless its user says otherwise. Decisions and orders come every cycle:
# they belong on the live stream, not on a lock screen.
PUSH_DEFAULTS: dict[EventType, bool] = {
    EventType.TRADE_OPENED: True,
    EventType.TRADE_CLOSED: True,
    EventType.STOP_LOSS_HIT: True,
    EventType.TAKE_PROFIT_HIT: True,
    EventType.BOT_PAUSED: True,
    EventType.BOT_SILENT: True,
    EventType.BOT_RECOVERED: True,
    EventType.TRADE_SKIPPED: True,
    EventType.CLOSE_FAILED: True,
    EventType.BUDGET_EXHAUSTED: True,
    EventType.DAILY_SUMMARY: True,
    EventType.WEBHOOK_DISABLED: True,
    EventType.BOT_STATUS: False,
}
PUSHABLE = frozenset(PUSH_DEFAULTS)
MAX_DEVICES_PER_USER = 20

_RELEASE_TOKEN = text("SELECT release_device_token(:token)")


class DeviceRegistration(msgspec.Struct, frozen=True, kw_only=True):
    platform: DevicePlatform
    token: str
    app_version: str = ""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class DeviceService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, principal: Principal, registration: DeviceRegistration) -> Device:
        """Register (or refresh) the caller's device. A token already known moves to the caller, in this
        tenant and out of any other: the phone is now the caller's."""
        _require_user(principal)
        now = utcnow()
        async with TenantScope.of(principal).session(self.db) as session:
            await session.execute(_RELEASE_TOKEN, {"token": registration.token})
            count = await session.scalar(
                select(func.count()).select_from(Device)
                .where(Device.tenant_id == principal.tenant_id, Device.user_id == principal.user_id,
                       Device.token != registration.token)
            )
            if (count or 0) >= MAX_DEVICES_PER_USER:
                raise Unprocessable(f"a user can register at most {MAX_DEVICES_PER_USER} devices; remove one first",
                                    errors=[{"field": "token", "message": "too many devices"}])
            statement = insert(Device).values(
                id=uuid7(), tenant_id=principal.tenant_id,
                user_id=principal.user_id, platform=registration.platform.value, token=registration.token,
                app_version=registration.app_version, last_seen_at=now, created_at=now, updated_at=now,
            )
            statement = statement.on_conflict_do_update(
                index_elements=[Device.tenant_id, Device.token],
                set_={"user_id": principal.user_id, "platform": registration.platform.value,
                      "app_version": registration.app_version, "last_seen_at": now, "updated_at": now},
            ).returning(Device)
            return (await session.scalars(statement)).one()

    async def list(self, principal: Principal) -> list[Device]:
        _require_user(principal)
        async with TenantScope.of(principal).session(self.db) as session:
            result = await session.scalars(
                select(Device).where(Device.tenant_id == principal.tenant_id, Device.user_id == principal.user_id)
                .order_by(Device.id.desc())
            )
            return list(result)

    async def unregister(self, principal: Principal, device_id: uuid.UUID) -> None:
        """Remove one of the caller's devices; another user's (or tenant's) id is 404."""
        _require_user(principal)
        async with TenantScope.of(principal).session(self.db) as session:
            removed = await session.execute(
                delete(Device).where(Device.tenant_id == principal.tenant_id, Device.user_id == principal.user_id,
                                     Device.id == device_id)
            )
            if removed.rowcount == 0:
                raise NotFound("no device with this id")

    async def preferences(self, principal: Principal) -> dict[EventType, bool]:
        _require_user(principal)
        async with TenantScope.of(principal).session(self.db) as session:
            stored = await session.scalar(
                select(NotificationPreferences.push).where(NotificationPreferences.tenant_id == principal.tenant_id,
                                                           NotificationPreferences.user_id == principal.user_id)
            )
        return effective_preferences(stored or {})

    async def set_preferences(self, principal: Principal, push: Mapping[EventType, bool]) -> dict[EventType, bool]:
        """Replace the caller's choices; types left out go back to their defaults."""
        _require_user(principal)
        unknown = sorted(str(t) for t in push if t not in PUSHABLE)
        if unknown:
            raise Unprocessable(f"these event types are never pushed: {', '.join(unknown)}",
                                errors=[{"field": "push", "message": f"not pushable: {', '.join(unknown)}"}])
        values = {t.value: bool(v) for t, v in push.items()}
        now = utcnow()
        async with TenantScope.of(principal).session(self.db) as session:
            statement = insert(NotificationPreferences).values(
                id=uuid7(), tenant_id=principal.tenant_id, user_id=principal.user_id, push=values,
                created_at=now, updated_at=now,
            ).on_conflict_do_update(
                index_elements=[NotificationPreferences.tenant_id, NotificationPreferences.user_id],
                set_={"push": values, "updated_at": now},
            )
            await session.execute(statement)
        return effective_preferences(values)


def effective_preferences(stored: Mapping[str, bool]) -> dict[EventType, bool]:
    """Every pushable type with the user's choice, or its default."""
    return {t: bool(stored.get(t.value, default)) for t, default in PUSH_DEFAULTS.items()}


def _require_user(principal: Principal) -> None:
    # Devices and preferences are a person's; an integrator's API key has neither.
    if principal.kind is not PrincipalKind.USER:
        raise Forbidden("only a signed-in user has devices and notification preferences")
