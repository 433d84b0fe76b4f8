"""What happened to a tenant's bots, as events: written to the `events` outbox in the transaction that
made it happen, then delivered by push, webhooks and the live stream (workers/notify, api/stream).

An event's payload is small JSON that names ids and figures, never secrets. `STREAM_CHANNEL` is the
Redis pub/sub channel of one tenant's live events; the message is the JSON of `EventMessage`.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from collections.abc import Mapping

import msgspec
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from tenants.models import Event


class EventType(enum.StrEnum):
    DECISION = "decision"  # a cycle decided (any action, WAIT included)
    ORDER = "order"  # an order was sent or changed state
    TRADE_OPENED = "trade.opened"
    TRADE_CLOSED = "trade.closed"  # closed by the bot's decision or outside it
    STOP_LOSS_HIT = "trade.stop_loss"
    TAKE_PROFIT_HIT = "trade.take_profit"
    BOT_STATUS = "bot.status"  # started, stopped
    BOT_PAUSED = "bot.paused"  # paused by the service, with the reason
    BOT_SILENT = "bot.silent"  # active, yet no cycle completed for three of its intervals (once per outage)
    BOT_RECOVERED = "bot.recovered"  # a silent bot completed a cycle again
    TRADE_SKIPPED = "trade.skipped"  # e.g. insufficient funds
    CLOSE_FAILED = "close.failed"  # a position asked to close now could not be (the exchange refused, no answer)
    BUDGET_EXHAUSTED = "budget.exhausted"  # the tenant's daily LLM token budget; the rules brain decides
    DAILY_SUMMARY = "summary.daily"
    TEST = "test"  # sent on request to check a webhook endpoint
    WEBHOOK_DISABLED = "webhook.disabled"  # an endpoint failed too often and was switched off; owners are told


# No phone is told about these (push has no text for them): only webhooks receive them, so a tenant
# without an active endpoint has nothing to deliver (migration 0007's trigger holds the same list).
WEBHOOK_ONLY = frozenset({EventType.DECISION, EventType.ORDER})


def stream_channel(tenant_id: uuid.UUID) -> str:
    return f"quorum:stream:{tenant_id}"


class EventMessage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An event as the stream, push and webhooks carry it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    bot_id: uuid.UUID | None
    type: EventType
    created_at: datetime.datetime
    payload: dict[str, object]


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    type: EventType,
    payload: Mapping[str, object],
    bot_id: uuid.UUID | None = None,
) -> EventMessage:
    """Add an event to the outbox in `session`'s transaction; deliver the returned message after commit."""
    (message,) = await record_many(session, [new_message(tenant_id, type, payload, bot_id)])
    return message


def new_message(
    tenant_id: uuid.UUID, type: EventType, payload: Mapping[str, object], bot_id: uuid.UUID | None = None
) -> EventMessage:
    return EventMessage(
        id=uuid7(), tenant_id=tenant_id, bot_id=bot_id, type=type, created_at=now(), payload=dict(payload)
    )


async def record_many(session: AsyncSession, messages: list[EventMessage]) -> list[EventMessage]:
    """Add several events to the outbox in one statement."""
    if messages:
        await session.execute(insert(Event), [row(m) for m in messages])
    return messages


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def row(message: EventMessage) -> dict[str, object]:
    """The `events` row of `message`, for inserting several in one statement."""
    return {
        "id": message.id, "tenant_id": message.tenant_id, "bot_id": message.bot_id, "type": message.type.value,
        "payload": message.payload, "created_at": message.created_at, "updated_at": message.created_at,
    }
