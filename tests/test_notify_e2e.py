"""End to end: one real paper trading cycle of tenant A tells A, and only A, what it did.

The cycle runs on `CycleEnv` (what a worker process runs cycles with) against real PostgreSQL and Redis
and the recorded ETH/BTC candles; the GPT brain, through the real openai client and the fake OpenAI
server, proposes the long, and the risk guard sizes it. After its commit the cycle publishes its events:
to Redis, where the real API server process streams them, and to Celery, where the session's real worker
process runs `quorum.deliver_event` (push through the real firebase-admin client to the fake FCM, the
OAuth token exchange included) and `quorum.deliver_webhook` (signed POSTs to a local receiver). Tenant
B, connected at the same time with its own phone, webhook and stream, gets nothing of A's.

Everything is awaited by polling with generous deadlines; nothing asserts on how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery
from redis.asyncio import Redis

from quorum.database import Database, create_app_engine
from quorum.settings import Settings
from tenants import events
from tenants.events import EventType
from tenants.scope import TenantScope
from tenants.vault import LocalMasterKeys, Vault
from tests.conftest import PASSWORD, REPO_ROOT, unique_email
from tests.fakes.fcm import FakeFcm
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.fakes.webhook_receiver import Received, WebhookReceiver
from workers.brain.breaker import RedisCircuitBreaker
from workers.brain.budget import RedisTokenBudget
from workers.brain.gpt import GptBrain, GptBrainConfig
from workers.brain.service import decide
from workers.cycle import CycleEnv
from workers.exchanges.factory import open_trading_exchange
from workers.market.cache import SharedOhlcvCache
from workers.market.feed import REPLAY, MarketFeed, replay_clock
from workers.market.replay import ReplaySource
from workers.notify.outbox import publish_events

SYMBOL = "ETH/BTC"
DEADLINE = 60.0  # seconds to wait for work another process does; generous for a loaded machine


def _readme_verify() -> Callable[..., bool]:
    """The receiver code of README's "Verifying a webhook", exactly as written there."""
    section = (REPO_ROOT / "README.md").read_text().split("### Verifying a webhook", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]  # type: ignore[return-value]


class Tenant:
    """A registered owner as the mobile app sees it, against the real API server."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str], tenant_id: uuid.UUID) -> None:
        self.http, self.headers, self.id = http, headers, tenant_id

    @classmethod
    async def register(cls, http: httpx.AsyncClient) -> Tenant:
        tokens = (await http.post("/v1/auth/register", json={"email": unique_email("e2e"), "password": PASSWORD}))
        assert tokens.status_code == 201, tokens.text
        headers = {"Authorization": f"Bearer {tokens.json()['accessToken']}"}
        me = (await http.get("/v1/me", headers=headers)).json()
        return cls(http, headers, uuid.UUID(me["tenant"]["id"]))

    async def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return await self.http.request(method, path, headers=self.headers, **kwargs)  # type: ignore[arg-type]

    async def phone(self, token: str) -> None:
        response = await self.call("POST", "/v1/devices", json={"platform": "android", "token": token})
        assert response.status_code == 200, response.text

    async def device_endings(self) -> set[str]:
        """What the app shows of each registered device: its token's last 8 characters."""
        return {d["tokenEnding"] for d in (await self.call("GET", "/v1/devices")).json()}


