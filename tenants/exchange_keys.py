"""Linked exchange keys: stored encrypted, checked with the exchange, shown only as a mask."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants import audit
from tenants.audit import AuditAction
from tenants.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from tenants.exchange_catalog import PAPER, is_supported
from tenants.models import Bot, ExchangeKey
from tenants.principal import Principal
from tenants.scope import TenantScope
from tenants.vault import FieldContext, Vault

log = logging.getLogger(__name__)

NO_IP_WHITELIST = "no_ip_whitelist"
PERMISSIONS_UNKNOWN = "permissions_unknown"


class KeyCheckOutcome(msgspec.Struct, frozen=True, rename="camel"):
    """What the exchange said of a key (from a worker; it never carries key material)."""

    ok: bool
    can_withdraw: bool | None = None
    ip_whitelisted: bool | None = None
    can_trade: bool | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None  # "rejected": the exchange refused the key; "unavailable" or "missing"


class KeyCheckGateway(Protocol):
    """Asks a worker to check a stored key with its exchange (the API never holds adapter code)."""

    async def check(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> KeyCheckOutcome: ...


class NewExchangeKey(msgspec.Struct, frozen=True):
    exchange: str
    label: str
    api_key: str | None
    secret: str | None
    passphrase: str | None
    testnet: bool


def key_contexts(key: ExchangeKey) -> tuple[FieldContext, FieldContext, FieldContext]:
    """The associated data of the key's three encrypted fields: bound to tenant, row and field."""
    return tuple(  # type: ignore[return-value]
        FieldContext(tenant_id=key.tenant_id, table="exchange_keys", row_id=key.id, field=field)
        for field in ("api_key", "secret", "passphrase")
    )


