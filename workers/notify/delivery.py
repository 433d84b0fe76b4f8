"""Delivering a committed event: push to the tenant's users' phones (per their preferences) and create one
webhook delivery per subscribed endpoint. The work of the `quorum.deliver_event` task.

Each event has a row in `event_deliveries` (a trigger adds it with the event) until it is delivered.
Delivering claims that row first, so the task enqueued after commit and the sweep that finds events
never enqueued cannot both deliver it; a claim whose worker died expires after `LOCK_SECONDS` and the
sweep tries again; delivered, the row is deleted. Webhook deliveries are unique per (endpoint, event),
so a second run creates none. (A worker dying between the push and the delete means one repeated push:
at least once, never lost.)
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from quorum.database import Database
from tenants.devices import PUSH_DEFAULTS
from tenants.events import EventMessage, EventType
from tenants.models import Bot, Event, User, UserRole
from tenants.notify_models import (
    Device,
    EventDelivery,
    EventDeliveryStatus,
    NotificationPreferences,
    WebhookDelivery,
    WebhookEndpoint,
)
from tenants.scope import TenantScope
from tenants.webhooks import new_delivery, subscribed
from workers.notify.push import PushMessage, PushOutcome, PushUnavailable, push_message

log = logging.getLogger(__name__)

LOCK_SECONDS = 300
MAX_ATTEMPTS = 10
# A notification about a trade an hour old is noise on a lock screen; webhooks still get every event.
PUSH_MAX_AGE = datetime.timedelta(hours=1)
# Sent only to the tenant's owners; every other pushable type goes to every user who wants it.
OWNERS_ONLY = frozenset({EventType.WEBHOOK_DISABLED})

_PENDING_EVENTS = text("SELECT tenant_id, event_id FROM pending_event_deliveries(:before, :limit)")
_DUE_WEBHOOKS = text("SELECT tenant_id, delivery_id FROM due_webhook_deliveries(:before, :limit)")
_DROP_EXPIRED_SECRETS = text("SELECT drop_expired_webhook_secrets()")


class PushGateway(Protocol):
    def send(self, tokens: Sequence[str], message: PushMessage) -> PushOutcome: ...


class DeliveryReport(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # delivered | skipped (held or done elsewhere) | missing
    pushed: int = 0
    dead_tokens: int = 0
    retry_devices: tuple[str, ...] = ()  # device ids whose push failed for a reason that may pass
    webhooks: tuple[str, ...] = ()  # webhook delivery ids created, to enqueue


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def deliver_event(database: Database, push: PushGateway | None, tenant_id: uuid.UUID,
                        event_id: uuid.UUID) -> DeliveryReport:
    """Claim the event, create its webhook deliveries, push it, and mark it delivered."""
    now = utcnow()
    async with TenantScope.of(tenant_id).session(database) as session:
        claimed = (await session.execute(
            update(EventDelivery)
            .where(
                EventDelivery.id == event_id,
                EventDelivery.attempts < MAX_ATTEMPTS,
                or_(EventDelivery.status == EventDeliveryStatus.PENDING,
                    (EventDelivery.status == EventDeliveryStatus.DELIVERING) & (EventDelivery.locked_until < now)),
            )
            .values(status=EventDeliveryStatus.DELIVERING, attempts=EventDelivery.attempts + 1,
                    locked_until=now + datetime.timedelta(seconds=LOCK_SECONDS), updated_at=now)
            .returning(EventDelivery.id)
        )).first()
        if claimed is None:
            return DeliveryReport(status="skipped")
        row = await session.scalar(select(Event).where(Event.id == event_id))
        if row is None:  # cannot happen under the trigger; say so rather than loop
            await _mark(session, event_id, EventDeliveryStatus.FAILED, "the event is missing")
            return DeliveryReport(status="missing")
        message = EventMessage(id=row.id, tenant_id=row.tenant_id, bot_id=row.bot_id, type=EventType(row.type),
                               created_at=row.created_at, payload=dict(row.payload))
        webhook_ids = await _create_webhook_deliveries(session, message)
        devices = await recipients(session, message.type)
        bot_name = await _bot_name(session, message) if devices else None

    try:
        outcome, retry_ids = await _push(database, push, tenant_id, message, bot_name, devices, now)
    except Exception as exc:
        # Give the claim back so a retry of the task can take it at once.
        async with TenantScope.of(tenant_id).session(database) as session:
            await _mark(session, event_id, EventDeliveryStatus.PENDING, f"{type(exc).__name__}")
        raise
    async with TenantScope.of(tenant_id).session(database) as session:
        await session.execute(delete(EventDelivery).where(EventDelivery.id == event_id))
    return DeliveryReport(status="delivered", pushed=outcome.sent, dead_tokens=len(outcome.dead_tokens),
                          retry_devices=retry_ids, webhooks=webhook_ids)


async def push_to_devices(database: Database, push: PushGateway, tenant_id: uuid.UUID, event_id: uuid.UUID,
                          device_ids: Sequence[uuid.UUID]) -> DeliveryReport:
    """Push an event again to the devices whose first push failed for a passing reason (a retry task)."""
    async with TenantScope.of(tenant_id).session(database) as session:
        row = await session.scalar(select(Event).where(Event.id == event_id))
        if row is None:
            return DeliveryReport(status="missing")
        message = EventMessage(id=row.id, tenant_id=row.tenant_id, bot_id=row.bot_id, type=EventType(row.type),
                               created_at=row.created_at, payload=dict(row.payload))
        wanted = {d.id for d in await recipients(session, message.type)}
        devices = list((await session.execute(
            select(Device.id, Device.token).where(Device.id.in_(list(device_ids)))
        )).all())
        devices = [d for d in devices if d.id in wanted]  # unregistered or opted out since: not any more
        bot_name = await _bot_name(session, message) if devices else None
    outcome, retry_ids = await _push(database, push, tenant_id, message, bot_name, devices, utcnow(),
                                     max_age=PUSH_MAX_AGE * 2)
    return DeliveryReport(status="delivered", pushed=outcome.sent, dead_tokens=len(outcome.dead_tokens),
                          retry_devices=retry_ids)


async def recipients(session, event_type: EventType) -> list:  # noqa: ANN001 - AsyncSession, rows (id, token)
    """Devices of the tenant's active users who want `event_type` pushed (their choice, else the default)."""
    if event_type not in PUSH_DEFAULTS:
        return []
    wanted = func.coalesce(
        NotificationPreferences.push[event_type.value].as_boolean(), PUSH_DEFAULTS[event_type]
    )
    query = (
        select(Device.id, Device.token)
        .join(User, User.id == Device.user_id)
        .outerjoin(NotificationPreferences, NotificationPreferences.user_id == Device.user_id)
        .where(User.is_active, wanted)
        .order_by(Device.id)
    )
    if event_type in OWNERS_ONLY:
        query = query.where(User.role == UserRole.OWNER.value)
    return list((await session.execute(query)).all())


