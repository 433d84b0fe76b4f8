"""Build the adapter for a linked key: Bybit through pybit, every other exchange through ccxt."""

from __future__ import annotations

import msgspec

from workers.exchanges.base import Exchange
from workers.exchanges.bybit import BybitExchange
from workers.exchanges.ccxt_exchange import CcxtExchange


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
