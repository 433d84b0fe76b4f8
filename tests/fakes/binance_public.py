"""A local stand-in for Binance's public REST API: just enough for ccxt to load markets and page klines.

Serves /api/v3/exchangeInfo and /api/v3/klines for spot series, /fapi/v1/exchangeInfo and
/fapi/v1/klines for USDT-margined perpetuals, and an empty /dapi/v1/exchangeInfo. Point a real ccxt
client at it by replacing the origin of its `urls['api']` entries with `FakeBinancePublic.origin`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import numpy as np

from tests.fakes.local_server import LocalHttpServer
from workers.market.candles import TIMEFRAME_MS, Candles


@dataclass
class Fault:
    """An error response the next request will get instead of its answer."""

    status: int
    body: dict[str, object] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class FakeBinancePublic(LocalHttpServer):
    """Binance public endpoints over `series` (spot `BASE/QUOTE`, or perpetual `BASE/QUOTE:QUOTE`)."""

    def __init__(self, series: Iterable[Candles]) -> None:
        self.spot: dict[str, Candles] = {}
        self.linear: dict[str, Candles] = {}
        for candles in series:
            pair, _, settle = candles.symbol.partition(":")
            (self.linear if settle else self.spot)[pair.replace("/", "")] = candles
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        super().__init__()

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _ in self.requests]

    def fail_next(self, status: int, body: dict[str, object] | None = None, **headers: str) -> None:
        with self._lock:
            self.faults.append(Fault(status, body or {}, headers))

    # --- protocol -------------------------------------------------------------------------------

    def _respond(self, path: str, params: dict[str, str]) -> tuple[int, object, dict[str, str]]:
        with self._lock:
            self.requests.append((path, params))
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            return fault.status, fault.body, fault.headers
        if path == "/api/v3/exchangeInfo":
            return 200, _exchange_info([_spot_symbol(c) for c in self.spot.values()]), {}
        if path == "/fapi/v1/exchangeInfo":
            return 200, _exchange_info([_perpetual_symbol(c) for c in self.linear.values()]), {}
        if path == "/dapi/v1/exchangeInfo":
            return 200, _exchange_info([]), {}
        if path == "/api/v3/klines":
            return _klines(self.spot, params, max_limit=1000)
        if path == "/fapi/v1/klines":
            return _klines(self.linear, params, max_limit=1500)
        return 404, {"code": -1000, "msg": f"unknown path {path}"}, {}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, body, headers = fake._respond(url.path, params)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        return Handler


def _exchange_info(symbols: list[dict[str, object]]) -> dict[str, object]:
    return {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [], "symbols": symbols}


def _filters() -> list[dict[str, object]]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "1000.0", "tickSize": "0.00000001"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100000.0", "stepSize": "0.001"},
    ]


def _spot_symbol(candles: Candles) -> dict[str, object]:
    base, quote = candles.symbol.split("/")
    return {
        "symbol": base + quote,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": _filters(),
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


def _perpetual_symbol(candles: Candles) -> dict[str, object]:
    pair, settle = candles.symbol.split(":")
    base, quote = pair.split("/")
    return {
        "symbol": base + quote,
        "pair": base + quote,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": settle,
        "pricePrecision": 4,
        "quantityPrecision": 1,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "filters": _filters(),
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC"],
    }


def _klines(
    markets: dict[str, Candles], params: dict[str, str], *, max_limit: int
) -> tuple[int, object, dict[str, str]]:
    candles = markets.get(params.get("symbol", ""))
    if candles is None:
        return 400, {"code": -1121, "msg": "Invalid symbol."}, {}
    if params.get("interval") != candles.timeframe:
        return 400, {"code": -1120, "msg": "Invalid interval."}, {}
    limit = min(int(params.get("limit", 500)), max_limit)
    ts = candles.timestamp
    lo = int(np.searchsorted(ts, int(params["startTime"]))) if "startTime" in params else 0
    hi = int(np.searchsorted(ts, int(params["endTime"]), side="right")) if "endTime" in params else len(ts)
    # Binance: from startTime forward when given, otherwise the most recent candles up to endTime.
    lo, hi = (lo, min(hi, lo + limit)) if "startTime" in params else (max(lo, hi - limit), hi)
    tf_ms = TIMEFRAME_MS[candles.timeframe]
    rows = [
        [
            int(ts[i]),
            repr(float(candles.open[i])),
            repr(float(candles.high[i])),
            repr(float(candles.low[i])),
            repr(float(candles.close[i])),
            repr(float(candles.volume[i])),
            int(ts[i]) + tf_ms - 1,
            "0",
            0,
            "0",
            "0",
            "0",
        ]
        for i in range(lo, hi)
    ]
    return 200, rows, {}
