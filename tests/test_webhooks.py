"""Webhooks: endpoints per tenant, signed deliveries a receiver can verify, retries with backoff, endpoints
disabled (and their owner told) after failing too often, and no calls into private networks where refused."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import update

from quorum.database import Database, create_app_engine
from quorum.settings import Settings
from tenants import events
from tenants.errors import Unprocessable
from tenants.events import EventType
from tenants.notify_models import WebhookDelivery, WebhookEndpoint
from tenants.principal import Principal, PrincipalKind
from tenants.scope import TenantScope
from tenants.vault import LocalMasterKeys, Vault
from tenants.webhooks import (
    EndpointSettings,
    UrlRefused,
    WebhookService,
    check_webhook_url,
    is_public_address,
    verify_signature,
)
from tests.conftest import REPO_ROOT, Account, eventually, register
from tests.fakes.fcm import FakeFcm
from tests.fakes.webhook_receiver import Received, WebhookReceiver
from workers.notify import webhooks as sending
from workers.notify.delivery import deliver_event, sweep
from workers.notify.push import FcmSender


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


class Enqueued:
    """Stands in for Celery's send_task where a test drives delivery itself; keeps what would be sent."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, list[str]]] = []

    def __call__(self, name: str, args: list[str]) -> None:
        self.tasks.append((name, args))


def _readme_verify() -> Callable[..., bool]:
    """The `verify` function of README's "Verifying a webhook", run exactly as written there."""
    section = (REPO_ROOT / "README.md").read_text().split("### Verifying a webhook", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]  # type: ignore[return-value]


README_VERIFY = _readme_verify()


