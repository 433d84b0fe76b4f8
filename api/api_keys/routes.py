"""API keys: a signed-in user creates (the key is shown once), lists and revokes keys for integrators."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, delete, get, post
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.api_keys.schemas import ApiKeyView, CreateApiKeyRequest, CreatedApiKey
from api.auth import requires
from api.dependencies import ApiKeys, CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, BODY, problems
from tenants.api_keys import display_prefix
from tenants.models import ApiKey
from tenants.principal import Scope


def _fields(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": display_prefix(key.id), "scopes": list(key.scopes),
            "rate_limit_per_minute": key.rate_limit_per_minute, "created_at": key.created_at,
            "last_used_at": key.last_used_at, "revoked_at": key.revoked_at}


class ApiKeyController(Controller):
    path = "/v1/api-keys"
    tags = ["api-keys"]
    # Managing keys is the account's business: an API key itself never holds `account`, so it gets 403.
    guards = [requires(Scope.ACCOUNT)]
    security = BEARER

    @post("/", status_code=HTTP_201_CREATED, summary="Create an API key; the response shows it this once",
          responses=problems(BODY, AUTHENTICATED, BACKEND, 429))
    async def create(self, data: CreateApiKeyRequest, principal: CurrentPrincipal, api_keys: ApiKeys) -> CreatedApiKey:
        key, plaintext = await api_keys.create(principal, data.name, [s.value for s in data.scopes],
                                               data.rate_limit_per_minute)
        return CreatedApiKey(key=plaintext, **_fields(key))

    @get("/", summary="The tenant's API keys (never their secrets)", responses=problems(AUTHENTICATED, BACKEND, 429))
    async def list_keys(self, principal: CurrentPrincipal, api_keys: ApiKeys) -> list[ApiKeyView]:
        return [ApiKeyView(**_fields(key)) for key in await api_keys.list(principal)]

    @delete("/{key_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="Revoke an API key; it stops working at once",
            responses=problems(AUTHENTICATED, BACKEND, 404, 429))
    async def revoke(self, key_id: uuid.UUID, principal: CurrentPrincipal, api_keys: ApiKeys) -> None:
        await api_keys.revoke(principal, key_id)
