"""Push notifications and event delivery: the real firebase-admin client against the local FCM (token
exchange included), users' preferences, dead tokens removed, each event delivered once, and events
committed but never enqueued swept up. The last test runs it all through the session's Celery worker."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from pathlib import Path

import pytest
from celery import Celery
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import insert, select, update

from quorum.database import Database
from quorum.embedded import free_port
from quorum.settings import Settings
from tenants import events
from tenants.events import EventMessage, EventType
from tenants.models import Event
from tenants.notify_models import EventDelivery
from tenants.scope import TenantScope
from tests.conftest import Account, eventually, register
from tests.fakes.fcm import FakeFcm
from tests.fakes.webhook_receiver import WebhookReceiver
from workers.notify.delivery import deliver_event, push_to_devices, sweep
from workers.notify.outbox import publish_events
from workers.notify.push import FCM_BATCH_LIMIT, FcmSender, PushMessage, push_message

BOT = {"name": "Scalper", "symbols": ["ETH/USDT"], "timeframes": ["15m"], "mode": "paper", "brain": "rules"}
OPENED = {"positionId": str(uuid.uuid4()), "symbol": "ETH/USDT", "side": "long", "amount": "0.5",
          "entryPrice": "2500.25", "stopLoss": "2450", "takeProfit": "2600"}


@pytest.fixture
def fcm_env(fake_fcm: FakeFcm, monkeypatch: pytest.MonkeyPatch) -> FakeFcm:
    """This process's firebase-admin pointed at the local FCM, as the session worker's is."""
    for name, value in fake_fcm.client_environment().items():
        monkeypatch.setenv(name, value)
    return fake_fcm


@pytest.fixture
def sender(fcm_env: FakeFcm) -> FcmSender:
    return FcmSender()


def token() -> str:
    return f"fcm-{uuid.uuid4().hex}"


async def _phone(client: AsyncTestClient, account: Account, device_token: str | None = None) -> str:
    device_token = device_token or token()
    response = await client.post("/v1/devices", headers=account.headers,
                                 json={"platform": "android", "token": device_token})
    assert response.status_code == 200, response.text
    return device_token


async def _tenant_and_bot(client: AsyncTestClient, account: Account) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = (await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"]
    bot = (await client.post("/v1/bots", json=BOT, headers=account.headers)).json()["id"]
    return uuid.UUID(tenant), uuid.UUID(bot)


async def _event(database: Database, tenant: uuid.UUID, bot: uuid.UUID | None,
                 type_: EventType = EventType.TRADE_OPENED, payload: dict | None = None) -> EventMessage:
    async with TenantScope.of(tenant).session(database) as session:
        return await events.record(session, tenant, type_, payload or OPENED, bot)


def _message(type_: EventType, payload: dict) -> EventMessage:
    return EventMessage(id=uuid.uuid4(), tenant_id=uuid.uuid4(), bot_id=uuid.uuid4(), type=type_,
                        created_at=events.now(), payload=payload)


def test_what_a_phone_shows_for_each_event() -> None:
    opened = push_message(_message(EventType.TRADE_OPENED, OPENED), "Scalper")
    assert opened is not None
    assert opened.title == "Scalper: Long ETH/USDT opened"
    assert opened.body == "0.5 at 2,500.25 · stop 2,450 · target 2,600"
    assert opened.data["type"] == "trade.opened" and set(opened.data) == {"eventId", "type", "botId"}
    stop = push_message(_message(EventType.STOP_LOSS_HIT, {"symbol": "BTC/USDT:USDT", "realizedPnl": "-12.3456",
                                                           "exitPrice": "61000"}))
    assert stop is not None and stop.title == "Stop-loss hit on BTC/USDT:USDT"
    assert stop.body == "PnL -12.35 USDT · exit 61,000"
    closed = push_message(_message(EventType.TRADE_CLOSED, {"symbol": "ETH/USDC", "side": "short",
                                                            "realizedPnl": "40", "exitPrice": "2400"}))
    assert closed is not None and closed.title == "ETH/USDC short closed" and closed.body.startswith("PnL +40.00 USDC")
    paused = push_message(_message(EventType.BOT_PAUSED, {"reason": "the exchange refused the API key"}))
    assert paused is not None and paused.body == "the exchange refused the API key"
    budget = push_message(_message(EventType.BUDGET_EXHAUSTED, {"detail": "200000 tokens"}))
    assert budget is not None and "rules brain" in budget.body
    summary = push_message(_message(EventType.DAILY_SUMMARY, {"day": "2026-03-12", "bots": [
        {"name": "BTC bot", "currency": "USDT", "realizedPnl": "12.4", "tradesOpened": 2, "tradesClosed": 3,
         "winRate": "0.6667"},
        {"name": "ETH bot", "currency": "BTC", "realizedPnl": "0", "tradesOpened": 1, "tradesClosed": 0},
    ]}))
    assert summary is not None and summary.title == "Daily summary, Mar 12"
    assert summary.body == "BTC bot: +12.40 USDT, 3 trades, 67% won · ETH bot: 1 trade opened, none closed yet"
    many = push_message(_message(EventType.DAILY_SUMMARY, {"day": "2026-03-12", "bots": [
        {"name": f"Bot {i}", "currency": "USDT", "realizedPnl": "-1.5", "tradesClosed": 2, "winRate": "0.5"}
        for i in range(12)]}))
    assert many is not None and len(many.body) <= 200 and many.body.endswith("more")
    assert push_message(_message(EventType.DECISION, {"action": "WAIT"})) is None
    assert push_message(_message(EventType.ORDER, {"status": "filled"})) is None


def test_fcm_answers_are_sorted_into_sent_dead_and_retry(sender: FcmSender, fcm_env: FakeFcm) -> None:
    good, gone, malformed, busy = token(), token(), token(), token()
    fcm_env.unregistered.add(gone)
    fcm_env.invalid.add(malformed)
    fcm_env.over_quota.add(busy)
    outcome = sender.send([good, gone, malformed, busy], PushMessage(title="t", body="b", data={"k": "v"}))
    assert outcome.sent == 1 and set(outcome.dead_tokens) == {gone, malformed} and outcome.retry_tokens == (busy,)
    [message] = fcm_env.sent_to(good)
    assert message["notification"] == {"title": "t", "body": "b"} and message["data"] == {"k": "v"}
    assert message["android"]["priority"] == "high" and message["apns"]["payload"]["aps"]["sound"] == "default"


def test_more_than_500_tokens_go_in_several_calls(sender: FcmSender, fcm_env: FakeFcm) -> None:
    tokens = [token() for _ in range(FCM_BATCH_LIMIT + 3)]
    outcome = sender.send(tokens, PushMessage(title="many", body="b", data={}))
    assert outcome.sent == len(tokens)
    assert all(len(fcm_env.sent_to(t)) == 1 for t in tokens)


def test_without_credentials_push_is_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from workers.notify.push import PushUnavailable

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(PushUnavailable):
        FcmSender().send([token()], PushMessage(title="t", body="b", data={}))


async def test_an_event_is_pushed_to_the_tenants_phones_that_want_it(
    client: AsyncTestClient, database: Database, sender: FcmSender, fcm_env: FakeFcm
) -> None:
    account, stranger = await register(client), await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    phone, tablet, strangers = await _phone(client, account), await _phone(client, account), await _phone(client,
                                                                                                        stranger)
    event = await _event(database, tenant, bot)
    report = await deliver_event(database, sender, tenant, event.id)
    assert report.status == "delivered" and report.pushed == 2
    for device in (phone, tablet):
        [message] = fcm_env.sent_to(device)
        assert message["notification"]["title"] == "Scalper: Long ETH/USDT opened"
        assert message["data"] == {"eventId": str(event.id), "type": "trade.opened", "botId": str(bot)}
    assert fcm_env.sent_to(strangers) == []

    # Every cycle's decisions and orders are for the stream, and a user can turn any pushed type off.
    await client.put("/v1/notification-preferences", headers=account.headers, json={"push": {"trade.opened": False}})
    quiet = [await _event(database, tenant, bot), await _event(database, tenant, bot, EventType.DECISION, {})]
    for e in quiet:
        assert (await deliver_event(database, sender, tenant, e.id)).pushed == 0
    assert len(fcm_env.sent_to(phone)) == 1


async def test_tokens_fcm_no_longer_knows_are_deleted(
    client: AsyncTestClient, database: Database, sender: FcmSender, fcm_env: FakeFcm
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    alive, uninstalled, broken = [await _phone(client, account) for _ in range(3)]
    fcm_env.unregistered.add(uninstalled)
    fcm_env.invalid.add(broken)
    report = await deliver_event(database, sender, tenant, (await _event(database, tenant, bot)).id)
    assert report.pushed == 1 and report.dead_tokens == 2
    devices = (await client.get("/v1/devices", headers=account.headers)).json()
    assert [d["tokenEnding"] for d in devices] == [alive[-8:]]


async def test_a_push_that_failed_for_a_passing_reason_is_retried_to_those_phones_only(
    client: AsyncTestClient, database: Database, sender: FcmSender, fcm_env: FakeFcm
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    fine, busy = await _phone(client, account), await _phone(client, account)
    fcm_env.over_quota.add(busy)
    event = await _event(database, tenant, bot)
    report = await deliver_event(database, sender, tenant, event.id)
    assert report.pushed == 1 and len(report.retry_devices) == 1
    fcm_env.over_quota.discard(busy)
    retried = await push_to_devices(database, sender, tenant, event.id, [uuid.UUID(report.retry_devices[0])])
    assert retried.pushed == 1 and retried.retry_devices == ()
    assert len(fcm_env.sent_to(busy)) == 1 and len(fcm_env.sent_to(fine)) == 1


async def test_fcm_unreachable_fails_nothing(
    client: AsyncTestClient, database: Database, fcm_env: FakeFcm, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    await _phone(client, account)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # FCM is down
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{free_port()}")
    report = await deliver_event(database, FcmSender(), tenant, (await _event(database, tenant, bot)).id)
    assert report.status == "delivered" and report.pushed == 0 and len(report.retry_devices) == 1


async def test_each_event_is_delivered_once(
    client: AsyncTestClient, database: Database, sender: FcmSender, fcm_env: FakeFcm
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    phone = await _phone(client, account)
    event = await _event(database, tenant, bot)
    first, second = await asyncio.gather(deliver_event(database, sender, tenant, event.id),
                                         deliver_event(database, sender, tenant, event.id))
    assert sorted([first.status, second.status]) == ["delivered", "skipped"]
    assert (await deliver_event(database, sender, tenant, event.id)).status == "skipped"
    assert len(fcm_env.sent_to(phone)) == 1


async def test_an_event_never_enqueued_is_swept_up_and_delivered(
    client: AsyncTestClient, database: Database, sender: FcmSender, fcm_env: FakeFcm
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    phone = await _phone(client, account)
    lost = await _event(database, tenant, bot)  # committed; the process died before enqueueing it
    held = await _event(database, tenant, bot, EventType.TRADE_CLOSED, {"symbol": "ETH/USDT", "realizedPnl": "3"})
    async with TenantScope.of(tenant).session(database) as session:  # a worker claimed this one and died
        await session.execute(update(EventDelivery).where(EventDelivery.id == held.id).values(
            status="delivering", locked_until=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)))

    found: list[tuple[str, str]] = []
    await sweep(database, lambda t, e: found.append((t, e)), lambda t, d: None, grace_seconds=0, limit=10_000)
    assert (str(tenant), str(lost.id)) in found and (str(tenant), str(held.id)) in found
    for found_tenant, event_id in found:
        if found_tenant == str(tenant):
            await deliver_event(database, sender, tenant, uuid.UUID(event_id))
    assert len(fcm_env.sent_to(phone)) == 2
    again: list[tuple[str, str]] = []
    await sweep(database, lambda t, e: again.append((t, e)), lambda t, d: None, grace_seconds=0, limit=10_000)
    assert not {(str(tenant), str(lost.id)), (str(tenant), str(held.id))} & set(again)


async def test_an_old_event_reaches_webhooks_but_not_lock_screens(
    client: AsyncTestClient, database: Database, sender: FcmSender, fcm_env: FakeFcm
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    phone = await _phone(client, account)
    created = await client.post("/v1/webhooks", headers=account.headers, json={"url": "http://127.0.0.1:9/x"})
    assert created.status_code == 201
    message = EventMessage(id=uuid.uuid4(), tenant_id=tenant, bot_id=bot, type=EventType.TRADE_OPENED,
                           created_at=events.now() - datetime.timedelta(hours=3), payload=OPENED)
    async with TenantScope.of(tenant).session(database) as session:
        await session.execute(insert(Event).values(events.row(message)))
    report = await deliver_event(database, sender, tenant, message.id)
    assert report.status == "delivered" and report.pushed == 0 and len(report.webhooks) == 1
    assert fcm_env.sent_to(phone) == []


async def test_a_committed_event_reaches_phones_and_webhooks_through_the_worker(
    client: AsyncTestClient, settings: Settings, database: Database, fake_fcm: FakeFcm, key_check_worker: Path,
) -> None:
    """The path a cycle takes: record in its transaction, then `publish_events` enqueues quorum.deliver_event."""
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    phone = await _phone(client, account)
    with WebhookReceiver() as receiver:
        hook = await client.post("/v1/webhooks", headers=account.headers,
                                 json={"url": receiver.url(), "eventTypes": ["trade.opened"]})
        assert hook.status_code == 201
        event = await _event(database, tenant, bot)
        redis = Redis.from_url(settings.redis_url)
        celery = Celery("quorum-test-client", broker=settings.redis_url)
        try:
            await publish_events(redis, [event], lambda name, args: celery.send_task(name, args=args))
        finally:
            await redis.aclose()
            celery.close()
        [got] = receiver.wait_for(1)
        assert got.headers["quorum-event"] == "trade.opened" and str(event.id) in got.body.decode()
    await eventually(lambda: fake_fcm.sent_to(phone))
    [pushed] = fake_fcm.sent_to(phone)
    assert pushed["data"]["eventId"] == str(event.id)
    async with TenantScope.of(tenant).session(database) as session:  # delivered: nothing left to do for it
        assert await session.scalar(select(EventDelivery.id).where(EventDelivery.id == event.id)) is None



def test_the_credentials_file_setting_is_what_workers_push_with(
    fake_fcm: FakeFcm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from quorum.settings import load_settings

    environment = fake_fcm.client_environment()
    account_file = environment.pop("GOOGLE_APPLICATION_CREDENTIALS")
    for name, value in environment.items():  # the route to the fake FCM, not its credentials
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "not-this-one.json"))
    sender = FcmSender.from_settings(load_settings({"FIREBASE_CREDENTIALS_FILE": account_file}))
    device = token()
    assert sender.send([device], PushMessage(title="t", body="b", data={})).sent == 1
    assert len(fake_fcm.sent_to(device)) == 1


async def test_decisions_and_orders_wait_for_delivery_only_where_a_webhook_can_take_them(
    client: AsyncTestClient, settings: Settings, database: Database
) -> None:
    """Push has nothing to say about them: a tenant without an active endpoint gets no delivery row, and
    the outbox enqueues no task; with one, both happen (and a trade event always does)."""
    from tenants.devices import PUSH_DEFAULTS
    from tenants.events import WEBHOOK_ONLY

    assert WEBHOOK_ONLY.isdisjoint(PUSH_DEFAULTS)
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)

    async def pending(*messages: EventMessage) -> set[uuid.UUID]:
        async with TenantScope.of(tenant).session(database) as session:
            ids = [m.id for m in messages]
            return set((await session.scalars(select(EventDelivery.id).where(EventDelivery.id.in_(ids)))).all())

    quiet = [await _event(database, tenant, bot, t, {"symbol": "ETH/USDT"}) for t in sorted(WEBHOOK_ONLY)]
    trade = await _event(database, tenant, bot)
    assert await pending(*quiet, trade) == {trade.id}
    sent: list[list[str]] = []
    redis = Redis.from_url(settings.redis_url)
    await publish_events(redis, [*quiet, trade], lambda name, args: sent.append(args), webhooks=False)
    assert sent == [[str(tenant), str(trade.id)]]

    created = await client.post("/v1/webhooks", headers=account.headers, json={"url": "http://127.0.0.1:9/x"})
    assert created.status_code == 201
    heard = [await _event(database, tenant, bot, t, {"symbol": "ETH/USDT"}) for t in sorted(WEBHOOK_ONLY)]
    assert await pending(*heard) == {m.id for m in heard}
    sent.clear()
    await publish_events(redis, heard, lambda name, args: sent.append(args), webhooks=True)
    assert sorted(sent) == sorted([str(tenant), str(m.id)] for m in heard)
    await redis.aclose()
