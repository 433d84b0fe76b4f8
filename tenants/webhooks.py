"""Webhook endpoints for integrators: where a tenant's events are POSTed, signed, and what became of them.

The signing secret (`whsec_…`) is shown once on create (and on rotation) and stored only encrypted
under the tenant vault; workers decrypt it to sign. Each request carries

    Quorum-Timestamp: <unix seconds>
    Quorum-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

and receivers reject timestamps older than a few minutes (README: "Verifying a webhook").

Rotating the secret keeps the previous one for an overlap (`ROTATION_OVERLAP` unless the request says
otherwise, at most `MAX_ROTATION_OVERLAP`): meanwhile every delivery carries both signatures,
`v1=<new>,v1=<previous>`, so a receiver verifies with whichever secret it holds while it switches. The
previous secret is stored encrypted like the current one, under its own field, and is erased when the
overlap ends (workers stop using it at once; the sweep deletes it).

URLs that resolve to private, loopback or link-local addresses are refused unless the deployment allows
them (tests and the embedded setup do): otherwise a webhook would let anyone make our workers call
inside our network. Workers check the address again when they connect (workers/notify/webhooks.py).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import ipaddress
import secrets
import socket
import uuid
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants import audit
from tenants.audit import AuditAction
from tenants.errors import Conflict, NotFound, Unprocessable
from tenants.events import EventMessage, EventType
from tenants.notify_models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from tenants.principal import Principal
from tenants.scope import TenantScope
from tenants.vault import FieldContext, Vault

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
TIMESTAMP_HEADER = "Quorum-Timestamp"
SIGNATURE_HEADER = "Quorum-Signature"
EVENT_HEADER = "Quorum-Event"
DELIVERY_HEADER = "Quorum-Delivery"
TOLERANCE_SECONDS = 300  # what receivers should accept; the README's snippet uses it
ROTATION_OVERLAP = datetime.timedelta(hours=24)  # a receiver's deploy window; the request may choose 0 to 7 days
MAX_ROTATION_OVERLAP = datetime.timedelta(days=7)
MAX_ENDPOINTS_PER_TENANT = 20
RESOLVE_TIMEOUT_SECONDS = 3.0
# Types an endpoint may subscribe to; `test` is sent only on request, to the endpoint asked.
SUBSCRIBABLE = frozenset(EventType) - {EventType.TEST}


# -- signing ----------------------------------------------------------------------------------------------

def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Quorum-Signature` header value for `body` sent at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    return f"{SIGNATURE_VERSION}={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def signatures(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The `Quorum-Signature` header when several secrets sign: the current one first, comma-separated."""
    return ",".join(signature(secret, timestamp, body) for secret in secrets)


