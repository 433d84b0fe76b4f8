"""The `quorum.check_exchange_key` task's work: ask the exchange what a just-linked key may do.

The task carries ids only; the secret is decrypted here, used, and forgotten.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from tenants.exchange_keys import KeyCheckOutcome, key_contexts
from tenants.models import ExchangeKey
from tenants.scope import TenantScope
from workers.exchanges.errors import AuthenticationFailed, ExchangeError, PermissionDenied
from workers.exchanges.factory import Credentials, open_exchange, parse_overrides
from workers.runtime import WorkerRuntime


async def check_exchange_key(rt: WorkerRuntime, tenant_id: uuid.UUID, key_id: uuid.UUID) -> KeyCheckOutcome:
    async with TenantScope.of(tenant_id).session(rt.database) as session:
        key = await session.scalar(select(ExchangeKey).where(ExchangeKey.id == key_id))
        if key is None:
            return KeyCheckOutcome(ok=False, error="missing")
        api_ctx, secret_ctx, pass_ctx = key_contexts(key)
        credentials = Credentials(
            api_key=await rt.vault.decrypt(session, api_ctx, key.api_key_ciphertext or b""),
            secret=await rt.vault.decrypt(session, secret_ctx, key.secret_ciphertext or b""),
            passphrase=(await rt.vault.decrypt(session, pass_ctx, key.passphrase_ciphertext)
                        if key.passphrase_ciphertext else None),
        )
        exchange_id, testnet = key.exchange, key.testnet
    exchange = open_exchange(exchange_id, credentials, testnet=testnet,
                             overrides=parse_overrides(rt.settings.exchange_api_overrides))
    try:
        check = await exchange.check_key()
    except (AuthenticationFailed, PermissionDenied) as exc:
        return KeyCheckOutcome(ok=False, error="rejected", notes=(type(exc).__name__,))
    except ExchangeError as exc:
        return KeyCheckOutcome(ok=False, error="unavailable", notes=(type(exc).__name__,))
    finally:
        await exchange.close()
    return KeyCheckOutcome(ok=True, can_withdraw=check.can_withdraw, ip_whitelisted=check.ip_whitelisted,
                          can_trade=check.can_trade, notes=tuple(check.notes))
