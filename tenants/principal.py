"""Who is calling: a user with a session, or (later) an integrator's API key. Every route sees one type."""

from __future__ import annotations

import enum
import uuid

import msgspec


class Scope(enum.StrEnum):
    ACCOUNT = "account"  # the user's own profile, password and sessions
    BOTS_READ = "bots:read"
    BOTS_WRITE = "bots:write"
    POSITIONS_CLOSE = "positions:close"  # close positions now, at market
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    ACTIVITY_READ = "activity:read"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    AUDIT_READ = "audit:read"


ROLE_SCOPES: dict[str, frozenset[Scope]] = {
    "owner": frozenset(Scope),
    "member": frozenset(Scope) - {Scope.AUDIT_READ},
}


class PrincipalKind(enum.StrEnum):
    USER = "user"
    API_KEY = "api_key"


class Principal(msgspec.Struct, frozen=True):
    kind: PrincipalKind
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    scopes: frozenset[Scope]
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    client_ip: str = ""  # where this request came from (set per request by the API; audit entries carry it)
