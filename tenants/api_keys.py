"""Integrator API keys: created by a user, shown once, stored as a keyed hash, scoped, revocable.

A key reads `qk_<id>_<secret>`: the id (the row's uuid in lowercase base32) lets the server find the
row without a tenant; the secret is high-entropy and only its HMAC is stored.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable

from redis.asyncio import Redis
from sqlalchemy import select, text, update
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants import audit
from tenants.audit import AuditAction
from tenants.errors import Forbidden, NotFound, Unauthenticated, Unprocessable
from tenants.models import ApiKey
from tenants.principal import ROLE_SCOPES, Principal, PrincipalKind, Scope
from tenants.scope import TenantScope

API_KEY_PREFIX = "qk_"
# An API key may hold any scope but the account's own: it cannot change passwords, end sessions or mint keys.
API_KEY_SCOPES = frozenset(Scope) - {Scope.ACCOUNT}
# The same set as a closed type, so request schemas (and the OpenAPI document) offer only these.
ApiKeyScope = enum.StrEnum("ApiKeyScope", {s.name: s.value for s in Scope if s in API_KEY_SCOPES})
MIN_RATE_LIMIT, MAX_RATE_LIMIT = 1, 10_000
_ID_CHARS = 26  # 16 uuid bytes in unpadded base32
_LAST_USED_EVERY_SECONDS = 60

_FIND_KEY = text("SELECT tenant_id, user_id, secret_hash, scopes, rate_limit_per_minute, creator_role "
                 "FROM auth_find_api_key(:id)")


def encode_key_id(key_id: uuid.UUID) -> str:
    return base64.b32encode(key_id.bytes).decode().rstrip("=").lower()


def decode_key_id(encoded: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.b32decode(encoded.upper() + "======"))


def display_prefix(key_id: uuid.UUID) -> str:
    """The non-secret start of a key, enough to tell keys apart in a list."""
    return f"{API_KEY_PREFIX}{encode_key_id(key_id)}…"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ApiKeyService:
    def __init__(self, db: Database, redis: Redis, hash_key: str, default_rate_limit_per_minute: int) -> None:
        self.db = db
        self.redis = redis
        self._hash_key = hash_key.encode()
        self.default_rate_limit_per_minute = default_rate_limit_per_minute

    # -- managing keys (a user's own session only) ---------------------------------------------------

    async def create(
        self, principal: Principal, name: str, scopes: Iterable[str], rate_limit_per_minute: int | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; the plaintext is returned here and never again."""
        _require_user(principal)
        granted = _check_scopes(scopes, principal.scopes)
        limit = self.default_rate_limit_per_minute if rate_limit_per_minute is None else rate_limit_per_minute
        if not MIN_RATE_LIMIT <= limit <= MAX_RATE_LIMIT:
            raise Unprocessable(f"the rate limit must be {MIN_RATE_LIMIT} to {MAX_RATE_LIMIT} requests a minute",
                                errors=[{"field": "rateLimitPerMinute", "message": "out of range"}])
        key_id = uuid7()
        plaintext = f"{API_KEY_PREFIX}{encode_key_id(key_id)}_{secrets.token_urlsafe(32)}"
        key = ApiKey(id=key_id, tenant_id=principal.tenant_id, user_id=principal.user_id, name=name.strip(),
                     secret_hash=self._hash(plaintext), scopes=sorted(granted), rate_limit_per_minute=limit)
        async with TenantScope.of(principal).session(self.db) as session:
            session.add(key)
            await session.flush()
            audit.record(session, tenant_id=principal.tenant_id, actor=principal, action=AuditAction.API_KEY_CREATED,
                         target_type="api_key", target_id=key.id, details={"name": key.name, "scopes": key.scopes})
        return key, plaintext

    async def list(self, principal: Principal) -> list[ApiKey]:
        _require_user(principal)
        async with TenantScope.of(principal).session(self.db) as session:
            result = await session.scalars(
                select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id).order_by(ApiKey.created_at, ApiKey.id)
            )
            return list(result)

    async def revoke(self, principal: Principal, key_id: uuid.UUID) -> None:
        """Revoke at once; revoking a revoked key changes nothing. Unknown ids (or another tenant's) are 404."""
        _require_user(principal)
        async with TenantScope.of(principal).session(self.db) as session:
            key = await session.scalar(
                select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id, ApiKey.id == key_id).with_for_update()
            )
            if key is None:
                raise NotFound("no API key with this id")
            if key.revoked_at is not None:
                return
            key.revoked_at = utcnow()
            audit.record(session, tenant_id=principal.tenant_id, actor=principal, action=AuditAction.API_KEY_REVOKED,
                         target_type="api_key", target_id=key.id)

    # -- authenticating a request --------------------------------------------------------------------

    async def authenticate(self, token: str) -> tuple[Principal, int]:
        """The caller a key stands for, and its rate limit per minute; 401 for anything not a live key."""
        key_id = _parse(token)
        # No tenant yet: the one cross-tenant lookup is the SECURITY DEFINER function, by key id only.
        async with TenantScope.of(None).session(self.db) as session:
            row = (await session.execute(_FIND_KEY, {"id": key_id})).first()
        if row is None or not hmac.compare_digest(bytes(row.secret_hash), self._hash(token)):
            raise Unauthenticated("the API key is invalid or revoked")
        # Never more than the creator's role holds today, whatever was granted at creation.
        held = ROLE_SCOPES.get(row.creator_role, frozenset()) & API_KEY_SCOPES
        principal = Principal(
            kind=PrincipalKind.API_KEY, tenant_id=row.tenant_id, user_id=row.user_id, role="api_key",
            scopes=frozenset(Scope(s) for s in row.scopes if s in held),
            api_key_id=key_id,
        )
        return principal, row.rate_limit_per_minute

    async def record_use(self, principal: Principal) -> None:
        """Keep `last_used_at` to the minute: one write per key per minute, whichever process sees it first."""
        assert principal.api_key_id is not None
        if not await self.redis.set(f"quorum:apikey:used:{principal.api_key_id}", 1, nx=True,
                                    ex=_LAST_USED_EVERY_SECONDS):
            return
        async with TenantScope.of(principal.tenant_id).session(self.db) as session:
            await session.execute(update(ApiKey).where(ApiKey.id == principal.api_key_id).values(last_used_at=utcnow()))

    def _hash(self, plaintext: str) -> bytes:
        # Over the whole key, so the secret is bound to its id.
        return hmac.new(self._hash_key, plaintext.encode(), hashlib.sha256).digest()


