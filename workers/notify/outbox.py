"""Hand committed events on: to the tenant's live stream at once, and to a Celery task for push and webhooks.

Called after the transaction that recorded the events has committed, never before (an event must not
be announced for work that was rolled back). Failing here never fails the caller's work: the events
are in the outbox table and a later sweep can deliver them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import msgspec
from redis.asyncio import Redis

from tenants.events import WEBHOOK_ONLY, EventMessage, stream_channel

log = logging.getLogger(__name__)
DELIVER_TASK = "quorum.deliver_event"
_encode = msgspec.json.Encoder().encode


SendTask = Callable[[str, list[str]], object]  # (task name, args): Celery's `app.send_task`


async def publish_events(
    redis: Redis, messages: Sequence[EventMessage], send_task: SendTask, *, webhooks: bool = True
) -> None:
    """Publish each event on its tenant's stream channel and enqueue its delivery task.

    `webhooks` False: the tenant had no active webhook endpoint when its work began, so its
    `WEBHOOK_ONLY` events have no delivery to make (had one been added since, the sweep delivers them)."""
    if not messages:
        return
    try:
        if len(messages) == 1:  # most cycles: no pipeline (redis-py builds a whole client object for each)
            await redis.publish(stream_channel(messages[0].tenant_id), _encode(messages[0]))
        else:
            async with redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(stream_channel(message.tenant_id), _encode(message))
                await pipe.execute()
    except Exception as exc:  # the stream is best effort; the outbox keeps the event
        log.warning("live stream publish failed", extra={"error": str(exc), "events": len(messages)})
    deliver = [m for m in messages if webhooks or m.type not in WEBHOOK_ONLY]
    if deliver:
        await asyncio.to_thread(_enqueue, deliver, send_task)


def _enqueue(messages: Sequence[EventMessage], send_task: SendTask) -> None:
    """Runs in a thread: publishing to the broker blocks."""
    for message in messages:
        try:
            send_task(DELIVER_TASK, [str(message.tenant_id), str(message.id)])
        except Exception as exc:
            log.warning("event delivery not enqueued", extra={"error": str(exc), "event_id": str(message.id)})
