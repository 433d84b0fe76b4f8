"""Wire types of the API-keys API (camelCase on the wire, unknown fields rejected)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

from api.wire import Request, Response, text
from tenants.api_keys import MAX_RATE_LIMIT, MIN_RATE_LIMIT, ApiKeyScope

RateLimit = Annotated[int, msgspec.Meta(ge=MIN_RATE_LIMIT, le=MAX_RATE_LIMIT, description="requests a minute")]


class CreateApiKeyRequest(Request):
    name: text(1, 80)
    scopes: Annotated[list[ApiKeyScope], msgspec.Meta(min_length=1, max_length=len(ApiKeyScope),
                                                      description="what the key may do (never `account`)")]
    rate_limit_per_minute: RateLimit | None = None


class ApiKeyView(Response):
    id: uuid.UUID
    name: str
    prefix: Annotated[str, msgspec.Meta(description="the key's non-secret start, to recognise it")]
    scopes: list[str]
    rate_limit_per_minute: int
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None
    revoked_at: datetime.datetime | None


class CreatedApiKey(ApiKeyView):
    key: Annotated[str, msgspec.Meta(description="the whole key: shown this once, store it now")]
