"""The live stream: server-sent events of a tenant's events, through Redis pub/sub from any process.

The stream tests run against the real API server process (the events are published from this one, as
a worker would), read with a real HTTP client; the keep-alive and ending rules are tested on the
stream's generator with a short interval."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.stream.hub import StreamHub
from api.stream.routes import event_stream
from api.stream.slots import StreamSlots
from quorum.database import Database, create_app_engine
from quorum.settings import Settings
from tenants import events
from tenants.errors import DomainError, TooManyRequests
from tenants.events import EventMessage, EventType
from tenants.principal import Principal, PrincipalKind
from tenants.scope import TenantScope
from tests.conftest import PASSWORD, unique_email
from workers.notify.outbox import publish_events


class Sse:
    """Reads one server-sent-events response: comments and events, one block at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, within: float = 10.0) -> dict[str, str]:
        block: dict[str, str] = {}
        async with asyncio.timeout(within):
            async for line in self.lines:
                if not line:
                    if block:
                        return block
                    continue
                field, _, value = line.partition(":")
                block[field or "comment"] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def next_event(self, within: float = 10.0) -> dict[str, str]:
        while True:
            block = await self.next(within)
            if "id" in block:
                return block


async def _account(api_server: str) -> tuple[dict[str, str], uuid.UUID]:
    async with httpx.AsyncClient(base_url=api_server) as http:
        tokens = (await http.post("/v1/auth/register", json={"email": unique_email("stream"),
                                                            "password": PASSWORD})).json()
        headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
        tenant = (await http.get("/v1/me", headers=headers)).json()["tenant"]["id"]
    return headers, uuid.UUID(tenant)