def receiver_verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What an integrator following the README does with a request."""
    return README_VERIFY(secret, headers["quorum-timestamp"], headers["quorum-signature"], body)


async def _create(client: AsyncTestClient, account: Account, url: str, **body: object) -> dict:
    response = await client.post("/v1/webhooks", headers=account.headers, json={"url": url, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def _tenant(client: AsyncTestClient, account: Account) -> uuid.UUID:
    return uuid.UUID((await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"])


async def _event(database: Database, tenant: uuid.UUID, type_: EventType = EventType.TRADE_OPENED,
                 payload: dict | None = None) -> events.EventMessage:
    async with TenantScope.of(tenant).session(database) as session:
        return await events.record(session, tenant, type_, payload or {"symbol": "ETH/USDT", "side": "long",
                                                                     "amount": "0.5", "entryPrice": "2500"})


async def _deliveries_of(database: Database, tenant: uuid.UUID, event_id: uuid.UUID) -> list[uuid.UUID]:
    report = await deliver_event(database, None, tenant, event_id)
    return [uuid.UUID(i) for i in report.webhooks]


def _vault(settings: Settings) -> Vault:
    return Vault(LocalMasterKeys.from_setting(settings.master_keys))


async def _attempt(settings: Settings, database: Database, redis: Redis, tenant: uuid.UUID, delivery: uuid.UUID,
                   *, allow_private: bool = True, enqueued: Enqueued | None = None) -> sending.AttemptResult:
    poster = sending.WebhookPoster(allow_private=allow_private)
    try:
        return await sending.attempt_delivery(database, _vault(settings), redis, poster, tenant, delivery,
                                              enqueued or Enqueued())
    finally:
        await poster.aclose()


async def _make_due(database: Database, tenant: uuid.UUID, delivery: uuid.UUID) -> None:
    """What waiting out the backoff does: the next attempt is due now."""
    async with TenantScope.of(tenant).session(database) as session:
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery)
                              .values(next_attempt_at=datetime.datetime.now(datetime.UTC)))


async def test_the_secret_is_shown_once_and_stored_only_encrypted(
    client: AsyncTestClient, settings: Settings, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    created = await _create(client, account, receiver.url(), description="orders to our CRM",
                            eventTypes=["trade.opened", "trade.closed"])
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["eventTypes"] == ["trade.closed", "trade.opened"] and created["active"] is True
    listed = await client.get("/v1/webhooks", headers=account.headers)
    one = await client.get(f"/v1/webhooks/{created['id']}", headers=account.headers)
    for response in (listed, one):
        assert response.status_code == 200 and secret not in response.text and "secret" not in response.text
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT t::text FROM webhook_endpoints t WHERE id = %s", (created["id"],)).fetchone()
    assert secret not in row[0] and secret.encode().hex() not in row[0]

    rotated = await client.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=account.headers)
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, "")


async def test_webhooks_are_changed_and_deleted(client: AsyncTestClient, receiver: WebhookReceiver) -> None:
    account = await register(client)
    created = await _create(client, account, receiver.url())
    assert created["eventTypes"] == []
    changed = await client.patch(f"/v1/webhooks/{created['id']}", headers=account.headers,
                                 json={"description": "all events", "eventTypes": ["bot.paused"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "all events" and changed.json()["eventTypes"] == ["bot.paused"]
    refused = await client.patch(f"/v1/webhooks/{created['id']}", headers=account.headers,
                                 json={"eventTypes": ["test"]})
    assert refused.status_code == 422
    repeated = await client.patch(f"/v1/webhooks/{created['id']}", headers=account.headers,
                                  json={"eventTypes": ["bot.paused", "bot.paused"]})
    assert repeated.status_code == 422
    assert repeated.json()["errors"] == [{"field": "eventTypes", "message": "each event type may appear only once"}]
    assert (await client.delete(f"/v1/webhooks/{created['id']}", headers=account.headers)).status_code == 204
    assert (await client.get(f"/v1/webhooks/{created['id']}", headers=account.headers)).status_code == 404


@pytest.mark.parametrize("url", [
    "http://hooks.example.com/quorum",  # not https
    "https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://192.168.0.10/hook", "https://[::1]/hook",
    "https://169.254.169.254/latest/meta-data", "https://[::ffff:127.0.0.1]/hook", "https://localhost/hook",
    "https://metadata.google.internal/x", "https://user:password@hooks.example.com/x", "https://0.0.0.0/x",
])
async def test_private_and_loopback_urls_are_refused_in_production(url: str) -> None:
    with pytest.raises(UrlRefused):
        await check_webhook_url(url, allow_private=False)


async def test_a_name_that_resolves_to_a_private_address_is_refused(
    client: AsyncTestClient, settings: Settings
) -> None:
    account = await register(client)
    me = (await client.get("/v1/me", headers=account.headers)).json()
    principal = Principal(kind=PrincipalKind.API_KEY, tenant_id=uuid.UUID(me["tenant"]["id"]),
                          user_id=uuid.UUID(me["id"]), role="api_key", scopes=frozenset())
    database = Database(create_app_engine(settings))
    production = WebhookService(database, _vault(settings), queue=None,  # type: ignore[arg-type]
                                allow_private=False)
    try:
        # This machine's own name resolves to one of its addresses (loopback or private), or to nothing.
        with pytest.raises(Unprocessable) as refused:
            await production.create(principal, EndpointSettings(url=f"https://{socket.gethostname()}/hook"))
        assert refused.value.errors[0]["field"] == "url"
    finally:
        await database.dispose()


async def test_allowed_in_tests_a_loopback_url_is_accepted(client: AsyncTestClient) -> None:
    account = await register(client)
    await _create(client, account, "http://127.0.0.1:9/hook")


async def test_a_delivery_is_signed_and_the_receiver_can_verify_it(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    created = await _create(client, account, receiver.url("/hooks/a?source=quorum"))
    event = await _event(database, tenant)
    [delivery] = await _deliveries_of(database, tenant, event.id)

    result = await _attempt(settings, database, redis, tenant, delivery)
    assert result.status == "succeeded" and result.response_status == 200
    [got] = receiver.received
    assert got.path == "/hooks/a?source=quorum" and got.headers["content-type"] == "application/json"
    assert got.headers["quorum-event"] == "trade.opened" and got.headers["quorum-delivery"] == str(delivery)
    assert got.headers["host"] == receiver.origin.removeprefix("http://")
    body = json.loads(got.body)
    assert body["id"] == str(event.id) and body["tenantId"] == str(tenant) and body["payload"]["symbol"] == "ETH/USDT"

    assert receiver_verifies(created["secret"], got.headers, got.body)
    assert verify_signature(created["secret"], got.headers["quorum-timestamp"], got.headers["quorum-signature"],
                            got.body, time.time())
    assert not receiver_verifies(created["secret"], got.headers, got.body + b" ")  # tampered
    assert not receiver_verifies("whsec_another", got.headers, got.body)
    late = str(int(time.time()) - 600)  # a captured request replayed ten minutes on, correctly signed
    signed = hmac.new(created["secret"].encode(), late.encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert not README_VERIFY(created["secret"], late, f"v1={signed}", got.body)

    again = await _attempt(settings, database, redis, tenant, delivery)
    assert again.status == "skipped" and len(receiver.received) == 1  # delivered once


async def test_finished_deliveries_are_kept_for_30_days(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    created = await _create(client, account, receiver.url())
    ancient, recent = [], []
    for age_days, kept in ((45, ancient), (31, ancient), (29, recent)):
        at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=age_days)
        ms = int(at.timestamp() * 1000)
        delivery_id = uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | uuid.uuid4().int & ((1 << 62) - 1))
        async with TenantScope.of(tenant).session(database) as session:
            session.add(WebhookDelivery(id=delivery_id, tenant_id=tenant, endpoint_id=uuid.UUID(created["id"]),
                                        event_id=uuid.uuid4(), event_type="trade.opened", payload={},
                                        status="succeeded", attempts=1, created_at=at, updated_at=at))
        kept.append(str(delivery_id))
    [delivery] = await _deliveries_of(database, tenant, (await _event(database, tenant)).id)
    assert (await _attempt(settings, database, redis, tenant, delivery)).status == "succeeded"
    page = (await client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=account.headers)).json()
    assert {d["id"] for d in page["items"]} == {str(delivery), *recent}


async def test_a_failed_delivery_is_retried_with_backoff_until_it_succeeds(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    created = await _create(client, account, receiver.url())
    receiver.statuses = [500, 503]
    [delivery] = await _deliveries_of(database, tenant, (await _event(database, tenant)).id)

    first = await _attempt(settings, database, redis, tenant, delivery)
    assert first.status == "retrying" and first.response_status == 500 and 4.5 <= (first.retry_in or 0) <= 5.5
    early = await _attempt(settings, database, redis, tenant, delivery)
    assert early.status == "skipped" and len(receiver.received) == 1  # not due yet: a duplicate task sends nothing
    await _make_due(database, tenant, delivery)
    second = await _attempt(settings, database, redis, tenant, delivery)
    assert second.status == "retrying" and 22.5 <= (second.retry_in or 0) <= 27.5
    await _make_due(database, tenant, delivery)
    third = await _attempt(settings, database, redis, tenant, delivery)
    assert third.status == "succeeded"

    page = (await client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=account.headers)).json()
    [shown] = page["items"]
    assert shown["status"] == "succeeded" and shown["attempts"] == 3 and shown["responseStatus"] == 200
    assert shown["deliveredAt"] is not None and shown["error"] is None and shown["eventType"] == "trade.opened"
    timestamps = {r.headers["quorum-timestamp"] for r in receiver.received}
    assert all(receiver_verifies(created["secret"], r.headers, r.body) for r in receiver.received)
    assert len(timestamps) >= 1


def test_backoff_grows_exponentially_to_an_hour() -> None:
    expected = [5, 25, 125, 625, 3125, 3600, 3600]
    for attempts, base in enumerate(expected, start=1):
        assert base * 0.9 <= sending.backoff_seconds(attempts) <= base * 1.1


async def test_a_delivery_gives_up_after_its_last_attempt(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    await _create(client, account, receiver.url())
    receiver.default_status = 410
    [delivery] = await _deliveries_of(database, tenant, (await _event(database, tenant)).id)
    results = []
    for _ in range(sending.MAX_ATTEMPTS):
        results.append(await _attempt(settings, database, redis, tenant, delivery))
        await _make_due(database, tenant, delivery)
    assert [r.status for r in results] == ["retrying"] * (sending.MAX_ATTEMPTS - 1) + ["failed"]
    assert results[-1].retry_in is None


async def test_an_endpoint_failing_repeatedly_is_disabled_and_its_owner_told(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver,
    fake_fcm: FakeFcm, scratch_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    created = await _create(client, account, receiver.url(), eventTypes=["trade.opened"])
    phone = f"owner-phone-{uuid.uuid4().hex}"
    await client.post("/v1/devices", headers=account.headers, json={"platform": "ios", "token": phone})
    receiver.default_status = 500
    enqueued = Enqueued()
    deliveries = []
    for _ in range(sending.DISABLE_AFTER_FAILURES + 1):
        deliveries += await _deliveries_of(database, tenant, (await _event(database, tenant)).id)
    for delivery in deliveries[:-1]:
        await _attempt(settings, database, redis, tenant, delivery, enqueued=enqueued)

    shown = (await client.get(f"/v1/webhooks/{created['id']}", headers=account.headers)).json()
    assert shown["active"] is False and "failed deliveries in a row" in shown["disabledReason"]
    assert shown["consecutiveFailures"] == sending.DISABLE_AFTER_FAILURES
    # Nothing more is sent to it, and what was waiting says why.
    assert (await _attempt(settings, database, redis, tenant, deliveries[-1])).status == "skipped"
    assert len(receiver.received) == sending.DISABLE_AFTER_FAILURES
    page = (await client.get(f"/v1/webhooks/{created['id']}/deliveries?status=failed&limit=100",
                             headers=account.headers)).json()
    assert any(d["error"] == "the endpoint was disabled" for d in page["items"])

    # The owner is told: a webhook.disabled event, pushed to their phone.
    [(task, (task_tenant, event_id))] = enqueued.tasks
    assert task == "quorum.deliver_event" and task_tenant == str(tenant)
    for name, value in fake_fcm.client_environment().items():
        monkeypatch.setenv(name, value)
    report = await deliver_event(database, FcmSender(), tenant, uuid.UUID(event_id))
    assert report.status in ("delivered", "skipped")  # a session worker may have delivered it first
    await eventually(lambda: fake_fcm.sent_to(phone))
    [pushed] = fake_fcm.sent_to(phone)
    assert pushed["notification"]["title"] == "Webhook disabled"
    assert pushed["data"]["type"] == "webhook.disabled"

    enabled = await client.patch(f"/v1/webhooks/{created['id']}", headers=account.headers, json={"active": True})
    assert enabled.json()["active"] is True and enabled.json()["consecutiveFailures"] == 0
    assert enabled.json()["disabledReason"] is None


async def test_event_filters_choose_what_each_endpoint_gets(
    client: AsyncTestClient, database: Database, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    everything = await _create(client, account, receiver.url("/all"))
    paused_only = await _create(client, account, receiver.url("/paused"), eventTypes=["bot.paused"])
    opened = await _deliveries_of(database, tenant, (await _event(database, tenant)).id)
    paused = await _deliveries_of(database, tenant, (await _event(database, tenant, EventType.BOT_PAUSED,
                                                                  {"reason": "key revoked"})).id)
    assert len(opened) == 1 and len(paused) == 2
    for webhook, count in ((everything, 2), (paused_only, 1)):
        page = (await client.get(f"/v1/webhooks/{webhook['id']}/deliveries", headers=account.headers)).json()
        assert len(page["items"]) == count


async def test_a_loopback_address_is_refused_when_sending_too(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver
) -> None:
    """A name may resolve differently when we send than when it was saved: the worker checks again."""
    account = await register(client)
    tenant = await _tenant(client, account)
    await _create(client, account, receiver.url())  # allowed here (tests); not by a production worker
    [delivery] = await _deliveries_of(database, tenant, (await _event(database, tenant)).id)
    result = await _attempt(settings, database, redis, tenant, delivery, allow_private=False)
    assert result.status == "retrying" and receiver.received == []


async def test_the_test_button_sends_a_test_event_through_a_worker(
    client: AsyncTestClient, receiver: WebhookReceiver, key_check_worker: Path
) -> None:
    account = await register(client)
    created = await _create(client, account, receiver.url())
    queued = await client.post(f"/v1/webhooks/{created['id']}/test", headers=account.headers)
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "pending" and queued.json()["eventType"] == "test"
    [got] = receiver.wait_for(1)
    assert got.headers["quorum-event"] == "test" and receiver_verifies(created["secret"], got.headers, got.body)
    statuses: list[str] = []

    async def status() -> str:
        page = (await client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=account.headers)).json()
        return page["items"][0]["status"]

    for _ in range(75):
        statuses.append(await status())
        if statuses[-1] == "succeeded":
            break
        await asyncio.sleep(0.2)
    assert statuses[-1] == "succeeded", statuses


async def test_an_api_key_needs_the_webhook_scopes(client: AsyncTestClient, receiver: WebhookReceiver) -> None:
    account = await register(client)
    reader = await client.post("/v1/api-keys", headers=account.headers,
                               json={"name": "reader", "scopes": ["webhooks:read"]})
    headers = {"Authorization": f"Bearer {reader.json()['key']}"}
    assert (await client.get("/v1/webhooks", headers=headers)).status_code == 200
    assert (await client.post("/v1/webhooks", headers=headers, json={"url": receiver.url()})).status_code == 403


async def _expire_overlap(database: Database, tenant: uuid.UUID, webhook_id: str) -> None:
    """What waiting out the rotation's overlap does: it ended a moment ago."""
    async with TenantScope.of(tenant).session(database) as session:
        await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(webhook_id))
                              .values(previous_secret_expires_at=datetime.datetime.now(datetime.UTC)
                                      - datetime.timedelta(seconds=1)))


