"""Exchange keys: link (encrypted and checked with the exchange), list, get, delete."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.auth import requires
from api.dependencies import CurrentPrincipal, ExchangeKeys
from api.exchange_keys.schemas import ExchangeKeyView, LinkExchangeKeyRequest
from api.openapi import AUTHENTICATED, BACKEND, BEARER, BODY, problems
from tenants.exchange_keys import NewExchangeKey
from tenants.models import ExchangeKey
from tenants.principal import Scope


def view(key: ExchangeKey) -> ExchangeKeyView:
    return ExchangeKeyView(
        id=key.id, exchange=key.exchange, label=key.label, testnet=key.testnet,
        api_key_mask=f"••••{key.api_key_last4}" if key.api_key_last4 else "",
        can_withdraw=key.can_withdraw, ip_whitelisted=key.ip_whitelisted, can_trade=key.can_trade,
        warnings=list(key.warnings or []), created_at=key.created_at,
    )


class ExchangeKeyController(Controller):
    path = "/v1/exchange-keys"
    tags = ["exchange keys"]
    security = BEARER

    @post("/", status_code=HTTP_201_CREATED, guards=[requires(Scope.KEYS_WRITE)],
          responses=problems(BODY, AUTHENTICATED, BACKEND),
          summary="Link an exchange key: stored encrypted, checked with the exchange; withdrawal keys are refused")
    async def link(self, data: LinkExchangeKeyRequest, principal: CurrentPrincipal,
                   exchange_keys: ExchangeKeys) -> ExchangeKeyView:
        new = NewExchangeKey(exchange=str(data.exchange), label=data.label, api_key=data.api_key, secret=data.secret,
                             passphrase=data.passphrase, testnet=data.testnet)
        return view(await exchange_keys.link(principal, new))

    @get("/", guards=[requires(Scope.KEYS_READ)], responses=problems(AUTHENTICATED, BACKEND),
         summary="The tenant's linked exchange keys (masked)")
    async def list_keys(self, principal: CurrentPrincipal, exchange_keys: ExchangeKeys) -> list[ExchangeKeyView]:
        return [view(k) for k in await exchange_keys.list(principal)]

    @get("/{key_id:uuid}", guards=[requires(Scope.KEYS_READ)], responses=problems(AUTHENTICATED, BACKEND, 404),
         summary="One linked exchange key (masked)")
    async def get_key(self, key_id: uuid.UUID, principal: CurrentPrincipal,
                      exchange_keys: ExchangeKeys) -> ExchangeKeyView:
        return view(await exchange_keys.get(principal, key_id))

    @delete("/{key_id:uuid}", status_code=HTTP_204_NO_CONTENT, guards=[requires(Scope.KEYS_WRITE)],
            responses=problems(AUTHENTICATED, BACKEND, 404, 409),
            summary="Unlink a key and destroy its ciphertext (409 while a bot uses it)")
    async def delete_key(self, key_id: uuid.UUID, principal: CurrentPrincipal, exchange_keys: ExchangeKeys) -> None:
        await exchange_keys.delete(principal, key_id)