@contextlib.asynccontextmanager
async def _stream(api_server: str, headers: dict[str, str], query: str = "") -> AsyncIterator[Sse]:
    async with httpx.AsyncClient(base_url=api_server, timeout=httpx.Timeout(30.0)) as http, \
            http.stream("GET", f"/v1/stream{query}", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        sse = Sse(response)
        assert (await sse.next())["comment"] == "connected"  # subscribed: what is published now arrives
        yield sse


def _message(tenant: uuid.UUID, type_: EventType = EventType.ORDER, **payload: object) -> EventMessage:
    return EventMessage(id=uuid.uuid4(), tenant_id=tenant, bot_id=None, type=type_, created_at=events.now(),
                        payload=payload)


def _no_tasks(name: str, args: list[str]) -> None:
    """Delivery tasks are not what these tests are about."""


async def test_each_tenant_streams_only_its_own_events(api_server: str, redis: Redis) -> None:
    (first_headers, first), (second_headers, second) = await _account(api_server), await _account(api_server)
    async with _stream(api_server, first_headers) as first_stream, _stream(api_server, second_headers) as second_stream:
        mine, theirs = _message(first, status="filled"), _message(second, EventType.BOT_STATUS, status="stopped")
        await publish_events(redis, [theirs, mine], _no_tasks)
        got = await first_stream.next_event()
        assert got["id"] == str(mine.id) and got["event"] == "order"
        assert '"status":"filled"' in got["data"] and f'"tenantId":"{first}"' in got["data"]
        other = await second_stream.next_event()
        assert other["id"] == str(theirs.id) and other["event"] == "bot.status"
        # Nothing of the other tenant's came to either: the next event each sees is its own again.
        follow_up = _message(first, EventType.DECISION, action="WAIT")
        await publish_events(redis, [_message(second), follow_up], _no_tasks)
        assert (await first_stream.next_event())["id"] == str(follow_up.id)


async def test_a_reconnecting_client_gets_what_it_missed_first(
    api_server: str, redis: Redis, database: Database
) -> None:
    headers, tenant = await _account(api_server)
    recorded = []
    for action in ("WAIT", "OPEN_LONG", "HOLD"):
        async with TenantScope.of(tenant).session(database) as session:
            recorded.append(await events.record(session, tenant, EventType.DECISION, {"action": action}))
    async with _stream(api_server, {**headers, "Last-Event-ID": str(recorded[0].id)}) as sse:
        replayed = [await sse.next_event(), await sse.next_event()]
        assert [e["id"] for e in replayed] == [str(recorded[1].id), str(recorded[2].id)]
        live = _message(tenant)
        await publish_events(redis, [recorded[2], live], _no_tasks)  # a replayed event published late: not twice
        assert (await sse.next_event())["id"] == str(live.id)


async def test_a_stream_can_be_narrowed_to_some_types(api_server: str, redis: Redis) -> None:
    headers, tenant = await _account(api_server)
    async with _stream(api_server, headers, "?types=trade.opened&types=bot.paused") as sse:
        wanted = _message(tenant, EventType.BOT_PAUSED, reason="key revoked")
        await publish_events(redis, [_message(tenant, EventType.DECISION), wanted], _no_tasks)
        assert (await sse.next_event())["id"] == str(wanted.id)


async def test_the_stream_needs_a_live_session(client: AsyncTestClient) -> None:
    assert (await client.get("/v1/stream")).status_code == 401


async def test_idle_streams_get_keep_alives_until_access_ends(redis: Redis) -> None:
    hub = StreamHub(redis)
    allowed = [True, True, False]

    async def still_allowed() -> bool:
        return allowed.pop(0)

    try:
        stream = event_stream(hub, uuid.uuid4(), still_allowed, keepalive=0.05)
        comments = [message.comment async for message in stream]
        assert comments == ["connected", "keep-alive", "keep-alive"]  # then access ended: the stream did too
    finally:
        await hub.close()


async def test_a_logged_out_session_ends_its_stream(client: AsyncTestClient, settings: Settings, redis: Redis) -> None:
    from tests.conftest import register

    account = await register(client)
    me = (await client.get("/v1/me", headers=account.headers)).json()
    principal = client.app.state.accounts.principal_from_access_token(account.tokens["accessToken"])
    assert isinstance(principal, Principal) and principal.kind is PrincipalKind.USER
    database = Database(create_app_engine(settings))
    hub = StreamHub(redis)

    async def still_allowed() -> bool:
        try:
            async with TenantScope.of(principal).session(database):
                return True
        except DomainError:
            return False

    try:
        stream = event_stream(hub, uuid.UUID(me["tenant"]["id"]), still_allowed, keepalive=0.1)
        connected, alive = await anext(stream), await anext(stream)
        assert (connected.comment, alive.comment) == ("connected", "keep-alive")
        # comment lines only: a `data:` line, even empty, makes a browser's EventSource fire an empty message
        assert b"data:" not in connected.encode() + alive.encode()
        assert alive.encode() == b": keep-alive\r\n\r\n"
        assert (await client.post("/v1/auth/logout", headers=account.headers)).status_code in (200, 204)
        assert [m async for m in stream] == []
    finally:
        await hub.close()
        await database.dispose()


async def test_a_busy_stream_is_rechecked_on_the_clock_and_ends_when_access_does(redis: Redis) -> None:
    hub = StreamHub(redis)
    tenant = uuid.uuid4()
    checks: list[float] = []

    async def still_allowed() -> bool:
        checks.append(time.monotonic())
        return len(checks) < 3

    async def keep_busy() -> None:  # an event every 20 ms: the stream is never idle
        while True:
            await publish_events(redis, [_message(tenant)], _no_tasks)
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(keep_busy())
    try:
        started = time.monotonic()
        stream = event_stream(hub, tenant, still_allowed, keepalive=60, recheck=0.2)
        received = [m async for m in stream]
        assert time.monotonic() - started < 5
        assert len(checks) == 3  # the third check said no, and the stream ended
        assert sum(1 for m in received if m.event) > 5  # events flowed in between
        assert not any(m.comment == "keep-alive" for m in received)
    finally:
        producer.cancel()
        await hub.close()


async def test_a_client_that_falls_behind_is_cut_off_to_reconnect(redis: Redis) -> None:
    hub = StreamHub(redis, queue_size=2)
    tenant = uuid.uuid4()
    try:
        async with hub.listen(tenant) as queue:
            await publish_events(redis, [_message(tenant) for _ in range(5)], _no_tasks)
            received = [await asyncio.wait_for(queue.get(), 5) for _ in range(2)]
            assert received[-1] is None  # the end: reconnect with Last-Event-ID
    finally:
        await hub.close()


async def _refused_stream(api_server: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api_server, timeout=httpx.Timeout(10.0)) as http:
        return await http.get("/v1/stream", headers=headers)


async def _api_key(api_server: str, headers: dict[str, str]) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=api_server) as http:
        created = await http.post("/v1/api-keys", headers=headers,
                                  json={"name": "dashboard", "scopes": ["activity:read"]})
        assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def _opens_again(api_server: str, headers: dict[str, str], within: float = 10.0) -> None:
    """A stream opens once a slot is free (the server notices the closed connection within moments)."""
    deadline = time.monotonic() + within
    while True:
        try:
            async with _stream(api_server, headers):
                return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_a_user_holds_at_most_five_streams_and_closing_them_frees_the_slots(
    api_server: str, settings: Settings
) -> None:
    email = unique_email("streams")
    async with httpx.AsyncClient(base_url=api_server) as http:
        first = (await http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})).json()
        second = (await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})).json()
    headers = {"Authorization": f"Bearer {first['accessToken']}"}
    cap = settings.streams_per_user
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(cap):
            await streams.enter_async_context(_stream(api_server, headers))
        # Another session of the same user is refused too: the cap is per user, not per token.
        refused = await _refused_stream(api_server, {"Authorization": f"Bearer {second['accessToken']}"})
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        assert f"{cap} live streams" in refused.json()["detail"]
        other_user, _ = await _account(api_server)
        async with _stream(api_server, other_user):  # another user's streams are counted apart
            pass
    # Closed: each slot is given back as the server sees its connection go, well before any would lapse.
    await _opens_again(api_server, headers)