class Sse:
    """Reads a server-sent-events response block by block."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next_event(self, within: float = DEADLINE) -> dict[str, str]:
        block: dict[str, str] = {}
        async with asyncio.timeout(within):
            async for line in self.lines:
                if not line:
                    if "id" in block:
                        return block
                    block = {}
                    continue
                field, _, value = line.partition(":")
                block[field or "comment"] = value.removeprefix(" ")
        raise AssertionError("the stream ended")


@contextlib.asynccontextmanager
async def stream(api_server: str, tenant: Tenant) -> AsyncIterator[Sse]:
    async with httpx.AsyncClient(base_url=api_server, timeout=httpx.Timeout(DEADLINE)) as http, \
            http.stream("GET", "/v1/stream", headers=tenant.headers) as response:
        assert response.status_code == 200
        sse = Sse(response)
        assert await anext(sse.lines) == ": connected"  # subscribed: what is published from now on arrives
        yield sse


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    with WebhookReceiver() as first, WebhookReceiver() as second:
        yield first, second


async def poll(check: Callable[[], object], what: str, within: float = DEADLINE) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"still waiting for {what} after {within:g} s")


def last_price() -> float:
    """The close the cycle will see: the replay clock an hour into the recording (as tests/test_cycle.py)."""
    source = ReplaySource()
    now_ms = replay_clock(source, 1.0).start_ms + 3_600_000
    return float(source.read(SYMBOL, "5m", until_ms=now_ms - 5_000).close[-1])


async def test_a_paper_trade_reaches_its_tenants_phone_webhook_and_stream_and_nobody_elses(
    api_server: str, settings: Settings, fake_fcm: FakeFcm, key_check_worker: Path,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> None:
    hook_a, hook_b = receivers
    phone_a, gone_a, phone_b = (f"fcm-{who}-{uuid.uuid4().hex}" for who in ("a", "gone", "b"))
    fake_fcm.unregistered.add(gone_a)  # uninstalled: FCM says UNREGISTERED and the device is pruned
    database = Database(create_app_engine(settings))
    redis = Redis.from_url(settings.redis_url)
    broker = Celery("e2e-client", broker=settings.redis_url)
    async with httpx.AsyncClient(base_url=api_server, timeout=30.0) as http:
        a, b = await Tenant.register(http), await Tenant.register(http)
        await a.phone(phone_a)
        await a.phone(gone_a)
        await b.phone(phone_b)
        hooks = {}
        for tenant, receiver in ((a, hook_a), (b, hook_b)):
            created = await tenant.call("POST", "/v1/webhooks", json={"url": receiver.url(), "eventTypes": []})
            assert created.status_code == 201, created.text
            hooks[tenant.id] = (created.json()["id"], created.json()["secret"])
        bot = await a.call("POST", "/v1/bots", json={
            "name": "ETH bot", "symbols": [SYMBOL], "timeframes": ["5m", "1h"], "mode": "paper", "brain": "gpt",
            "cycleIntervalSeconds": 60, "leverage": 2, "riskPerTradePct": 1, "maxOpenPositions": 2,
        })
        assert bot.status_code == 201, bot.text
        bot_id = uuid.UUID(bot.json()["id"])
        assert (await a.call("POST", f"/v1/bots/{bot_id}/start")).status_code == 200

        price = last_price()
        with FakeOpenAI() as openai:
            openai.default = completion({
                "action": "OPEN_LONG", "symbol": SYMBOL, "entry": None, "stop_loss": price * 0.97,
                "take_profit": price * 1.03, "leverage": 2, "confidence": 0.8, "reasons": ["e2e"],
            })
            gpt = GptBrain(GptBrainConfig.from_settings(settings, openai_base_url=openai.base_url,
                                                         openai_api_key="sk-test"))
            clock = replay_clock(ReplaySource(), 1.0)
            fixed_ms = clock.start_ms + 3_600_000
            cache = SharedOhlcvCache(redis, ReplaySource(), key_prefix=f"quorum:e2e-ohlcv:{uuid.uuid4().hex[:8]}",
                                     clock=lambda: fixed_ms)
            env = CycleEnv(
                database=database, vault=Vault(LocalMasterKeys.from_setting(settings.master_keys)), redis=redis,
                feed=MarketFeed(cache, lambda: fixed_ms, REPLAY, None),
                decide=functools.partial(decide, gpt=gpt, breaker=RedisCircuitBreaker(redis, f"e2e-{bot_id}"),
                                         budget=RedisTokenBudget(redis, 100_000)),
                open_exchange=functools.partial(open_trading_exchange, database, settings),
                send_task=lambda name, args: broker.send_task(name, args=args, ignore_result=True),
                soft_time_limit=45.0, lock_ttl=50.0,
            )
            try:
                async with stream(api_server, a) as stream_a, stream(api_server, b) as stream_b:
                    report = await env.run(a.id, bot_id, 1_000)
                    assert report.status == "completed" and report.orders == 1, report

                    # (c) A's live stream: the decision, the order and the trade, all A's.
                    seen: dict[str, dict[str, str]] = {}
                    while "trade.opened" not in seen:
                        got = await stream_a.next_event()
                        assert f'"tenantId":"{a.id}"' in got["data"], got
                        seen[got["event"]] = got
                    assert {"decision", "order"} <= set(seen)
                    opened_id = seen["trade.opened"]["id"]

                    # B, connected all along, gets its own next event first: nothing of A's came before it.
                    async with TenantScope.of(b.id).session(database) as session:
                        marker = await events.record(session, b.id, EventType.BOT_STATUS, {"status": "stopped"})
                    await publish_events(redis, [marker], lambda name, args: None)
                    first_for_b = await stream_b.next_event()
                    assert first_for_b["id"] == str(marker.id) and str(a.id) not in first_for_b["data"]
            finally:
                await gpt.aclose()

        # (a) Push through firebase-admin to the fake FCM, from the worker's quorum.deliver_event.
        await poll(lambda: fake_fcm.sent_to(phone_a), "the push to A's phone")
        [pushed] = fake_fcm.sent_to(phone_a)
        assert pushed["data"] == {"eventId": opened_id, "type": "trade.opened", "botId": str(bot_id)}
        assert pushed["notification"]["title"] == f"ETH bot: Long {SYMBOL} opened"
        assert fake_fcm.token_requests >= 1  # the OAuth token exchange happened

        # The token FCM called unregistered is pruned; the live one stays.
        async def pruned() -> bool:
            return await a.device_endings() == {phone_a[-8:]}
        await poll(pruned, "the unregistered device to be deleted")
        assert fake_fcm.sent_to(gone_a) == []

        # (b) Webhooks from the worker's quorum.deliver_webhook, verified with the README's receiver code.
        verify = _readme_verify()
        await poll(lambda: any(r.headers.get("quorum-event") == "trade.opened" for r in hook_a.received),
                   "A's trade.opened webhook")
        for received in hook_a.received:
            assert verify(hooks[a.id][1], received.headers["quorum-timestamp"], received.headers["quorum-signature"],
                          received.body), received.headers
            assert f'"tenantId":"{a.id}"' in received.body.decode()
        opened: Received = next(r for r in hook_a.received if r.headers["quorum-event"] == "trade.opened")
        assert f'"id":"{opened_id}"' in opened.body.decode()
        assert not verify(hooks[b.id][1], opened.headers["quorum-timestamp"], opened.headers["quorum-signature"],
                          opened.body)

        async def delivered() -> bool:
            page = (await a.call("GET", f"/v1/webhooks/{hooks[a.id][0]}/deliveries?limit=100")).json()
            return any(d["eventType"] == "trade.opened" and d["status"] == "succeeded" for d in page["items"])
        await poll(delivered, "A's delivery to be recorded as succeeded")

        # Tenant B: no push and no webhook of A's.
        assert fake_fcm.sent_to(phone_b) == []
        assert all(str(a.id) not in r.body.decode() for r in hook_b.received)
    broker.close()
    await redis.aclose()
    await database.dispose()

