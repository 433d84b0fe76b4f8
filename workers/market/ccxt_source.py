"""Live OHLCV from any exchange ccxt speaks, through its async API and public endpoints (no key).

One ccxt client per exchange id lives for the life of the source and is closed by `close()`; ccxt
errors become the market-data errors of `workers.market.cache`, which say whether to retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import numpy as np

from workers.ccxt_origin import with_api_origin
from workers.market.cache import (
    MarketDataError,
    MarketDataUnavailable,
    RateLimited,
    UnknownMarket,
    wall_clock_ms,
)
from workers.market.candles import TIMEFRAME_MS, Candles


class CcxtOhlcvSource:
    """An `OhlcvSource` over ccxt: the last `limit` candles closed by `until_ms` (default: now).

    `api_origins` maps an exchange id to an origin such as `http://127.0.0.1:8080` that replaces the
    scheme and host of every entry in that exchange's `urls['api']` (paths are kept): used to point
    the real client at a local stand-in of the exchange in tests.

    Run it on one long-lived event loop per process; code that starts a loop per task (asyncio.run)
    should `await close()` before the loop ends. Markets are loaded once per exchange and kept.
    """

    def __init__(
        self,
        *,
        api_origins: Mapping[str, str] | None = None,
        timeout_ms: int = 10_000,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._api_origins = dict(api_origins or {})
        self._timeout_ms = timeout_ms
        self._clock = clock
        self._clients: dict[str, tuple[ccxt_async.Exchange, asyncio.AbstractEventLoop]] = {}
        # Markets outlive clients: a new client (after close, or on a new event loop) skips reloading them.
        self._markets: dict[str, tuple[Any, Any]] = {}

    async def fetch_ohlcv(
        self, exchange: str, symbol: str, timeframe: str, *, limit: int = 500, until_ms: int | None = None
    ) -> Candles:
        """The last `limit` candles of `symbol` closed by `until_ms` (default: now), paged as needed."""
        client = self._client(exchange)
        try:
            await client.load_markets()
            self._markets.setdefault(exchange, (client.markets, client.currencies))
            if not client.has.get("fetchOHLCV"):
                raise UnknownMarket(f"{exchange} offers no OHLCV")
            if timeframe not in TIMEFRAME_MS or timeframe not in (client.timeframes or {}):
                raise UnknownMarket(f"{exchange} has no {timeframe} candles")
            client.market(symbol)  # BadSymbol now, before any request
            rows = await self._closed_rows(client, symbol, timeframe, limit, until_ms)
        except MarketDataError:
            raise
        except ccxt.BaseError as exc:
            raise _market_data_error(client, exc) from exc
        return _to_candles(symbol, timeframe, rows)

    async def close(self) -> None:
        """Close every exchange client (their HTTP sessions); the source can be used again afterwards."""
        clients, self._clients = self._clients, {}
        loop = asyncio.get_running_loop()
        for client, client_loop in clients.values():
            if client_loop is loop:  # a session of a finished loop cannot be closed from this one
                await client.close()

    async def __aenter__(self) -> CcxtOhlcvSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _client(self, exchange: str) -> ccxt_async.Exchange:
        loop = asyncio.get_running_loop()
        previous = self._clients.get(exchange)
        if previous is not None and previous[1] is loop:
            return previous[0]
        if exchange not in ccxt_async.exchanges:
            raise UnknownMarket(f"the exchange {exchange!r} is not supported")
        client = getattr(ccxt_async, exchange)({"enableRateLimit": True, "timeout": self._timeout_ms})
        origin = self._api_origins.get(exchange)
        if origin is not None:
            client.urls["api"] = with_api_origin(client.urls["api"], origin)
        if exchange in self._markets:
            client.set_markets(*self._markets[exchange])
        # A client's HTTP session belongs to the event loop it first ran on: a new loop gets a new client.
        self._clients[exchange] = (client, loop)
        return client

    async def _closed_rows(
        self, client: ccxt_async.Exchange, symbol: str, timeframe: str, limit: int, until_ms: int | None
    ) -> list[list[Any]]:
        tf_ms = client.parse_timeframe(timeframe) * 1000
        decided_at = self._clock() if until_ms is None else until_ms
        # Candles that opened before this boundary had closed by `decided_at`; the forming one is left out.
        boundary = decided_at // tf_ms * tf_ms
        since = boundary - limit * tf_ms
        rows: list[list[Any]] = []
        # Exchanges cap candles per request (Binance spot: 1000), so page forward until the boundary.
        while len(rows) < limit and since < boundary:
            page = await client.fetch_ohlcv(symbol, timeframe, since=since, limit=limit - len(rows))
            page = [row for row in page if row[0] >= since and row[0] + tf_ms <= decided_at]
            if not page:
                break
            rows.extend(page)
            since = int(page[-1][0]) + tf_ms
        return rows[-limit:]


def _to_candles(symbol: str, timeframe: str, rows: list[list[Any]]) -> Candles:
    # dtype=float turns a missing value (None) into NaN instead of an object array.
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 6)
    columns = np.ascontiguousarray(table[:, 1:].T)
    return Candles(symbol, timeframe, table[:, 0].astype(np.int64), *columns)


def _market_data_error(client: ccxt_async.Exchange, exc: ccxt.BaseError) -> MarketDataError:
    message = f"{client.id}: {type(exc).__name__}: {exc}"
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RateLimited(message, _retry_after_s(client))
    if isinstance(exc, ccxt.OperationFailed):  # network, timeout, exchange down or busy: may work later
        return MarketDataUnavailable(message, _retry_after_s(client))
    if isinstance(exc, ccxt.BadSymbol | ccxt.NotSupported):
        return UnknownMarket(message)
    return MarketDataError(message)


def _retry_after_s(client: ccxt_async.Exchange) -> float | None:
    headers = client.last_response_headers or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