def verify_signature(secret: str, timestamp_header: str, signature_header: str, body: bytes, now: float,
                     tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: a fresh timestamp and a matching `v1` signature (any of several, when rotating)."""
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate.strip()) for candidate in signature_header.split(","))


def secret_context(endpoint: WebhookEndpoint) -> FieldContext:
    return FieldContext(tenant_id=endpoint.tenant_id, table="webhook_endpoints", row_id=endpoint.id, field="secret")


def previous_secret_context(endpoint: WebhookEndpoint) -> FieldContext:
    return FieldContext(tenant_id=endpoint.tenant_id, table="webhook_endpoints", row_id=endpoint.id,
                        field="previous_secret")


def previous_secret_live(endpoint: WebhookEndpoint, now: datetime.datetime) -> bool:
    """Whether a rotation's overlap is running: deliveries are signed with the previous secret too."""
    return (endpoint.previous_secret_ciphertext is not None and endpoint.previous_secret_expires_at is not None
            and endpoint.previous_secret_expires_at > now)


# -- where webhooks may point -----------------------------------------------------------------------------

class UrlRefused(ValueError):
    """A webhook URL this deployment will not call; the message says why."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the low 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a local prefix, embedding placed by the operator
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 `::ffff:0:a.b.c.d`
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated `::a.b.c.d`


def reached_addresses(address: IPAddress) -> list[IPAddress]:
    """The addresses a packet to `address` ends up at: IPv6 forms that carry an IPv4 address are unwrapped."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _NAT64 or address in _IPV4_TRANSLATED:
        return [low32]
    if address in _IPV4_COMPATIBLE:
        return [address] if int(address) <= 1 else [low32]  # `::` and `::1` are themselves
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo
        return [server, client]
    return [address]


def is_public_address(address: IPAddress) -> bool:
    """Whether everything the address reaches is global unicast (no private, loopback, link-local,
    shared, reserved, multicast or documentation address, however it is wrapped in IPv6)."""
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
        return False
    return all(a.is_global and not a.is_multicast for a in reached_addresses(address))


def parse_webhook_url(url: str, *, allow_private: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, checked without any network lookup."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not allow_private):
        raise UrlRefused("use an https:// URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("the URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("credentials in the URL are not allowed; verify our signature instead")
    if parts.fragment:
        raise UrlRefused("a URL fragment is never sent; remove it")
    if not allow_private:
        if host.lower() == "localhost" or host.lower().endswith((".localhost", ".local", ".internal")):
            raise UrlRefused("the host is a local name")
        literal = _ip_or_none(host)
        if literal is not None and not is_public_address(literal):
            raise UrlRefused("the address is private, loopback or otherwise not public")
    return scheme, host, port or (443 if scheme == "https" else 80)


async def resolve_public(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The host's addresses, refused unless every one is public (or private ones are allowed)."""
    literal = _ip_or_none(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError):
            raise UrlRefused(f"the host {host!r} does not resolve") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UrlRefused(f"the host {host!r} does not resolve")
    if not allow_private and not all(is_public_address(ipaddress.ip_address(a.split("%")[0])) for a in addresses):
        raise UrlRefused("the host resolves to a private, loopback or otherwise not public address")
    return addresses


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    _, host, port = parse_webhook_url(url, allow_private=allow_private)
    if not allow_private:
        await resolve_public(host, port, allow_private=False)


def _ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


# -- the service ------------------------------------------------------------------------------------------

class WebhookQueue(Protocol):
    """Hands a delivery to a worker (Celery, by task name: the API never imports worker code)."""

    async def enqueue(self, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> None: ...


class EndpointSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    description: str = ""
    event_types: tuple[EventType, ...] = ()


class EndpointChanges(msgspec.Struct, frozen=True, kw_only=True):
    url: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    event_types: tuple[EventType, ...] | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class DeliveryPage(msgspec.Struct, frozen=True):
    items: list[WebhookDelivery]
    next_cursor: uuid.UUID | None


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class WebhookService:
    def __init__(self, db: Database, vault: Vault, queue: WebhookQueue, *, allow_private: bool) -> None:
        self.db = db
        self.vault = vault
        self.queue = queue
        self.allow_private = allow_private

    async def create(self, principal: Principal, settings: EndpointSettings) -> tuple[
            WebhookEndpoint, str]:
        """A new endpoint and its signing secret, returned this once."""
        await self._check_url(settings.url)
        event_types = _subscriptions(settings.event_types)
        secret = new_secret()
        async with TenantScope.of(principal).session(self.db) as session:
            count = await session.scalar(select(func.count()).select_from(WebhookEndpoint)
                                         .where(WebhookEndpoint.tenant_id == principal.tenant_id))
            if (count or 0) >= MAX_ENDPOINTS_PER_TENANT:
                raise Conflict(f"a tenant can have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints")
            endpoint = WebhookEndpoint(
                id=uuid7(), tenant_id=principal.tenant_id, url=settings.url, description=settings.description,
                event_types=event_types, is_active=True, consecutive_failures=0,
            )
            endpoint.secret_ciphertext = await self.vault.encrypt(session, secret_context(endpoint), secret)
            session.add(endpoint)
            await session.flush()
            audit.record(session, tenant_id=principal.tenant_id, actor=principal, action=AuditAction.WEBHOOK_CREATED,
                         target_type="webhook", target_id=endpoint.id,
                         details={"host": urlsplit(endpoint.url).hostname or "", "eventTypes": event_types})
        return endpoint, secret

    async def list(self, principal: Principal) -> list[WebhookEndpoint]:
        async with TenantScope.of(principal).session(self.db) as session:
            result = await session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == principal.tenant_id)
                .order_by(WebhookEndpoint.id.desc())
            )
            return list(result)

    async def get(self, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        async with TenantScope.of(principal).session(self.db) as session:
            return await _find(session, principal, endpoint_id)

    async def update(self, principal: Principal, endpoint_id: uuid.UUID, changes: EndpointChanges) -> WebhookEndpoint:
        """Change some fields; `active: true` re-enables a disabled endpoint and forgets its failures."""
        if changes.url is not msgspec.UNSET:
            await self._check_url(changes.url)
        async with TenantScope.of(principal).session(self.db) as session:
            endpoint = await _find(session, principal, endpoint_id, lock=True)
            changed: list[str] = []
            if changes.url is not msgspec.UNSET:
                endpoint.url = changes.url
                changed.append("url")
            if changes.description is not msgspec.UNSET:
                endpoint.description = changes.description
                changed.append("description")
            if changes.event_types is not msgspec.UNSET:
                endpoint.event_types = _subscriptions(changes.event_types)
                changed.append("eventTypes")
            if changes.active is not msgspec.UNSET:
                endpoint.is_active = changes.active
                if changes.active:
                    endpoint.consecutive_failures, endpoint.disabled_reason = 0, None
                changed.append("active")
            if changed:
                audit.record(session, tenant_id=principal.tenant_id, actor=principal,
                             action=AuditAction.WEBHOOK_CHANGED, target_type="webhook", target_id=endpoint.id,
                             details={"fields": changed})
                await session.flush()
        return endpoint

    async def rotate_secret(self, principal: Principal, endpoint_id: uuid.UUID, *,
                            overlap: datetime.timedelta = ROTATION_OVERLAP) -> tuple[WebhookEndpoint, str]:
        """A new signing secret, returned this once. The one it replaces keeps signing too for `overlap`
        (zero: it stops at once); a previous secret still in its overlap is dropped now."""
        if not datetime.timedelta(0) <= overlap <= MAX_ROTATION_OVERLAP:
            raise Unprocessable("the overlap is at most 7 days",
                                errors=[{"field": "overlapHours", "message": "between 0 and 168 hours"}])
        secret = new_secret()
        now = utcnow()
        async with TenantScope.of(principal).session(self.db) as session:
            endpoint = await _find(session, principal, endpoint_id, lock=True)
            if overlap:
                replaced = await self.vault.decrypt(session, secret_context(endpoint), endpoint.secret_ciphertext)
                endpoint.previous_secret_ciphertext = await self.vault.encrypt(
                    session, previous_secret_context(endpoint), replaced)
                endpoint.previous_secret_expires_at = now + overlap
                del replaced
            else:
                endpoint.previous_secret_ciphertext = endpoint.previous_secret_expires_at = None
            endpoint.secret_ciphertext = await self.vault.encrypt(session, secret_context(endpoint), secret)
            endpoint.updated_at = now
            audit.record(session, tenant_id=principal.tenant_id, actor=principal, action=AuditAction.WEBHOOK_CHANGED,
                         target_type="webhook", target_id=endpoint.id,
                         details={"fields": ["secret"], "overlapSeconds": int(overlap.total_seconds())})
            await session.flush()
        return endpoint, secret

    async def delete(self, principal: Principal, endpoint_id: uuid.UUID) -> None:
        async with TenantScope.of(principal).session(self.db) as session:
            endpoint = await _find(session, principal, endpoint_id, lock=True)
            await session.delete(endpoint)
            audit.record(session, tenant_id=principal.tenant_id, actor=principal, action=AuditAction.WEBHOOK_DELETED,
                         target_type="webhook", target_id=endpoint.id)

    async def deliveries(self, principal: Principal, endpoint_id: uuid.UUID, limit: int,
                         cursor: uuid.UUID | None = None,
                         status: WebhookDeliveryStatus | None = None) -> DeliveryPage:
        """The endpoint's deliveries, newest first, keyset-paginated on the time-ordered id."""
        query = (select(WebhookDelivery)
                 .where(WebhookDelivery.tenant_id == principal.tenant_id, WebhookDelivery.endpoint_id == endpoint_id)
                 .order_by(WebhookDelivery.id.desc()).limit(limit + 1))
        if cursor is not None:
            query = query.where(WebhookDelivery.id < cursor)
        if status is not None:
            query = query.where(WebhookDelivery.status == status.value)
        async with TenantScope.of(principal).session(self.db) as session:
            await _find(session, principal, endpoint_id)
            rows = list((await session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return DeliveryPage(items=rows, next_cursor=rows[-1].id if more else None)

    async def send_test(self, principal: Principal, endpoint_id: uuid.UUID) -> WebhookDelivery:
        """Queue a `test` event to this endpoint (even a disabled one: that is how its owner checks a fix)."""
        async with TenantScope.of(principal).session(self.db) as session:
            endpoint = await _find(session, principal, endpoint_id)
            now = utcnow()
            message = EventMessage(id=uuid7(), tenant_id=principal.tenant_id, bot_id=None, type=EventType.TEST,
                                   created_at=now, payload={"message": "A test event from Quorum."})
            delivery = new_delivery(endpoint, message)
            session.add(delivery)
            await session.flush()
        await self.queue.enqueue(principal.tenant_id, delivery.id)
        return delivery

    async def _check_url(self, url: str) -> None:
        try:
            await check_webhook_url(url, allow_private=self.allow_private)
        except UrlRefused as exc:
            raise Unprocessable(f"this webhook URL is refused: {exc}",
                                errors=[{"field": "url", "message": str(exc)}]) from None


def new_delivery(endpoint: WebhookEndpoint, message: EventMessage) -> WebhookDelivery:
    return WebhookDelivery(
        id=uuid7(), tenant_id=endpoint.tenant_id, endpoint_id=endpoint.id, event_id=message.id,
        event_type=message.type.value, payload=msgspec.to_builtins(message), status=WebhookDeliveryStatus.PENDING,
        attempts=0,
    )


def subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    """Whether `endpoint` wants events of this type (an empty filter means every subscribable type)."""
    if event_type == EventType.TEST.value:
        return False
    return not endpoint.event_types or event_type in endpoint.event_types


def _subscriptions(event_types: Iterable[EventType]) -> list[str]:
    named = [EventType(t).value for t in event_types]
    if len(set(named)) != len(named):
        raise Unprocessable("Each event type may appear only once",
                            errors=[{"field": "eventTypes", "message": "each event type may appear only once"}])
    chosen = sorted(named)
    if EventType.TEST.value in chosen:
        raise Unprocessable("`test` events are sent only by POST /v1/webhooks/{id}/test",
                            errors=[{"field": "eventTypes", "message": "cannot subscribe to test"}])
    return chosen


async def _find(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, *,
                lock: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == principal.tenant_id,
                                          WebhookEndpoint.id == endpoint_id)
    if lock:
        query = query.with_for_update()
    endpoint = await session.scalar(query)
    if endpoint is None:
        raise NotFound("no webhook endpoint with this id")
    return endpoint