async def _send_one(settings: Settings, database: Database, redis: Redis, tenant: uuid.UUID,
                    receiver: WebhookReceiver) -> Received:
    [delivery] = await _deliveries_of(database, tenant, (await _event(database, tenant)).id)
    assert (await _attempt(settings, database, redis, tenant, delivery)).status == "succeeded"
    return receiver.received[-1]


async def test_a_rotated_secret_keeps_signing_through_the_overlap_then_is_erased(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    created = await _create(client, account, receiver.url())
    old = created["secret"]
    rotated = await client.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=account.headers)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    until = datetime.datetime.fromisoformat(rotated.json()["previousSecretExpiresAt"])
    expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=24)
    assert abs((until - expected).total_seconds()) < 300
    shown = (await client.get(f"/v1/webhooks/{created['id']}", headers=account.headers)).json()
    assert shown["previousSecretExpiresAt"] == rotated.json()["previousSecretExpiresAt"] and old not in str(shown)
    with psycopg.connect(settings.database_url) as conn:  # the previous secret is stored encrypted too
        row = conn.execute("SELECT t::text FROM webhook_endpoints t WHERE id = %s", (created["id"],)).fetchone()
    assert old not in row[0] and new not in row[0] and old.encode().hex() not in row[0]

    # During the overlap: both signatures, so a receiver holding either secret accepts the request.
    during = await _send_one(settings, database, redis, tenant, receiver)
    assert during.headers["quorum-signature"].count("v1=") == 2
    assert receiver_verifies(new, during.headers, during.body) and receiver_verifies(old, during.headers, during.body)
    assert not receiver_verifies("whsec_another", during.headers, during.body)

    # After it: the new secret only, and the previous one is gone from the database.
    await _expire_overlap(database, tenant, created["id"])
    after = await _send_one(settings, database, redis, tenant, receiver)
    assert after.headers["quorum-signature"].count("v1=") == 1
    assert receiver_verifies(new, after.headers, after.body) and not receiver_verifies(old, after.headers, after.body)
    async with TenantScope.of(tenant).session(database) as session:
        endpoint = await session.get(WebhookEndpoint, uuid.UUID(created["id"]))
        assert endpoint is not None
        assert endpoint.previous_secret_ciphertext is None and endpoint.previous_secret_expires_at is None
    shown = (await client.get(f"/v1/webhooks/{created['id']}", headers=account.headers)).json()
    assert shown["previousSecretExpiresAt"] is None


