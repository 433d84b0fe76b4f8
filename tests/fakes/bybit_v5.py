"""A local stand-in for Bybit's v5 REST API, stateful, that checks request signatures as Bybit does.

Real HTTP on 127.0.0.1 in a thread, spoken to by the real clients (pybit, and ccxt's bybit with its
`urls['api']` origins replaced by `FakeBybitV5.origin`). ccxt's `load_markets` runs against it
unchanged: it reads /v5/market/instruments-info (every category; only linear perpetuals are listed
here) and the private /v5/asset/coin/query-info; nothing is pre-seeded.

Private requests carry X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW and X-BAPI-SIGN, the hex
HMAC-SHA256 under the key's secret of timestamp + api key + recv window + (the raw query string of a
GET | the raw JSON body of a POST). An unknown key gets retCode 10003, a bad signature 10004 (with
Bybit's "origin_string[...]" echo of the payload), a stale timestamp 10002.

State per account (several keys may share one): a USDT wallet, one-way positions, leverage per
symbol, and orders indexed by orderLinkId, which is unique per account (a second create with the
same one gets 110072). Market orders fill at once at the symbol's mark price; limit orders rest.
Margin is notional / leverage; an order that needs more than the available balance gets 110007.

Faults, queued per path with `inject`: `Fault.lose_response()` handles the request (the order is
stored) and then closes the connection without answering; `Fault.delay(s)` answers late;
`Fault.rate_limit()` answers retCode 10006 with Bybit's limit headers; `Fault.auth_failure()` answers
10003; `Fault.http_status(503)` answers a bare gateway error. `create_calls` counts every
/v5/order/create that reached the server, answered or not.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.local_server import LocalHttpServer

Json = dict[str, Any]


@dataclass(frozen=True)
class Instrument:
    """A linear USDT perpetual."""

    symbol: str  # Bybit id, e.g. BTCUSDT
    base: str
    mark_price: float
    min_qty: str = "0.001"
    qty_step: str = "0.001"
    tick_size: str = "0.10"
    min_notional: str = "5"
    max_leverage: str = "100.00"


DEFAULT_INSTRUMENTS = (
    Instrument("BTCUSDT", "BTC", 60_000.0),
    Instrument("ETHUSDT", "ETH", 3_000.0, min_qty="0.01", qty_step="0.01", tick_size="0.01"),
)


@dataclass
class Fault:
    kind: str  # "lose_response" | "delay" | "reply"
    seconds: float = 0.0
    status: int = 200
    body: Json | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def lose_response(cls) -> Fault:
        return cls("lose_response")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)

    @classmethod
    def rate_limit(cls, reset_in_ms: int = 2_000) -> Fault:
        reset = _now_ms() + reset_in_ms
        headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset)}
        return cls("reply", body=_error(10006, "Too many visits!"), headers=headers)

    @classmethod
    def auth_failure(cls) -> Fault:
        return cls("reply", body=_error(10003, "API key is invalid."))

    @classmethod
    def http_status(cls, status: int) -> Fault:
        return cls("reply", status=status)


@dataclass
class ApiKey:
    key: str
    secret: str
    account: str
    can_withdraw: bool
    ips: list[str]
    read_only: bool


@dataclass
class Order:
    order_id: str
    order_link_id: str
    symbol: str
    side: str  # Buy | Sell
    order_type: str  # Market | Limit
    qty: Decimal
    price: Decimal  # limit price; 0 for market orders
    reduce_only: bool
    stop_loss: str
    take_profit: str
    status: str = "New"
    avg_price: Decimal = Decimal(0)
    cum_exec_qty: Decimal = Decimal(0)
    created_ms: int = field(default_factory=lambda: _now_ms())

    def as_bybit(self) -> Json:
        return {
            "orderId": self.order_id,
            "orderLinkId": self.order_link_id,
            "symbol": self.symbol,
            "side": self.side,
            "orderType": self.order_type,
            "price": str(self.price),
            "qty": str(self.qty),
            "orderStatus": self.status,
            "avgPrice": str(self.avg_price) if self.cum_exec_qty else "",
            "cumExecQty": str(self.cum_exec_qty),
            "cumExecValue": str(self.cum_exec_qty * self.avg_price),
            "cumExecFee": "0",
            "leavesQty": str(self.qty - self.cum_exec_qty) if self.status in OPEN_STATUSES else "0",
            "timeInForce": "IOC" if self.order_type == "Market" else "GTC",
            "reduceOnly": self.reduce_only,
            "stopLoss": self.stop_loss,
            "takeProfit": self.take_profit,
            "positionIdx": 0,
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.created_ms),
        }


OPEN_STATUSES = ("New", "PartiallyFilled")


@dataclass
class Account:
    wallet: Decimal
    orders: dict[str, Order] = field(default_factory=dict)  # by orderId
    by_link_id: dict[str, str] = field(default_factory=dict)  # orderLinkId -> orderId
    positions: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # symbol -> (signed size, avg)
    leverage: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: Decimal(10)))


class FakeBybitV5(LocalHttpServer):
    """Bybit v5 over real HTTP; use as a context manager, then point clients at `origin`."""

    def __init__(self, instruments: tuple[Instrument, ...] = DEFAULT_INSTRUMENTS) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.keys: dict[str, ApiKey] = {}
        self.accounts: dict[str, Account] = {}
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.create_calls = 0
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        super().__init__()

    def add_key(
        self,
        key: str,
        secret: str,
        *,
        account: str | None = None,
        can_withdraw: bool = False,
        ips: list[str] | None = None,
        read_only: bool = False,
        usdt: float = 10_000.0,
    ) -> None:
        """Register an API key; `ips=None` means no whitelist (Bybit reports ["*"])."""
        account = account or key
        with self._lock:
            self.keys[key] = ApiKey(key, secret, account, can_withdraw, ips or ["*"], read_only)
            self.accounts.setdefault(account, Account(wallet=Decimal(repr(usdt))))

    def inject(self, path: str, fault: Fault, times: int = 1) -> None:
        """The next `times` requests to `path` meet `fault`."""
        with self._lock:
            self.faults[path].extend([fault] * times)

    def orders(self, key: str) -> list[Order]:
        with self._lock:
            return list(self.accounts[self.keys[key].account].orders.values())

    # --- HTTP ------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with fake._lock:
                    fake.requests.append((method, url.path))
                    if url.path == "/v5/order/create":
                        fake.create_calls += 1
                    queued = fake.faults.get(url.path)
                    fault = queued.pop(0) if queued else None
                if fault is not None and fault.kind == "reply":
                    self._reply(fault.status, fault.body, fault.headers)
                    return
                status, payload = fake._handle(method, url.path, url.query, body, self.headers)
                if fault is not None and fault.kind == "lose_response":
                    self.close_connection = True  # the work is done; the answer never leaves
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.seconds)
                self._reply(status, payload, {})

            def _reply(self, status: int, payload: Json | None, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode() if payload is not None else b"<html>Bad Gateway</html>"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json" if payload is not None else "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (delay fault)
                    pass

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        return Handler

    def _handle(self, method: str, path: str, query: str, body: str, headers: Any) -> tuple[int, Json]:
        params: Json = dict(parse_qsl(query)) if method == "GET" else (json.loads(body) if body else {})
        public = PUBLIC.get((method, path))
        if public is not None:
            return 200, _ok(public(self, params))
        private = PRIVATE.get((method, path))
        if private is None:
            return 404, {"retCode": 404, "retMsg": f"no route {method} {path}"}
        key, error = self._authenticate(method, query, body, headers)
        if error is not None:
            return 200, error
        assert key is not None
        with self._lock:
            try:
                return 200, _ok(private(self, key, self.accounts[key.account], params))
            except BybitError as exc:
                return 200, _error(exc.code, exc.message)

    def _authenticate(self, method: str, query: str, body: str, headers: Any) -> tuple[ApiKey | None, Json | None]:
        api_key = headers.get("X-BAPI-API-KEY", "")
        timestamp = headers.get("X-BAPI-TIMESTAMP", "")
        sign = headers.get("X-BAPI-SIGN", "")
        recv_window = headers.get("X-BAPI-RECV-WINDOW", "5000")
        with self._lock:
            key = self.keys.get(api_key)
        if key is None:
            return None, _error(10003, "API key is invalid.")
        try:
            ts, window = int(timestamp), int(recv_window)
        except ValueError:
            return None, _error(10002, "invalid request, please check your timestamp or recv_window param")
        now = _now_ms()
        if not (now - window <= ts < now + 1000):
            return None, _error(10002, "invalid request, please check your server timestamp or recv_window param")
        origin = timestamp + api_key + recv_window + (query if method == "GET" else body)
        expected = hmac.new(key.secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sign):
            return None, _error(10004, f"error sign! origin_string[{origin}]")
        return key, None

    # --- trading ---------------------------------------------------------------------------------

    def _instrument(self, params: Json) -> Instrument:
        if params.get("category") != "linear":
            raise BybitError(10001, "params error: only category=linear is served here")
        instrument = self.instruments.get(params.get("symbol", ""))
        if instrument is None:
            raise BybitError(10001, "params error: symbol invalid")
        return instrument

    def _margins(self, account: Account) -> tuple[Decimal, Decimal]:
        """(initial margin of positions, initial margin of resting orders)."""
        positions = sum(
            (abs(size) * avg / account.leverage[symbol] for symbol, (size, avg) in account.positions.items()),
            Decimal(0),
        )
        orders = sum(
            (o.qty * o.price / account.leverage[o.symbol] for o in account.orders.values() if o.status == "New"),
            Decimal(0),
        )
        return positions, orders

    def _available(self, account: Account) -> Decimal:
        return account.wallet - sum(self._margins(account))

    def _create(self, key: ApiKey, account: Account, p: Json) -> Json:
        if key.read_only:
            raise BybitError(10005, "Permission denied, please check your API key permissions.")
        instrument = self._instrument(p)
        link_id = str(p.get("orderLinkId") or "")
        if len(link_id) > 36:
            raise BybitError(10001, "params error: orderLinkId too long")
        if link_id and link_id in account.by_link_id:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        side, order_type = p.get("side"), p.get("orderType")
        if side not in ("Buy", "Sell") or order_type not in ("Market", "Limit"):
            raise BybitError(10001, "params error: side or orderType")
        qty = Decimal(str(p.get("qty", "0")))
        if qty < Decimal(instrument.min_qty) or qty % Decimal(instrument.qty_step):
            raise BybitError(10001, "params error: qty invalid")
        price = Decimal(str(p.get("price") or "0"))
        if order_type == "Limit" and (price <= 0 or price % Decimal(instrument.tick_size)):
            raise BybitError(10001, "params error: price invalid")
        mark = Decimal(repr(instrument.mark_price))
        reduce_only = p.get("reduceOnly") in (True, "true", "True")
        size, _ = account.positions.get(instrument.symbol, (Decimal(0), Decimal(0)))
        signed = qty if side == "Buy" else -qty
        if reduce_only and (size == 0 or (size > 0) == (signed > 0)):
            raise BybitError(110017, "current position is zero, cannot fix reduce-only order qty")
        if not reduce_only:
            needed = qty * (price or mark) / account.leverage[instrument.symbol]
            if needed > self._available(account):
                raise BybitError(110007, "ab not enough for new order")
        order = Order(
            order_id=str(uuid.UUID(int=next(self._ids))),
            order_link_id=link_id,
            symbol=instrument.symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            reduce_only=reduce_only,
            stop_loss=str(p.get("stopLoss") or ""),
            take_profit=str(p.get("takeProfit") or ""),
        )
        if order_type == "Market":
            self._fill(account, order, mark)
        account.orders[order.order_id] = order
        if link_id:
            account.by_link_id[link_id] = order.order_id
        return {"orderId": order.order_id, "orderLinkId": link_id}

    def _fill(self, account: Account, order: Order, price: Decimal) -> None:
        size, avg = account.positions.get(order.symbol, (Decimal(0), Decimal(0)))
        signed = order.qty if order.side == "Buy" else -order.qty
        if size == 0 or (size > 0) == (signed > 0):
            avg = (abs(size) * avg + order.qty * price) / (abs(size) + order.qty)
        else:
            closed = min(abs(size), order.qty)
            account.wallet += closed * (price - avg) * (1 if size > 0 else -1)
            if abs(signed) > abs(size):
                avg = price
        size += signed
        account.positions[order.symbol] = (size, avg if size else Decimal(0))
        order.status, order.avg_price, order.cum_exec_qty = "Filled", price, order.qty

    def _find(self, account: Account, p: Json) -> list[Order]:
        if p.get("orderId"):
            found = [account.orders[p["orderId"]]] if p["orderId"] in account.orders else []
        elif p.get("orderLinkId"):
            order_id = account.by_link_id.get(p["orderLinkId"])
            found = [account.orders[order_id]] if order_id else []
        else:
            found = list(account.orders.values())
        if p.get("symbol"):
            found = [o for o in found if o.symbol == p["symbol"]]
        return sorted(found, key=lambda o: o.created_ms, reverse=True)

    def _realtime(self, key: ApiKey, account: Account, p: Json) -> Json:
        if p.get("category") != "linear":
            return {"category": p.get("category"), "list": [], "nextPageCursor": ""}
        # Like Bybit: open orders, plus recent closed ones when asked by orderId or orderLinkId.
        by_id = bool(p.get("orderId") or p.get("orderLinkId"))
        found = [o for o in self._find(account, p) if by_id or o.status in OPEN_STATUSES]
        return {"category": "linear", "list": [o.as_bybit() for o in found], "nextPageCursor": ""}

    def _history(self, key: ApiKey, account: Account, p: Json) -> Json:
        if p.get("category") != "linear":
            return {"category": p.get("category"), "list": [], "nextPageCursor": ""}
        found = self._find(account, p)
        if p.get("orderStatus"):
            found = [o for o in found if o.status == p["orderStatus"]]
        return {"category": "linear", "list": [o.as_bybit() for o in found], "nextPageCursor": ""}

    def _cancel(self, key: ApiKey, account: Account, p: Json) -> Json:
        if key.read_only:
            raise BybitError(10005, "Permission denied, please check your API key permissions.")
        self._instrument(p)
        found = (
            [o for o in self._find(account, p) if o.status in OPEN_STATUSES]
            if (p.get("orderId") or p.get("orderLinkId"))
            else []
        )
        if not found:
            raise BybitError(110001, "Order does not exist.")
        found[0].status = "Cancelled"
        return {"orderId": found[0].order_id, "orderLinkId": found[0].order_link_id}

    def _positions(self, key: ApiKey, account: Account, p: Json) -> Json:
        if p.get("category") != "linear":
            return {"category": p.get("category"), "list": [], "nextPageCursor": ""}
        symbols = [p["symbol"]] if p.get("symbol") else sorted(account.positions)
        rows = []
        for symbol in symbols:
            instrument = self.instruments.get(symbol)
            if instrument is None:
                raise BybitError(10001, "params error: symbol invalid")
            size, avg = account.positions.get(symbol, (Decimal(0), Decimal(0)))
            mark = Decimal(repr(instrument.mark_price))
            rows.append(
                {
                    "positionIdx": 0,
                    "symbol": symbol,
                    "side": "Buy" if size > 0 else "Sell" if size < 0 else "",
                    "size": str(abs(size)),
                    "avgPrice": str(avg),
                    "positionValue": str(abs(size) * avg),
                    "leverage": str(account.leverage[symbol]),
                    "markPrice": str(mark),
                    "liqPrice": "",
                    "unrealisedPnl": str((mark - avg) * size),
                    "takeProfit": "",
                    "stopLoss": "",
                    "tradeMode": 0,
                    "positionStatus": "Normal",
                    "createdTime": str(_now_ms()),
                    "updatedTime": str(_now_ms()),
                }
            )
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def _set_leverage(self, key: ApiKey, account: Account, p: Json) -> Json:
        if key.read_only:
            raise BybitError(10005, "Permission denied, please check your API key permissions.")
        instrument = self._instrument(p)
        buy, sell = Decimal(str(p.get("buyLeverage"))), Decimal(str(p.get("sellLeverage")))
        if buy != sell or not (1 <= buy <= Decimal(instrument.max_leverage)):
            raise BybitError(10001, "params error: leverage invalid")
        if account.leverage[instrument.symbol] == buy:
            raise BybitError(110043, "leverage not modified")
        account.leverage[instrument.symbol] = buy
        return {}

    def _wallet(self, key: ApiKey, account: Account, p: Json) -> Json:
        if p.get("accountType") != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED")
        position_im, order_im = self._margins(account)
        coin = {
            "coin": "USDT",
            "walletBalance": str(account.wallet),
            "equity": str(account.wallet),
            "locked": "0",
            "totalPositionIM": str(position_im),
            "totalOrderIM": str(order_im),
            "availableToWithdraw": str(account.wallet - position_im - order_im),
        }
        return {"list": [{"accountType": "UNIFIED", "totalEquity": str(account.wallet), "coin": [coin]}]}

    def _query_api(self, key: ApiKey, account: Account, p: Json) -> Json:
        trade = [] if key.read_only else ["Order", "Position"]
        wallet = ["AccountTransfer", "SubMemberTransfer"] + (["Withdraw"] if key.can_withdraw else [])
        return {
            "id": "1",
            "note": "fake",
            "apiKey": key.key,
            "readOnly": 1 if key.read_only else 0,
            "secret": "",
            "permissions": {
                "ContractTrade": trade,
                "Spot": [] if key.read_only else ["SpotTrade"],
                "Wallet": wallet,
                "Options": [],
                "Derivatives": [],
                "Exchange": [],
                "NFT": [],
            },
            "ips": key.ips,
            "type": 1,
            "unified": 0,
            "uta": 1,
            "userID": 1,
            "isMaster": True,
        }

    def _account_info(self, key: ApiKey, account: Account, p: Json) -> Json:
        return {"marginMode": "REGULAR_MARGIN", "unifiedMarginStatus": 6, "updatedTime": str(_now_ms())}

    def _coins(self, key: ApiKey, account: Account, p: Json) -> Json:
        coins = ["USDT", *sorted({i.base for i in self.instruments.values()})]
        return {"rows": [{"name": c, "coin": c, "remainAmount": "1000000", "chains": []} for c in coins]}

    def _server_time(self, p: Json) -> Json:
        now = _now_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _instruments_info(self, p: Json) -> Json:
        category = p.get("category")
        listed = category == "linear" and p.get("status", "Trading") == "Trading"
        rows = [_instrument_row(i) for i in self.instruments.values() if listed and p.get("symbol") in (None, i.symbol)]
        return {"category": category, "list": rows, "nextPageCursor": ""}


class BybitError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


PUBLIC = {
    ("GET", "/v5/market/time"): FakeBybitV5._server_time,
    ("GET", "/v5/market/instruments-info"): FakeBybitV5._instruments_info,
}
PRIVATE = {
    ("POST", "/v5/order/create"): FakeBybitV5._create,
    ("GET", "/v5/order/realtime"): FakeBybitV5._realtime,
    ("GET", "/v5/order/history"): FakeBybitV5._history,
    ("POST", "/v5/order/cancel"): FakeBybitV5._cancel,
    ("GET", "/v5/position/list"): FakeBybitV5._positions,
    ("POST", "/v5/position/set-leverage"): FakeBybitV5._set_leverage,
    ("GET", "/v5/account/wallet-balance"): FakeBybitV5._wallet,
    ("GET", "/v5/account/info"): FakeBybitV5._account_info,
    ("GET", "/v5/user/query-api"): FakeBybitV5._query_api,
    ("GET", "/v5/asset/coin/query-info"): FakeBybitV5._coins,
}


def _instrument_row(i: Instrument) -> Json:
    return {
        "symbol": i.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": i.base,
        "quoteCoin": "USDT",
        "settleCoin": "USDT",
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "priceScale": str(len(i.tick_size.partition(".")[2])),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": i.max_leverage, "leverageStep": "0.01"},
        "priceFilter": {"minPrice": i.tick_size, "maxPrice": "1999999.00", "tickSize": i.tick_size},
        "lotSizeFilter": {
            "maxOrderQty": "1190.000",
            "minOrderQty": i.min_qty,
            "qtyStep": i.qty_step,
            "postOnlyMaxOrderQty": "1190.000",
            "maxMktOrderQty": "500.000",
            "minNotionalValue": i.min_notional,
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
    }


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ok(result: Json) -> Json:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": _now_ms()}


def _error(code: int, message: str) -> Json:
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": _now_ms()}
