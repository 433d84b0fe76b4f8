"""One Redis pub/sub connection per API process, shared by every live-stream client of that process.

A tenant's channel (`tenants.events.stream_channel`) is subscribed while at least one of its clients
is connected here, and each message is copied to those clients' queues. A client too slow to keep
up, or a lost Redis connection, ends that client's stream (its queue receives `None`): it reconnects
with `Last-Event-ID` and the events table fills the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from tenants.events import EventMessage, stream_channel

log = logging.getLogger(__name__)
QUEUE_SIZE = 512
_decode = msgspec.json.Decoder(EventMessage).decode

Listener = asyncio.Queue[EventMessage | None]


class StreamHub:
    def __init__(self, redis: Redis, queue_size: int = QUEUE_SIZE) -> None:
        self.redis = redis
        self.queue_size = queue_size
        self._listeners: dict[str, set[Listener]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def listen(self, tenant_id: uuid.UUID) -> AsyncIterator[Listener]:
        """A queue of the tenant's events from now on; `None` in it means the stream must end."""
        channel = stream_channel(tenant_id)
        queue: Listener = asyncio.Queue(self.queue_size)
        async with self._lock:
            first = channel not in self._listeners
            self._listeners.setdefault(channel, set()).add(queue)
            try:
                if first:
                    await self._subscribe(channel)
            except Exception:
                self._drop(channel, queue)
                raise
        try:
            yield queue
        finally:
            async with self._lock:
                self._drop(channel, queue)  # already gone if the hub ended this stream
                if channel not in self._listeners and self._pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.unsubscribe(channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        self._reader = self._pubsub = None

    def _drop(self, channel: str, queue: Listener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is not None:
            listeners.discard(queue)
            if not listeners:
                del self._listeners[channel]

    async def _subscribe(self, channel: str) -> None:
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(channel)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(self._pubsub), name="stream-hub")

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                log.warning("live stream lost Redis; ending its streams", extra={"error": type(exc).__name__})
                await self._reset(pubsub)
                return
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            try:
                event = _decode(message["data"])
            except msgspec.DecodeError:
                log.warning("live stream: a message that is not an EventMessage", extra={"channel": channel})
                continue
            for queue in list(self._listeners.get(channel, ())):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self._end(channel, queue)

    def _end(self, channel: str, queue: Listener) -> None:
        """Tell one listener its stream is over (it fell behind); it stops listening."""
        self._drop(channel, queue)
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()  # room for the sentinel
        queue.put_nowait(None)

    async def _reset(self, pubsub: PubSub) -> None:
        async with self._lock:
            for channel, queues in list(self._listeners.items()):
                for queue in list(queues):
                    self._end(channel, queue)
            self._listeners.clear()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
            if self._pubsub is pubsub:
                self._pubsub = None
            self._reader = None
