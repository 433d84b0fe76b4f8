"""Wire types of the exchange-keys API. Secrets go in; only a mask ever comes out."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

from api.accounts.schemas import Request, Response, text

ExchangeId = Annotated[str, msgspec.Meta(min_length=2, max_length=40, pattern=r"^[a-z0-9]+$",
                                         description="`paper`, `bybit`, `binance` or any other ccxt exchange id")]


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
