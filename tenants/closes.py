"""Close now: one position, every position of a bot, or everything of the tenant (panic), at market.

The API side of it. A request is stored with what it closes (its targets), handed to a worker by id
(`quorum.close_positions`, which takes each bot's lock, so a running cycle and a close never race, and
sends one reduce-only order per position under a client order id derived from the position: a second
ask to close the same position can only find that order, never make another), and waited for a few
seconds; the answer is the request as it stands, with one result per position once it is done.

The caller's `Idempotency-Key` names the request for a day: the same key with the same ask returns the
same request (and sends nothing more); with a different ask it is refused. A request still pending
long after it was handed over (its worker died) is handed over again, by the retried ask or by the
beat's sweep (`workers/close.py`); doing it twice is safe for the reason above.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import hashlib
import re
import time
import uuid
from typing import Protocol

import msgspec
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import Database
from tenants import audit
from tenants.audit import AuditAction
from tenants.errors import Forbidden, NotFound, Unprocessable
from tenants.models import Bot, CloseRequest, CloseScope, CloseStatus, Position, User
from tenants.passwords import PasswordHashing
from tenants.principal import Principal, PrincipalKind
from tenants.scope import TenantScope

IDEMPOTENCY_WINDOW = datetime.timedelta(hours=24)
# RFC 9110 field values a client would use as a key: 1 to 255 visible ASCII characters.
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class CloseGateway(Protocol):
    """Hands a close request to a worker (api/task_client.py: Celery, by ids)."""

    async def enqueue(self, tenant_id: uuid.UUID, close_id: uuid.UUID) -> None: ...


class CloseTarget(msgspec.Struct, frozen=True, rename="camel"):
    position_id: uuid.UUID
    bot_id: uuid.UUID


class CloseOutcome(enum.StrEnum):
    """What became of one position of a close request."""

    CLOSED = "closed"  # our order closed it
    CLOSED_BY_EXCHANGE = "closed_by_exchange"  # it was gone already: a stop or target, or closed by hand
    REJECTED = "rejected"  # the exchange refused the order (the detail says why)
    UNKNOWN = "unknown"  # sent, no answer yet: the bot's next cycle looks it up
    FAILED = "failed"  # not sent: no credentials, no price, the exchange unreachable


class CloseResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    position_id: uuid.UUID
    bot_id: uuid.UUID
    symbol: str
    side: str
    amount: str
    status: CloseOutcome
    client_order_id: str | None = None
    exit_price: str | None = None
    realized_pnl: str | None = None
    detail: str = ""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def check_idempotency_key(key: str | None) -> str | None:
    if key is not None and not _KEY.fullmatch(key):
        detail = "1 to 255 visible ASCII characters"
        raise Unprocessable(f"Idempotency-Key must be {detail}",
                            errors=[{"field": "Idempotency-Key", "message": detail}])
    return key


class CloseService:
    def __init__(self, db: Database, passwords: PasswordHashing, gateway: CloseGateway, *,
                 wait_seconds: float, retry_after_seconds: float) -> None:
        self.db, self.passwords, self.gateway = db, passwords, gateway
        self.wait_seconds, self.retry_after = wait_seconds, retry_after_seconds

    async def close_position(self, principal: Principal, position_id: uuid.UUID, key: str | None) -> CloseRequest:
        return await self._ask(principal, CloseScope.POSITION, key, position_id=position_id)

    async def close_bot(self, principal: Principal, bot_id: uuid.UUID, stop: bool, key: str | None) -> CloseRequest:
        return await self._ask(principal, CloseScope.BOT, key, bot_id=bot_id, stop=stop)

    async def close_all(self, principal: Principal, password: str, key: str | None) -> CloseRequest:
        """Panic: every open position of the tenant, and every bot stopped. The caller's password confirms it."""
        if principal.kind is not PrincipalKind.USER:
            raise Forbidden("closing everything needs a signed-in user's password; an API key cannot do it")
        async with TenantScope.of(principal).session(self.db) as session:
            password_hash = await session.scalar(select(User.password_hash).where(User.id == principal.user_id))
        if not await self.passwords.verify(password_hash, password):
            raise Forbidden("the password is wrong: nothing was closed")
        return await self._ask(principal, CloseScope.TENANT, key, stop=True)

    async def get(self, principal: Principal, close_id: uuid.UUID) -> CloseRequest:
        async with TenantScope.of(principal).session(self.db) as session:
            found = await session.get(CloseRequest, close_id)
        if found is None:
            raise NotFound("no such close request")
        return found

    # -- internals -------------------------------------------------------------------------------

    async def _ask(self, principal: Principal, scope: CloseScope, key: str | None, *,
                   bot_id: uuid.UUID | None = None, position_id: uuid.UUID | None = None,
                   stop: bool = False) -> CloseRequest:
        key = check_idempotency_key(key)
        digest = hashlib.sha256(f"{scope}|{bot_id}|{position_id}|{stop}".encode()).hexdigest()
        for _ in range(2):  # a second pass only when a concurrent ask with the same key won the insert
            try:
                request, fresh = await self._store(principal, scope, key, digest, bot_id, position_id, stop)
            except IntegrityError:
                continue
            if fresh:
                await self.gateway.enqueue(principal.tenant_id, request.id)
            return await self._wait(principal, request)
        raise Unprocessable("this Idempotency-Key is being used by another request at this moment")

    async def _store(self, principal: Principal, scope: CloseScope, key: str | None, digest: str,
                     bot_id: uuid.UUID | None, position_id: uuid.UUID | None,
                     stop: bool) -> tuple[CloseRequest, bool]:
        """The request this ask names, and whether it must be handed to a worker (new, or its worker died)."""
        async with TenantScope.of(principal).session(self.db) as session:
            if key is not None:
                existing = await self._by_key(session, key)
                if existing is not None:
                    if existing.request_hash != digest:
                        raise Unprocessable(
                            "this Idempotency-Key was used for a different request; use a new key for a new one",
                            errors=[{"field": "Idempotency-Key", "message": "already used for another ask"}],
                        )
                    stale = (existing.status == CloseStatus.PENDING
                             and existing.enqueued_at < now() - datetime.timedelta(seconds=self.retry_after))
                    if stale:
                        existing.enqueued_at = now()
                    return existing, stale
            targets = await _targets(session, scope, bot_id, position_id)
            if stop:
                stopped = select(Bot.id).where(Bot.is_active) if scope is CloseScope.TENANT else (
                    select(Bot.id).where(Bot.id == bot_id, Bot.is_active))
                for stopped_id in (await session.scalars(stopped)).all():
                    audit.record(session, tenant_id=principal.tenant_id, actor=principal,
                                 action=AuditAction.BOT_STOPPED, target_type="bot", target_id=stopped_id,
                                 details={"wasActive": True, "by": "close"})
                await session.execute(
                    update(Bot).where(Bot.id.in_(stopped)).values(is_active=False, silent_since=None, updated_at=now())
                )
            request = CloseRequest(
                tenant_id=principal.tenant_id, scope=scope, bot_id=bot_id, position_id=position_id, stop_bots=stop,
                idempotency_key=key, request_hash=digest, status=CloseStatus.PENDING,
                targets=[msgspec.to_builtins(t) for t in targets], results=[], canceled_orders=0,
                enqueued_at=now(),
            )
            session.add(request)
            await session.flush()
            audit.record(session, tenant_id=principal.tenant_id, actor=principal, action=AuditAction.CLOSE_REQUESTED,
                         target_type="close_request", target_id=request.id,
                         details={"scope": scope.value, "positions": len(targets), "stopBots": stop,
                                  **({"botId": str(bot_id)} if bot_id else {}),
                                  **({"positionId": str(position_id)} if position_id else {})})
        return request, True

    async def _by_key(self, session: AsyncSession, key: str) -> CloseRequest | None:
        found = await session.scalar(
            select(CloseRequest).where(CloseRequest.idempotency_key == key).with_for_update()
        )
        if found is not None and found.created_at < now() - IDEMPOTENCY_WINDOW:
            found.idempotency_key = None  # a day old: the key is free for a new ask
            await session.flush()
            return None
        return found

    async def _wait(self, principal: Principal, request: CloseRequest) -> CloseRequest:
        """The request once its worker is done with it, or as it stands after `wait_seconds`."""
        deadline = time.monotonic() + self.wait_seconds
        while request.status == CloseStatus.PENDING and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            async with TenantScope.of(principal).connection(self.db, read_only=True) as conn:
                status = await conn.fetchval("SELECT status FROM close_requests WHERE id = $1", request.id)
            if status != CloseStatus.PENDING:
                return await self.get(principal, request.id)
        return request


async def _targets(session: AsyncSession, scope: CloseScope, bot_id: uuid.UUID | None,
                   position_id: uuid.UUID | None) -> list[CloseTarget]:
    """The open positions the ask closes. A position or bot that is not this tenant's is not found."""
    if scope is CloseScope.POSITION:
        position = await session.get(Position, position_id)
        if position is None:
            raise NotFound("no such position")
        if position.status != "open":
            raise Unprocessable("the position is already closed",
                                errors=[{"field": "positionId", "message": "already closed"}])
        return [CloseTarget(position.id, position.bot_id)]
    query = select(Position.id, Position.bot_id).where(Position.status == "open").order_by(Position.id)
    if scope is CloseScope.BOT:
        if await session.scalar(select(Bot.id).where(Bot.id == bot_id)) is None:
            raise NotFound("no such bot")
        query = query.where(Position.bot_id == bot_id)
    return [CloseTarget(row.id, row.bot_id) for row in (await session.execute(query)).all()]
