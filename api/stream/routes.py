"""`GET /v1/stream`: the tenant's events as they happen, as server-sent events.

Each event is `id: <event id>`, `event: <type>`, `data: <EventMessage JSON>`. Events come through Redis
pub/sub (api/stream/hub.py), so whichever process recorded them, every API process can stream them.
A comment line every `KEEPALIVE_SECONDS` keeps proxies from closing an idle stream; every
`RECHECK_SECONDS`, however busy the stream, and before each keep-alive, the caller's session (or API
key) is checked again, so a logout, a deactivation or a revoked key ends the stream within seconds.
A client reconnecting with `Last-Event-ID` first gets what it missed from the events table (at most
`REPLAY_LIMIT` events), then the live stream. A user (all sessions together) or an API key holds at most
`STREAMS_PER_USER` / `STREAMS_PER_API_KEY` streams at once (api/stream/slots.py); one more is a 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from redis.exceptions import RedisError
from sqlalchemy import select

from api.auth import requires
from api.dependencies import CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, problems
from api.stream.hub import StreamHub
from api.stream.slots import StreamSlot
from quorum.database import Database
from tenants.errors import DomainError
from tenants.events import EventMessage, EventType
from tenants.models import Event
from tenants.principal import Principal, PrincipalKind, Scope
from tenants.scope import TenantScope

KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 3.0  # how late a stream may notice that its session or key has ended
_IDLE = object()  # no event arrived before the next keep-alive or check was due
REPLAY_LIMIT = 1000
RETRY_MS = 3000  # how long a client waits before reconnecting
_encode = msgspec.json.Encoder().encode

StillAllowed = Callable[[], Awaitable[bool]]


async def replay(database: Database, principal: Principal, after: uuid.UUID,
                 limit: int = REPLAY_LIMIT) -> list[EventMessage]:
    """The tenant's events recorded after `after` (ids are time-ordered UUIDv7), oldest first."""
    async with TenantScope.of(principal).session(database) as session:
        rows = (await session.scalars(
            select(Event).where(Event.tenant_id == principal.tenant_id, Event.id > after)
            .order_by(Event.id).limit(limit)
        )).all()
    return [EventMessage(id=r.id, tenant_id=r.tenant_id, bot_id=r.bot_id, type=EventType(r.type),
                         created_at=r.created_at, payload=dict(r.payload)) for r in rows]


async def event_stream(
    hub: StreamHub, tenant_id: uuid.UUID, still_allowed: StillAllowed, *,
    missed: Callable[[], Awaitable[list[EventMessage]]] | None = None, types: frozenset[str] = frozenset(),
    keepalive: float = KEEPALIVE_SECONDS, recheck: float = RECHECK_SECONDS,
) -> AsyncIterator[ServerSentEventMessage]:
    """The messages of one client's stream: missed events first (if asked), then live ones and keep-alives."""
    async with hub.listen(tenant_id) as queue:
        yield ServerSentEventMessage(data=None, comment="connected", retry=RETRY_MS)
        seen: set[uuid.UUID] = set()
        if missed is not None:
            for event in await missed():
                seen.add(event.id)
                if not types or event.type.value in types:
                    yield _message(event)
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        next_check = last_sent + recheck
        while True:
            # Wake for the next event, the next keep-alive or the next check, whichever comes first:
            # a busy stream is re-checked on the clock like an idle one.
            timeout = max(0.0, min(next_check, last_sent + keepalive) - loop.time())
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                event = _IDLE
            now = loop.time()
            idle_due = event is _IDLE and now >= last_sent + keepalive
            if now >= next_check or idle_due:
                if not await still_allowed():
                    return
                next_check = loop.time() + recheck
            if event is _IDLE:
                if idle_due:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    last_sent = loop.time()
                continue
            if event is None:  # fell behind, or Redis went away: the client reconnects with Last-Event-ID
                return
            if event.tenant_id != tenant_id or event.id in seen:
                continue
            if not types or event.type.value in types:
                yield _message(event)
                last_sent = loop.time()


def _message(event: EventMessage) -> ServerSentEventMessage:
    return ServerSentEventMessage(id=str(event.id), event=event.type.value, data=_encode(event).decode())


async def _holding(slot: StreamSlot, messages: AsyncIterator[ServerSentEventMessage]
                   ) -> AsyncIterator[ServerSentEventMessage]:
    """The stream's messages; its slot is given back however the stream ends."""
    try:
        async with contextlib.aclosing(messages):  # type: ignore[type-var]
            async for message in messages:
                yield message
    finally:
        await slot.release()


def _checker(request: Request[Any, Any, Any], principal: Principal, slot: StreamSlot) -> StillAllowed:
    state = request.app.state

    async def still_allowed() -> bool:
        """The session or key is still valid, and the stream still holds (and has renewed) its slot."""
        try:
            if principal.kind is PrincipalKind.API_KEY:
                await state.api_keys.authenticate(request.auth)
            else:
                async with TenantScope.of(principal).session(state.database):
                    pass
            return await slot.renew()
        except (DomainError, RedisError):
            return False

    return still_allowed


@get("/v1/stream", tags=["activity"], security=BEARER, guards=[requires(Scope.ACTIVITY_READ)],
     summary="The tenant's events as they happen (server-sent events)",
     description=(
         "A `text/event-stream` that stays open: each event is `id: <event id>`, `event: <type>`, "
         "`data: <JSON>`; a comment line every 15 s keeps it alive. Reconnect with `Last-Event-ID` to get "
         "what was missed first. The stream ends when the session or API key stops being valid. A user "
         "(all sessions together) or an API key may hold a few streams at once (5 by default); one more is "
         "a 429 with `Retry-After`."
     ),
     responses=problems(400, AUTHENTICATED, BACKEND), media_type="text/event-stream")
async def stream_events(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Parameter(
        header="Last-Event-ID", description="The id of the last event received: replay what came after it",
        max_length=64, required=False)] = None,
    types: Annotated[list[EventType] | None, Parameter(description="Only these event types")] = None,
) -> ServerSentEvent:
    state = request.app.state
    async with TenantScope.of(principal).session(state.database):  # an ended session: 401 now, not an empty stream
        pass
    slot = await state.stream_slots.take(principal)
    after = _uuid_or_none(last_event_id)
    missed = (lambda: replay(state.database, principal, after)) if after is not None else None
    # A response never started (the client left first) never releases its slot: it lapses instead.
    return ServerSentEvent(_holding(slot, event_stream(
        state.stream_hub, principal.tenant_id, _checker(request, principal, slot), missed=missed,
        types=frozenset(t.value for t in types or ()),
    )))


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None  # not one of our ids: start from now