async def test_an_ended_overlap_is_erased_by_the_sweep_even_without_deliveries(
    client: AsyncTestClient, settings: Settings, database: Database, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    created = await _create(client, account, receiver.url())
    await client.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=account.headers)
    await _expire_overlap(database, tenant, created["id"])
    report = await sweep(database, Enqueued(), Enqueued(), grace_seconds=3600)
    assert report.secrets_dropped >= 1
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT previous_secret_ciphertext, previous_secret_expires_at FROM webhook_endpoints "
                           "WHERE id = %s", (created["id"],)).fetchone()
    assert row == (None, None)


async def test_a_rotation_may_switch_at_once_and_keeps_one_previous_secret_at_most(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, receiver: WebhookReceiver
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    created = await _create(client, account, receiver.url())
    url = f"/v1/webhooks/{created['id']}/rotate-secret"
    first = (await client.post(url, headers=account.headers, json={"overlapHours": 1})).json()["secret"]
    second = (await client.post(url, headers=account.headers, json={"overlapHours": 2})).json()["secret"]
    got = await _send_one(settings, database, redis, tenant, receiver)
    assert receiver_verifies(second, got.headers, got.body) and receiver_verifies(first, got.headers, got.body)
    assert not receiver_verifies(created["secret"], got.headers, got.body)  # two rotations ago: no longer

    at_once = await client.post(url, headers=account.headers, json={"overlapHours": 0})
    assert at_once.status_code == 200 and at_once.json()["previousSecretExpiresAt"] is None
    got = await _send_one(settings, database, redis, tenant, receiver)
    assert receiver_verifies(at_once.json()["secret"], got.headers, got.body)
    assert not receiver_verifies(second, got.headers, got.body)
    for body in ({"overlapHours": 169}, {"overlapHours": -1}, {"overlap": 3}):
        assert (await client.post(url, headers=account.headers, json=body)).status_code in (400, 422), body


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("10.0.0.1", False), ("127.0.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("192.0.2.1", False), ("224.0.0.1", False), ("::1", False), ("::", False), ("fe80::1", False),
    ("fc00::1", False), ("ff02::1", False), ("2001:db8::1", False),
    # IPv4-mapped and RFC 2765 IPv4-translated
    ("::ffff:169.254.169.254", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True),
    ("::ffff:0:169.254.169.254", False), ("::ffff:0:127.0.0.1", False), ("::ffff:0:8.8.8.8", True),
    # deprecated IPv4-compatible
    ("::169.254.169.254", False), ("::10.0.0.1", False), ("::127.0.0.1", False), ("::8.8.8.8", True),
    # NAT64, well-known and local-use prefixes
    ("64:ff9b::169.254.169.254", False), ("64:ff9b::a00:1", False), ("64:ff9b::127.0.0.1", False),
    ("64:ff9b::8.8.8.8", True), ("64:ff9b:1::a9fe:a9fe", False), ("64:ff9b:1::808:808", False),
    # 6to4 carries the IPv4 address in bits 16-48
    ("2002:a9fe:a9fe::1", False), ("2002:0a00:0001::1", False), ("2002:7f00:0001::", False),
    ("2002:0808:0808::1", True),
    # Teredo: the server and the (obfuscated) client both reached
    ("2001:0:a9fe:a9fe::f5ff:fffe", False), ("2001:0:808:808::f5ff:f7f7", False),
    ("2001:0:808:808::f7f7:f7f7", True),
])
def test_an_address_is_public_only_if_what_it_reaches_is(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public
