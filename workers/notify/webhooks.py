"""Sending webhook deliveries: sign, POST, record the answer, schedule the retry, disable a failing endpoint.

One attempt per call of `attempt_delivery`. A delivery is claimed first (status `sending`, locked for
a minute) so a task delivered twice (Celery's Redis transport redelivers long countdowns) sends once.
Retries back off exponentially: 5 s, 25 s, 2 min, 10 min, 52 min, then every hour, `MAX_ATTEMPTS` in
all. An endpoint whose last `DISABLE_AFTER_FAILURES` attempts all failed is disabled, and its tenant
is told by a `webhook.disabled` event (pushed to the owners). Each success also forgets that endpoint's
finished deliveries older than `RETENTION`.

While a secret rotation's overlap runs, the request is signed with the previous secret too
(`Quorum-Signature: v1=<new>,v1=<previous>`); past it, the previous secret is erased.

The address is checked when connecting, not only when the URL was saved: the host is resolved once,
every address must be public (unless the deployment allows private ones), and the request goes to the
checked address with the original host name for TLS and `Host`, so a DNS answer cannot change between
the check and the connection.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import random
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
from redis.asyncio import Redis
from sqlalchemy import delete, or_, select, update

from quorum.database import Database
from tenants import audit, events
from tenants.audit import AuditAction
from tenants.events import EventMessage, EventType
from tenants.notify_models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from tenants.scope import TenantScope
from tenants.vault import Vault
from tenants.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    UrlRefused,
    parse_webhook_url,
    previous_secret_context,
    previous_secret_live,
    resolve_public,
    secret_context,
    signatures,
)
from workers.notify.outbox import SendTask, publish_events

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETENTION = datetime.timedelta(days=30)  # finished deliveries older than this are deleted
_PRUNE_BATCH = 100
DISABLE_AFTER_FAILURES = 20  # consecutive failed attempts, across deliveries, with no success between
LOCK_SECONDS = 60
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "Quorum-Webhooks/1"
_encode = msgspec.json.Encoder().encode


def backoff_seconds(attempts: int) -> float:
    """Wait after the `attempts`-th failed attempt: 5 s × 5^(n-1), at most an hour, with ±10% jitter."""
    base = min(3600.0, 5.0 * 5 ** max(0, attempts - 1))
    return round(base * random.uniform(0.9, 1.1), 3)  # noqa: S311 - jitter, not security


class AttemptResult(msgspec.Struct, frozen=True):
    status: str  # a WebhookDeliveryStatus, or "skipped" when another attempt holds or finished it
    retry_in: float | None = None
    response_status: int | None = None


class WebhookPoster:
    """The one HTTP client for webhook endpoints in a worker process."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        # No pooling: a connection is bound to a checked address and a TLS name, never reused for another host.
        self._client = httpx.AsyncClient(
            timeout=TIMEOUT, follow_redirects=False, trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST to `url`, connecting only to an address that passed the check. Raises UrlRefused or httpx errors."""
        scheme, host, port = parse_webhook_url(url, allow_private=self.allow_private)
        addresses = await resolve_public(host, port, allow_private=self.allow_private)
        parts = urlsplit(url)
        address = ipaddress.ip_address(addresses[0].split("%")[0])
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{literal}:{port}"
        pinned = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        default_port = port == (443 if scheme == "https" else 80)
        host_header = host if default_port else f"{host}:{port}"
        return await self._client.post(
            pinned, content=body, headers={**headers, "Host": host_header},
            extensions={"sni_hostname": host} if scheme == "https" else {},
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def attempt_delivery(
    database: Database, vault: Vault, redis: Redis, poster: WebhookPoster, tenant_id: uuid.UUID,
    delivery_id: uuid.UUID, send_task: SendTask,
) -> AttemptResult:
    """Make one attempt at a delivery, if it is due and nobody else holds it."""
    now = utcnow()
    async with TenantScope.of(tenant_id).session(database) as session:
        claimed = (await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                or_(
                    WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
                    (WebhookDelivery.status == WebhookDeliveryStatus.RETRYING)
                    & (WebhookDelivery.next_attempt_at <= now + datetime.timedelta(seconds=1)),
                    (WebhookDelivery.status == WebhookDeliveryStatus.SENDING) & (WebhookDelivery.locked_until < now),
                ),
            )
            .values(status=WebhookDeliveryStatus.SENDING, attempts=WebhookDelivery.attempts + 1,
                    locked_until=now + datetime.timedelta(seconds=LOCK_SECONDS), updated_at=now)
            .returning(WebhookDelivery.endpoint_id, WebhookDelivery.attempts, WebhookDelivery.event_type,
                       WebhookDelivery.event_id, WebhookDelivery.payload)
        )).first()
        if claimed is None:
            return AttemptResult(status="skipped")
        endpoint = await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == claimed.endpoint_id))
        is_test = claimed.event_type == EventType.TEST.value
        if endpoint is None or (not endpoint.is_active and not is_test):
            await _finish(session, delivery_id, WebhookDeliveryStatus.FAILED, now, error="the endpoint is disabled")
            return AttemptResult(status=WebhookDeliveryStatus.FAILED)
        # The current secret first, then the previous one while a rotation's overlap runs.
        secrets = [await vault.decrypt(session, secret_context(endpoint), endpoint.secret_ciphertext)]
        if previous_secret_live(endpoint, now):
            secrets.append(await vault.decrypt(session, previous_secret_context(endpoint),
                                               endpoint.previous_secret_ciphertext or b""))
        elif endpoint.previous_secret_ciphertext is not None:  # the overlap is over: the secret goes now
            endpoint.previous_secret_ciphertext = endpoint.previous_secret_expires_at = None
        url = endpoint.url

    body = _encode(claimed.payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signatures(secrets, timestamp, body),
        EVENT_HEADER: claimed.event_type,
        DELIVERY_HEADER: str(delivery_id),
    }
    del secrets
    started = time.perf_counter()
    response_status: int | None = None
    error: str | None = None
    try:
        response = await poster.post(url, body, headers)
        response_status = response.status_code
        if not 200 <= response.status_code < 300:
            error = f"answered HTTP {response.status_code}"
    except UrlRefused as exc:
        error = f"refused: {exc}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
    duration_ms = round((time.perf_counter() - started) * 1000, 2)

    done = utcnow()
    disabled: list[EventMessage] = []
    async with TenantScope.of(tenant_id).session(database) as session:
        if error is None:
            await _finish(session, delivery_id, WebhookDeliveryStatus.SUCCEEDED, done,
                          response_status=response_status, duration_ms=duration_ms)
            if not is_test:
                await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == claimed.endpoint_id)
                                      .values(consecutive_failures=0, last_success_at=done, updated_at=done))
            await _prune(session, tenant_id, claimed.endpoint_id, done - RETENTION)
            result = AttemptResult(status=WebhookDeliveryStatus.SUCCEEDED, response_status=response_status)
        else:
            final = claimed.attempts >= MAX_ATTEMPTS or is_test
            wait = None if final else backoff_seconds(claimed.attempts)
            await _finish(
                session, delivery_id, WebhookDeliveryStatus.FAILED if final else WebhookDeliveryStatus.RETRYING,
                done, response_status=response_status, duration_ms=duration_ms, error=error,
                next_attempt_at=None if wait is None else done + datetime.timedelta(seconds=wait),
            )
            if not is_test:
                disabled = await _count_failure(session, tenant_id, claimed.endpoint_id, done)
            result = AttemptResult(status=WebhookDeliveryStatus.FAILED if final else WebhookDeliveryStatus.RETRYING,
                                   retry_in=wait, response_status=response_status)
    log.info("webhook attempt", extra={"delivery_id": str(delivery_id), "status": result.status,
                                        "response_status": response_status, "duration_ms": duration_ms})
    if disabled:
        await publish_events(redis, disabled, send_task)
    return result


async def _finish(session, delivery_id: uuid.UUID, status: str, at: datetime.datetime, *,  # noqa: ANN001
                  response_status: int | None = None, duration_ms: float | None = None, error: str | None = None,
                  next_attempt_at: datetime.datetime | None = None) -> None:
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
            status=status, locked_until=None, response_status=response_status, duration_ms=duration_ms,
            error=error[:300] if error else None, next_attempt_at=next_attempt_at, updated_at=at,
            delivered_at=at if status == WebhookDeliveryStatus.SUCCEEDED else None,
        )
    )


async def _prune(session, tenant_id: uuid.UUID, endpoint_id: uuid.UUID,  # noqa: ANN001
                 before: datetime.datetime) -> None:
    """Forget this endpoint's finished deliveries older than `before`, a batch at a time. Ids are UUIDv7,
    so "older" is an id range on the (tenant, endpoint, id) index."""
    floor = uuid.UUID(int=int(before.timestamp() * 1000) << 80)
    old = (select(WebhookDelivery.id)
           .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.endpoint_id == endpoint_id,
                  WebhookDelivery.id < floor,
                  WebhookDelivery.status.in_([WebhookDeliveryStatus.SUCCEEDED, WebhookDeliveryStatus.FAILED]))
           .limit(_PRUNE_BATCH))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(old.scalar_subquery())))


async def _count_failure(session, tenant_id: uuid.UUID, endpoint_id: uuid.UUID,  # noqa: ANN001
                         at: datetime.datetime) -> list[EventMessage]:
    """Count one failed attempt against the endpoint; disable it at the threshold and say so (once)."""
    row = (await session.execute(
        update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        .values(consecutive_failures=WebhookEndpoint.consecutive_failures + 1, last_failure_at=at, updated_at=at)
        .returning(WebhookEndpoint.consecutive_failures, WebhookEndpoint.is_active, WebhookEndpoint.url)
    )).first()
    if row is None or not row.is_active or row.consecutive_failures < DISABLE_AFTER_FAILURES:
        return []
    reason = f"{row.consecutive_failures} failed deliveries in a row"
    await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                          .values(is_active=False, disabled_reason=reason, updated_at=at))
    # Deliveries still waiting for this endpoint will not be sent: say so in their status now.
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id,
               WebhookDelivery.status.in_([WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.RETRYING]))
        .values(status=WebhookDeliveryStatus.FAILED, next_attempt_at=None, error="the endpoint was disabled",
                updated_at=at)
    )
    audit.record(session, tenant_id=tenant_id, action=AuditAction.WEBHOOK_DISABLED, target_type="webhook",
                 target_id=endpoint_id, details={"reason": reason})
    host = urlsplit(row.url).hostname or ""
    message = await events.record(session, tenant_id, EventType.WEBHOOK_DISABLED,
                                  {"webhookId": str(endpoint_id), "host": host, "reason": reason})
    log.warning("webhook endpoint disabled", extra={"tenant_id": str(tenant_id), "webhook_id": str(endpoint_id)})
    return [message]
