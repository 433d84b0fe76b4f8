"""Build the adapter for a linked key: Bybit through pybit, every other exchange through ccxt."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from workers.exchanges.base import Exchange
from workers.exchanges.bybit import BybitExchange
from workers.exchanges.ccxt_exchange import CcxtExchange
from workers.exchanges.paper import PAPER, PaperExchange, parse_balances
from workers.market.candles import Candles


class Credentials(msgspec.Struct, frozen=True):
    """Decrypted key material. Lives only in worker memory for the length of one task."""

    api_key: str
    secret: str
    passphrase: str | None = None

    def __repr__(self) -> str:  # never print key material, even in a traceback's locals
        return f"Credentials(api_key=…{self.api_key[-4:]})"


def parse_overrides(setting: str) -> dict[str, str]:
    """`EXCHANGE_API_OVERRIDES="bybit=http://127.0.0.1:9000,binance=..."`: test servers in place of the real APIs."""
    pairs = (entry.split("=", 1) for entry in setting.split(",") if "=" in entry)
    return {name.strip(): origin.strip() for name, origin in pairs}


def open_exchange(exchange: str, credentials: Credentials, *, testnet: bool, overrides: dict[str, str]) -> Exchange:
    origin = overrides.get(exchange)
    if exchange == "bybit":
        return BybitExchange(api_key=credentials.api_key, secret=credentials.secret, testnet=testnet, endpoint=origin)
    return CcxtExchange(exchange, api_key=credentials.api_key, secret=credentials.secret,
                        password=credentials.passphrase, sandbox=testnet, api_origin=origin)


def open_trading_exchange(
    database: Any,
    settings: Any,
    exchange: str,
    credentials: Credentials | None,
    testnet: bool,
    tenant_id: uuid.UUID,
    bot_id: uuid.UUID,
    prices: Mapping[str, Candles],
) -> Exchange:
    """The exchange a bot's cycle trades on: its own paper account, or its linked key's exchange."""
    if exchange == PAPER:
        return PaperExchange(
            database, tenant_id, bot_id, prices,
            starting_balances=parse_balances(settings.paper_starting_balances),
            fee_pct=settings.paper_fee_pct, slippage_pct=settings.paper_slippage_pct,
        )
    if credentials is None:
        raise ValueError("a live exchange needs credentials")
    overrides = parse_overrides(settings.exchange_api_overrides)
    return open_exchange(exchange, credentials, testnet=testnet, overrides=overrides)