class ExchangeKeyService:
    def __init__(self, db: Database, vault: Vault, checker: KeyCheckGateway) -> None:
        self.db = db
        self.vault = vault
        self.checker = checker

    async def link(self, principal: Principal, new: NewExchangeKey) -> ExchangeKey:
        if not is_supported(new.exchange):
            raise Unprocessable(f"unsupported exchange {new.exchange!r}",
                                errors=[{"field": "exchange", "message": "not an exchange Quorum can trade on"}])
        if new.exchange == PAPER:
            return await self._store(principal, new, status="active")
        missing = [f for f, v in (("apiKey", new.api_key), ("secret", new.secret)) if not v]
        if missing:
            raise Unprocessable(f"{' and '.join(missing)} required for {new.exchange}",
                                errors=[{"field": f, "message": "required for a real exchange"} for f in missing])
        key = await self._store(principal, new, status="checking")
        try:
            outcome = await self.checker.check(principal.tenant_id, key.id)
        except Exception:
            await self._destroy(principal, key.id)
            log.warning("exchange key check unavailable", exc_info=True)
            raise ServiceUnavailable("the key could not be checked with the exchange right now; try again") from None
        if outcome.error == "rejected":
            await self._refuse(principal, key, "rejected_by_exchange")
            raise Unprocessable("the exchange rejected this API key: check the key, the secret and the testnet flag",
                                errors=[{"field": "apiKey", "message": "rejected by the exchange"}])
        if not outcome.ok:
            await self._destroy(principal, key.id)
            raise ServiceUnavailable("the exchange could not be reached to check the key; try again")
        if outcome.can_withdraw:
            await self._refuse(principal, key, "withdrawal_enabled")
            raise Unprocessable(
                "this API key can withdraw funds. Quorum never needs that: create a key with trading "
                "permission only (withdrawals disabled) and link that one",
                errors=[{"field": "apiKey", "message": "withdrawal permission must be disabled"}],
            )
        warnings = []
        if outcome.ip_whitelisted is False:
            warnings.append(NO_IP_WHITELIST)
        if outcome.can_withdraw is None:
            warnings.append(PERMISSIONS_UNKNOWN)
        async with TenantScope.of(principal).session(self.db) as session:
            await session.execute(
                update(ExchangeKey).where(ExchangeKey.id == key.id).values(
                    status="active", can_withdraw=outcome.can_withdraw, ip_whitelisted=outcome.ip_whitelisted,
                    can_trade=outcome.can_trade, warnings=warnings,
                )
            )
            audit.record(session, tenant_id=principal.tenant_id, actor=principal,
                         action=AuditAction.EXCHANGE_KEY_LINKED, target_type="exchange_key", target_id=key.id,
                         details={"exchange": new.exchange, "warnings": warnings})
            return await session.get_one(ExchangeKey, key.id, populate_existing=True)

    async def list(self, principal: Principal) -> list[ExchangeKey]:
        async with TenantScope.of(principal).session(self.db) as session:
            rows = await session.scalars(
                select(ExchangeKey).where(ExchangeKey.status == "active").order_by(ExchangeKey.created_at.desc())
            )
            return list(rows)

    async def get(self, principal: Principal, key_id: uuid.UUID) -> ExchangeKey:
        async with TenantScope.of(principal).session(self.db) as session:
            key = await session.scalar(
                select(ExchangeKey).where(ExchangeKey.id == key_id, ExchangeKey.status == "active")
            )
        if key is None:
            raise NotFound("no such exchange key")
        return key

    async def delete(self, principal: Principal, key_id: uuid.UUID) -> None:
        key = await self.get(principal, key_id)
        try:
            async with TenantScope.of(principal).session(self.db) as session:
                in_use = await session.scalar(select(Bot.id).where(Bot.exchange_key_id == key_id).limit(1))
                if in_use is not None:
                    raise Conflict("a bot uses this key: point the bot at another key or delete it first")
                await self._shred(session, key_id)
                audit.record(session, tenant_id=principal.tenant_id, actor=principal,
                             action=AuditAction.EXCHANGE_KEY_DELETED, target_type="exchange_key", target_id=key_id,
                             details={"exchange": key.exchange})
        except IntegrityError:
            raise Conflict("a bot uses this key: point the bot at another key or delete it first") from None

    # -- internals -------------------------------------------------------------------------------

    async def _store(self, principal: Principal, new: NewExchangeKey, status: str) -> ExchangeKey:
        key = ExchangeKey(id=uuid7(), tenant_id=principal.tenant_id, exchange=new.exchange, label=new.label,
                          testnet=new.testnet, status=status, warnings=[])
        async with TenantScope.of(principal).session(self.db) as session:
            if new.api_key and new.secret and new.exchange != PAPER:
                api_ctx, secret_ctx, pass_ctx = key_contexts(key)
                key.api_key_last4 = new.api_key[-4:]
                key.api_key_ciphertext = await self.vault.encrypt(session, api_ctx, new.api_key)
                key.secret_ciphertext = await self.vault.encrypt(session, secret_ctx, new.secret)
                if new.passphrase:
                    key.passphrase_ciphertext = await self.vault.encrypt(session, pass_ctx, new.passphrase)
            session.add(key)
            if status == "active":
                audit.record(session, tenant_id=principal.tenant_id, actor=principal,
                             action=AuditAction.EXCHANGE_KEY_LINKED, target_type="exchange_key", target_id=key.id,
                             details={"exchange": new.exchange})
        return key

    async def _refuse(self, principal: Principal, key: ExchangeKey, reason: str) -> None:
        async with TenantScope.of(principal).session(self.db) as session:
            await self._shred(session, key.id)
            audit.record(session, tenant_id=principal.tenant_id, actor=principal,
                         action=AuditAction.EXCHANGE_KEY_REFUSED, target_type="exchange_key", target_id=key.id,
                         details={"exchange": key.exchange, "reason": reason})

    async def _destroy(self, principal: Principal, key_id: uuid.UUID) -> None:
        async with TenantScope.of(principal).session(self.db) as session:
            await self._shred(session, key_id)

    @staticmethod
    async def _shred(session: AsyncSession, key_id: uuid.UUID) -> None:
        # Overwrite the ciphertext before deleting the row, so no live row version keeps it.
        await session.execute(update(ExchangeKey).where(ExchangeKey.id == key_id).values(
            api_key_ciphertext=None, secret_ciphertext=None, passphrase_ciphertext=None))
        await session.execute(delete(ExchangeKey).where(ExchangeKey.id == key_id))
