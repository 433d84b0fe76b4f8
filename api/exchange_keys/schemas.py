"""Wire types of the exchange-keys API. Secrets go in; only a mask ever comes out."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated

import msgspec

from api.wire import Request, Response, text
from tenants.exchange_catalog import SUPPORTED_EXCHANGES

# The schema lists exactly the exchanges the service accepts: `paper` and every exchange ccxt speaks.
ExchangeId = enum.StrEnum("ExchangeId", {name: name for name in sorted(SUPPORTED_EXCHANGES)})


class LinkExchangeKeyRequest(Request):
    exchange: ExchangeId
    label: text(1, 80)
    api_key: text(1, 256) | None = None
    secret: text(1, 512) | None = None
    passphrase: text(1, 256) | None = None
    testnet: bool = False


class ExchangeKeyView(Response):
    id: uuid.UUID
    exchange: str
    label: str
    testnet: bool
    api_key_mask: Annotated[str, msgspec.Meta(description="the last 4 characters of the API key, masked")]
    can_withdraw: bool | None
    ip_whitelisted: bool | None
    can_trade: bool | None
    warnings: list[str]
    created_at: datetime.datetime