def is_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)


def _parse(token: str) -> uuid.UUID:
    body = token[len(API_KEY_PREFIX):]
    encoded, separator, secret = body[:_ID_CHARS], body[_ID_CHARS:_ID_CHARS + 1], body[_ID_CHARS + 1:]
    if not token.startswith(API_KEY_PREFIX) or separator != "_" or not secret or len(token) > 200:
        raise Unauthenticated("the API key is malformed")
    try:
        return decode_key_id(encoded)
    except (binascii.Error, ValueError):
        raise Unauthenticated("the API key is malformed") from None


def _require_user(principal: Principal) -> None:
    if principal.kind is not PrincipalKind.USER or Scope.ACCOUNT not in principal.scopes:
        raise Forbidden("only a signed-in user can manage API keys")


def _check_scopes(scopes: Iterable[str], creator_scopes: frozenset[Scope]) -> frozenset[Scope]:
    """The scopes asked for, if an API key may hold each of them and its creator holds them too."""
    requested = set(scopes)
    allowed = {s.value for s in API_KEY_SCOPES}
    refused = sorted(requested - allowed)
    if refused or not requested:
        detail = f"an API key cannot hold: {', '.join(refused)}" if refused else "name at least one scope"
        raise Unprocessable(detail + f" (allowed: {', '.join(sorted(allowed))})",
                            errors=[{"field": "scopes", "message": detail}])
    beyond = sorted(requested - {s.value for s in creator_scopes})
    if beyond:
        detail = f"your role does not hold: {', '.join(beyond)}"
        raise Forbidden(detail, errors=[{"field": "scopes", "message": detail}])
    return frozenset(Scope(s) for s in requested)