async def test_closing_one_of_a_full_set_of_streams_lets_exactly_one_more_open(
    api_server: str, settings: Settings
) -> None:
    headers, _ = await _account(api_server)
    cap = settings.streams_per_user
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(cap - 1):
            await streams.enter_async_context(_stream(api_server, headers))
        async with _stream(api_server, headers):
            assert (await _refused_stream(api_server, headers)).status_code == 429
        await _opens_again(api_server, headers)  # the one closed slot, taken again
        async with _stream(api_server, headers):
            assert (await _refused_stream(api_server, headers)).status_code == 429


async def test_an_api_key_holds_at_most_five_streams_apart_from_its_user(api_server: str, settings: Settings) -> None:
    headers, _ = await _account(api_server)
    key = await _api_key(api_server, headers)
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(settings.streams_per_api_key):
            await streams.enter_async_context(_stream(api_server, key))
        refused = await _refused_stream(api_server, key)
        assert refused.status_code == 429 and "this API key" in refused.json()["detail"]
        async with _stream(api_server, headers):  # the user's own streams are counted apart from the key's
            pass


async def test_slots_of_a_process_that_died_lapse_instead_of_leaking(redis: Redis) -> None:
    slots = StreamSlots(redis, per_user=2, per_api_key=2, ttl=1, prefix=f"test:streams:{uuid.uuid4().hex}")
    user = Principal(kind=PrincipalKind.USER, tenant_id=uuid.uuid4(), user_id=uuid.uuid4(), role="owner",
                     scopes=frozenset())
    held = [await slots.take(user), await slots.take(user)]  # never released: their process is gone
    try:
        await slots.take(user)
        raise AssertionError("a third stream got a slot")
    except TooManyRequests as refused:
        assert refused.retry_after == 1
    await asyncio.sleep(1.2)
    assert not await held[0].renew()  # lapsed: the stream that held it must end
    fresh = await slots.take(user)
    assert await fresh.renew()
    await fresh.release()