async def _bot_name(session, message: EventMessage) -> str | None:  # noqa: ANN001
    if message.bot_id is None:
        return None
    return await session.scalar(select(Bot.name).where(Bot.id == message.bot_id))


async def _push(database: Database, push: PushGateway | None, tenant_id: uuid.UUID, message: EventMessage,
                bot_name: str | None, devices: list, now: datetime.datetime,  # noqa: ANN001
                max_age: datetime.timedelta = PUSH_MAX_AGE) -> tuple[PushOutcome, tuple[str, ...]]:
    shown = push_message(message, bot_name)
    if push is None or shown is None or not devices or now - message.created_at > max_age:
        return PushOutcome(), ()
    try:
        outcome = await asyncio.to_thread(push.send, [d.token for d in devices], shown)
    except PushUnavailable:  # logged by the sender, once per recheck
        return PushOutcome(), ()
    by_token = {d.token: d.id for d in devices}
    if outcome.dead_tokens:
        async with TenantScope.of(tenant_id).session(database) as session:
            await session.execute(delete(Device).where(Device.token.in_(list(outcome.dead_tokens))))
        log.info("removed devices FCM no longer knows", extra={"count": len(outcome.dead_tokens)})
    return outcome, tuple(str(by_token[t]) for t in outcome.retry_tokens if t in by_token)


async def _create_webhook_deliveries(session, message: EventMessage) -> tuple[str, ...]:  # noqa: ANN001
    """One delivery per active endpoint subscribed to the type; none twice for the same (endpoint, event)."""
    endpoints = (await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.is_active))).all()
    now = utcnow()
    values = [
        {"id": d.id, "tenant_id": d.tenant_id, "endpoint_id": d.endpoint_id, "event_id": d.event_id,
         "event_type": d.event_type, "payload": d.payload, "status": d.status, "attempts": 0,
         "created_at": now, "updated_at": now}
        for d in (new_delivery(e, message) for e in endpoints if subscribed(e, message.type.value))
    ]
    if not values:
        return ()
    created = await session.scalars(
        insert(WebhookDelivery).values(values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "endpoint_id", "event_id"])
        .returning(WebhookDelivery.id)
    )
    return tuple(str(i) for i in created.all())


async def _mark(session, event_id: uuid.UUID, status: EventDeliveryStatus, error: str | None) -> None:  # noqa: ANN001
    await session.execute(
        update(EventDelivery).where(EventDelivery.id == event_id)
        .values(status=status, locked_until=None, error=error, updated_at=utcnow())
    )


class SweepReport(msgspec.Struct, frozen=True):
    events: int
    webhooks: int
    secrets_dropped: int = 0  # previous webhook secrets whose rotation overlap ended


async def sweep(database: Database, enqueue_event: Callable[[str, str], None],
                enqueue_webhook: Callable[[str, str], None], *, grace_seconds: float = 60,
                limit: int = 500) -> SweepReport:
    """Enqueue what was committed but never enqueued (or whose worker died): events, then webhook deliveries.
    Also erase the previous webhook secrets whose rotation overlap is over."""
    before = utcnow() - datetime.timedelta(seconds=grace_seconds)
    async with TenantScope.of(None).session(database) as session:
        pending = (await session.execute(_PENDING_EVENTS, {"before": before, "limit": limit})).all()
        due = (await session.execute(_DUE_WEBHOOKS, {"before": before, "limit": limit})).all()
        dropped = await session.scalar(_DROP_EXPIRED_SECRETS) or 0
    for tenant_id, event_id in pending:
        await asyncio.to_thread(enqueue_event, str(tenant_id), str(event_id))
    for tenant_id, delivery_id in due:
        await asyncio.to_thread(enqueue_webhook, str(tenant_id), str(delivery_id))
    if pending or due:
        log.info("notification sweep", extra={"events": len(pending), "webhooks": len(due)})
    return SweepReport(events=len(pending), webhooks=len(due), secrets_dropped=dropped)
