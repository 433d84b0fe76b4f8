"""The platform operators' view: every tenant and user, deactivating a user, and the system's health.

An operator is a user listed in `platform_admins`, which only `quorum admin grant EMAIL` writes (as the
database owner); being a tenant's owner gives nothing here. Every cross-tenant read or write goes
through a SECURITY DEFINER function (migration 0005) that itself checks that the caller holds a live
session of an operator, so the application role never reads another tenant's rows by itself.

System status reads Redis directly: Celery's queue lists, the dispatcher's last tick and the LLM
circuit breakers' keys, so the API imports nothing from the workers.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Awaitable, Callable

import msgspec
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants.errors import Forbidden, NotFound, Unprocessable
from tenants.principal import Principal, PrincipalKind
from tenants.scope import TenantScope

# Written by the dispatcher (workers/dispatch.py) and the LLM circuit breaker (workers/brain/breaker.py);
# tests/test_admin.py checks these match theirs.
DISPATCH_LAST_TICK_KEY = "quorum:dispatch:last_tick"
LLM_BREAKER_PREFIX = "quorum:llm-breaker:"
# Celery's Redis transport: one list per queue (plus one per priority step) and a hash of unacked messages.
DEFAULT_QUEUE = "celery"
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED_KEY = "unacked"
_BINDING_PREFIX = "_kombu.binding."

_IS_ADMIN = text("SELECT is_platform_admin(:user, :session)")
_TENANTS = text("SELECT * FROM admin_list_tenants(:user, :session, :limit, :before)")
_USERS = text("SELECT * FROM admin_list_users(:user, :session, :tenant, :limit, :before)")
_SET_ACTIVE = text("SELECT * FROM admin_set_user_active(:user, :session, :target, :active, :audit_id, :ip)")


class AdminTenant(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    is_active: bool
    created_at: datetime.datetime
    users: int
    bots: int
    active_bots: int


class AdminUser(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    role: str
    is_active: bool
    created_at: datetime.datetime
    last_login_at: datetime.datetime | None
    platform_admin: bool


class AdminPage(msgspec.Struct, frozen=True):
    items: list
    next_cursor: uuid.UUID | None


class QueueDepth(msgspec.Struct, frozen=True):
    name: str
    waiting: int


class BreakerStatus(msgspec.Struct, frozen=True):
    name: str  # the upstream, e.g. the model's base URL
    state: str  # closed | open | half_open
    recent_failures: int
    open_until: datetime.datetime | None


class SystemStatus(msgspec.Struct, frozen=True, kw_only=True):
    queues: list[QueueDepth]
    unacked: int  # taken by a worker, not yet acknowledged
    workers: list[str]  # names of workers that answered the ping
    last_dispatch_at: datetime.datetime | None
    dispatch_age_seconds: float | None
    llm_breakers: list[BreakerStatus]


# Asks the workers to answer a ping: their names. Celery's remote control, behind api/task_client.py.
WorkerPing = Callable[[float], Awaitable[list[str]]]


class AdminService:
    def __init__(self, db: Database, redis: Redis, ping_workers: WorkerPing, ping_timeout: float = 1.0) -> None:
        self.db = db
        self.redis = redis
        self.ping_workers = ping_workers
        self.ping_timeout = ping_timeout

    async def is_admin(self, principal: Principal) -> bool:
        if principal.kind is not PrincipalKind.USER or principal.session_id is None:
            return False  # an API key never operates the platform
        async with TenantScope.of(None).session(self.db) as session:
            return bool(await session.scalar(_IS_ADMIN, {"user": principal.user_id, "session": principal.session_id}))

    async def tenants(self, principal: Principal, limit: int, cursor: uuid.UUID | None) -> AdminPage:
        rows = await self._call(_TENANTS, principal, limit=limit + 1, before=cursor)
        return _page([AdminTenant(**r) for r in rows], limit)

    async def users(self, principal: Principal, tenant_id: uuid.UUID | None, limit: int,
                    cursor: uuid.UUID | None) -> AdminPage:
        rows = await self._call(_USERS, principal, tenant=tenant_id, limit=limit + 1, before=cursor)
        return _page([AdminUser(**r) for r in rows], limit)

    async def set_user_active(self, principal: Principal, user_id: uuid.UUID, active: bool) -> AdminUser:
        """(De)activate a user in any tenant. Deactivation ends their sessions, tokens and API keys at once."""
        if user_id == principal.user_id and not active:
            raise Unprocessable("an operator cannot deactivate themself",
                                errors=[{"field": "userId", "message": "that is you"}])
        rows = await self._call(_SET_ACTIVE, principal, target=user_id, active=active, audit_id=uuid7(),
                                ip=principal.client_ip)
        if not rows:
            raise NotFound("no user with this id")
        return AdminUser(**rows[0])

    async def _call(self, statement, principal: Principal, **params: object) -> list[dict]:  # noqa: ANN001
        try:
            async with TenantScope.of(None).session(self.db) as session:
                result = await session.execute(
                    statement, {"user": principal.user_id, "session": principal.session_id, **params}
                )
                return [dict(r) for r in result.mappings()]
        except DBAPIError as exc:
            if _sqlstate(exc) == "42501":  # the function's own check: not (or no longer) an operator
                raise Forbidden("platform operators only") from None
            raise

    async def status(self) -> SystemStatus:
        """Queue depths, live workers, the dispatcher's last tick and the LLM breakers, read from Redis."""
        queues = await self._queues()
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in queues:
                pipe.llen(name)
                for step in _PRIORITY_STEPS:
                    pipe.llen(f"{name}{_PRIORITY_SEPARATOR}{step}")
            pipe.hlen(_UNACKED_KEY)
            pipe.get(DISPATCH_LAST_TICK_KEY)
            answers = await pipe.execute()
        per_queue = 1 + len(_PRIORITY_STEPS)
        depths = [QueueDepth(name=name, waiting=sum(answers[i * per_queue:(i + 1) * per_queue]))
                  for i, name in enumerate(queues)]
        unacked, tick = answers[-2], answers[-1]
        last_tick = float(tick) if tick else None
        workers = await self.ping_workers(self.ping_timeout)
        return SystemStatus(
            queues=depths,
            unacked=int(unacked or 0),
            workers=sorted(workers),
            last_dispatch_at=datetime.datetime.fromtimestamp(last_tick, datetime.UTC) if last_tick else None,
            dispatch_age_seconds=round(time.time() - last_tick, 3) if last_tick else None,
            llm_breakers=await self._breakers(),
        )

    async def _queues(self) -> list[str]:
        """The default queue and every queue Celery has bound (kombu keeps the bindings in Redis sets)."""
        names = {DEFAULT_QUEUE}
        async for key in self.redis.scan_iter(match=f"{_BINDING_PREFIX}*", count=200):
            exchange = key.decode()[len(_BINDING_PREFIX):]
            if "pidbox" in exchange or exchange.startswith("celeryev"):
                continue  # remote-control and event fan-outs, not work queues
            for member in await self.redis.smembers(key):
                names.add(member.decode().split(_PRIORITY_SEPARATOR)[-1])
        return sorted(n for n in names if n)

    async def _breakers(self) -> list[BreakerStatus]:
        found: dict[str, dict[str, bytes | None]] = {}
        async for key in self.redis.scan_iter(match=f"{LLM_BREAKER_PREFIX}*", count=200):
            name, _, part = key.decode()[len(LLM_BREAKER_PREFIX):].rpartition(":")
            if part in ("failures", "open-until"):
                found.setdefault(name, {})[part] = None
        now_ms = time.time() * 1000
        breakers = []
        for name in sorted(found):
            failures, open_until = await self.redis.mget(f"{LLM_BREAKER_PREFIX}{name}:failures",
                                                         f"{LLM_BREAKER_PREFIX}{name}:open-until")
            until = int(open_until) if open_until else None
            state = "closed" if until is None else "open" if now_ms < until else "half_open"
            breakers.append(BreakerStatus(
                name=name, state=state, recent_failures=int(failures or 0),
                open_until=datetime.datetime.fromtimestamp(until / 1000, datetime.UTC) if until else None,
            ))
        return breakers


def _page(items: list, limit: int) -> AdminPage:
    more = len(items) > limit
    items = items[:limit]
    return AdminPage(items=items, next_cursor=items[-1].id if more else None)


def _sqlstate(exc: DBAPIError) -> str:
    orig = exc.orig
    return str(getattr(orig, "sqlstate", "") or getattr(getattr(orig, "__cause__", None), "sqlstate", "") or "")
