"""Bybit through its official client, pybit (v5 unified trading API), behind the `Exchange` interface.

pybit is synchronous (requests), so every call runs in a worker thread. Its own retries are switched
off: by default it sleeps and resends on retCodes 10002 and 10006, which would resend an order
creation; here a rate limit surfaces as `RateLimited` and the caller decides. Bybit's retCodes and
HTTP failures become the errors of `workers.exchanges.errors`, built from the code and message only
(pybit's own exception text carries the request body, which is what was signed).

Unified symbols map to Bybit categories: `BTC/USDT:USDT` is linear `BTCUSDT`, `BTC/USD:BTC` inverse
`BTCUSD`, `BTC/USDT` spot `BTCUSDT`. Dated futures are not handled. Balances are read from the unified
trading account (UNIFIED), the only account type of current Bybit accounts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from workers.exchanges.base import (
    AssetBalance,
    ExchangeOrder,
    KeyCheck,
    MarketRules,
    OrderIntent,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
)
from workers.exchanges.errors import (
    AuthenticationFailed,
    DuplicateClientOrderId,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    NetworkError,
    OrderNotFound,
    OrderOutcomeUnknown,
    PermissionDenied,
    RateLimited,
    TemporaryError,
    redact,
    writes_to_exchange,
)

Json = dict[str, Any]

# Bybit v5 retCodes (https://bybit-exchange.github.io/docs/v5/error) by what they ask of us.
AUTH_CODES = frozenset({10003, 10004, 10007, 33004})  # bad key, bad signature, auth failed, key expired
PERMISSION_CODES = frozenset({10005, 10008, 10009, 10010, 10024, 10027})  # no permission, banned, IP not allowed
RATE_LIMIT_CODES = frozenset({10006, 10018})
INSUFFICIENT_CODES = frozenset({110004, 110006, 110007, 110012, 110044, 110045, 170033, 170131})
NOT_FOUND_CODES = frozenset({110001, 170213})
DUPLICATE_CODES = frozenset({110072, 170141})
SERVER_CODES = frozenset({10000, 10016})  # server timeout, server error: a create's outcome is unknown
TIMESTAMP_CODE = 10002
LEVERAGE_NOT_MODIFIED = 110043

_STATUS = {
    "Created": OrderStatus.SUBMITTED,
    "New": OrderStatus.OPEN,
    "PartiallyFilled": OrderStatus.OPEN,
    "Untriggered": OrderStatus.OPEN,
    "Triggered": OrderStatus.OPEN,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "PartiallyFilledCanceled": OrderStatus.CANCELED,
    "Deactivated": OrderStatus.CANCELED,
    "Rejected": OrderStatus.REJECTED,
}


def bybit_market(symbol: str) -> tuple[str, str]:
    """(category, Bybit symbol) of a unified symbol such as `BTC/USDT:USDT`."""
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    if base and quote and not settle:
        return "spot", base + quote
    if base and quote and settle == quote:
        return "linear", base + quote
    if base and quote and settle == base:
        return "inverse", base + quote
    raise InvalidOrder(f"no Bybit market for {symbol!r}", exchange="bybit")


def key_check_from_bybit(info: Mapping[str, Any]) -> KeyCheck:
    """A KeyCheck from the result of GET /v5/user/query-api (used by the pybit and ccxt adapters)."""
    permissions = info.get("permissions") or {}
    ips = [ip for ip in info.get("ips") or [] if ip]
    read_only = str(info.get("readOnly")) == "1"
    can_withdraw = "Withdraw" in (permissions.get("Wallet") or [])
    ip_whitelisted = bool(ips) and ips != ["*"]
    trade_permissions = any(permissions.get(name) for name in ("ContractTrade", "Spot", "Derivatives", "Options"))
    notes = []
    if can_withdraw:
        notes.append("the key may withdraw funds")
    if not ip_whitelisted:
        notes.append("the key is not bound to any IP address")
        if info.get("expiredAt"):
            notes.append(f"Bybit expires keys without IP binding: this one at {info['expiredAt']}")
    if read_only:
        notes.append("the key is read-only")
    return KeyCheck(
        can_withdraw=can_withdraw,
        ip_whitelisted=ip_whitelisted,
        can_trade=trade_permissions and not read_only,
        read_only=read_only,
        notes=tuple(notes),
    )


def bybit_error(code: int, message: str, *, creating: bool, retry_after: float | None = None) -> ExchangeError:
    """The taxonomy error for a Bybit retCode; `creating` when the request was an order creation."""
    text = f"retCode {code}: {message}"
    kwargs = {"exchange": "bybit", "code": str(code)}
    if code in AUTH_CODES:
        return AuthenticationFailed(text, **kwargs)
    if code in PERMISSION_CODES:
        return PermissionDenied(text, **kwargs)
    if code in RATE_LIMIT_CODES:
        return RateLimited(text, retry_after=retry_after, **kwargs)
    if code in INSUFFICIENT_CODES:
        return InsufficientFunds(text, **kwargs)
    if code in DUPLICATE_CODES:
        return DuplicateClientOrderId(text, **kwargs)
    if code in NOT_FOUND_CODES:
        return OrderNotFound(text, **kwargs)
    if code in SERVER_CODES:
        return OrderOutcomeUnknown(text, **kwargs) if creating else ExchangeUnavailable(text, **kwargs)
    if code == TIMESTAMP_CODE:  # clock skew: the request was refused before it was looked at
        return TemporaryError(text, **kwargs)
    if 110000 <= code < 200000:  # the order and position families
        return InvalidOrder(text, **kwargs)
    return ExchangeError(text, **kwargs)


def bybit_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds until Bybit's rate-limit window resets, from its X-Bapi-Limit-Reset-Timestamp header."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "x-bapi-limit-reset-timestamp"), None)
    try:
        return max(0.0, (int(value) - time.time() * 1000) / 1000) if value is not None else None
    except ValueError:
        return None


class BybitExchange:
    """One Bybit account through pybit. `endpoint` replaces the API origin (tests use a local fake)."""

    name = "bybit"

    def __init__(
        self,
        *,
        api_key: str,
        secret: str,
        testnet: bool = False,
        endpoint: str | None = None,
        timeout_s: float = 10.0,
        recv_window_ms: int = 5000,
    ) -> None:
        self._http = HTTP(
            testnet=testnet,
            api_key=api_key,
            api_secret=secret,
            timeout=timeout_s,
            recv_window=recv_window_ms,
            max_retries=1,
        )
        # pybit fills an empty retry set with its defaults in __post_init__, so empty it afterwards.
        self._http.retry_codes = set()
        if endpoint is not None:
            self._http.endpoint = endpoint.rstrip("/")
        self._api_key = api_key
        self._secret = secret
        self._rules: dict[str, MarketRules] = {}

    def __repr__(self) -> str:  # pybit's HTTP is a dataclass whose repr shows the secret: never show it
        return f"BybitExchange(api_key={self._api_key[:4]}…, endpoint={self._http.endpoint})"

    async def check_key(self) -> KeyCheck:
        result = await self._call(self._http.get_api_key_information)
        return key_check_from_bybit(result)

    async def fetch_balance(self) -> dict[str, AssetBalance]:
        result = await self._call(self._http.get_wallet_balance, accountType="UNIFIED")
        balances: dict[str, AssetBalance] = {}
        for account in result.get("list") or []:
            for coin in account.get("coin") or []:
                total = _float(coin.get("walletBalance")) or 0.0
                if not total:
                    continue
                free = _float(coin.get("availableToWithdraw"))
                if free is None:  # deprecated (empty) on newer unified accounts: total less what is tied up
                    used = sum(_float(coin.get(k)) or 0.0 for k in ("locked", "totalPositionIM", "totalOrderIM"))
                    free = total - used
                balances[coin["coin"]] = AssetBalance(currency=coin["coin"], total=total, free=free)
        return balances

    async def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        positions = []
        for symbol in symbols:
            category, market_id = bybit_market(symbol)
            if category == "spot":
                continue  # spot holdings are balances, not positions
            result = await self._call(self._http.get_positions, category=category, symbol=market_id)
            for row in result.get("list") or []:
                size = _float(row.get("size")) or 0.0
                if size and row.get("side") in ("Buy", "Sell"):
                    positions.append(
                        Position(
                            symbol=symbol,
                            side=PositionSide.LONG if row["side"] == "Buy" else PositionSide.SHORT,
                            amount=size,
                            entry_price=_float(row.get("avgPrice")),
                            mark_price=_float(row.get("markPrice")),
                            unrealized_pnl=_float(row.get("unrealisedPnl")),
                            leverage=_float(row.get("leverage")),
                            liquidation_price=_float(row.get("liqPrice")),
                            stop_loss=_float(row.get("stopLoss")),
                            take_profit=_float(row.get("takeProfit")),
                        )
                    )
        return positions

    async def fetch_open_orders(self, symbol: str) -> list[ExchangeOrder]:
        category, market_id = bybit_market(symbol)
        orders: list[ExchangeOrder] = []
        cursor = None
        while True:
            result = await self._call(
                self._http.get_open_orders, category=category, symbol=market_id, limit=50, cursor=cursor
            )
            orders.extend(_order(row, symbol) for row in result.get("list") or [])
            cursor = result.get("nextPageCursor")
            if not cursor or not result.get("list"):
                return orders

    @writes_to_exchange
    async def create_order(self, intent: OrderIntent) -> ExchangeOrder:
        category, market_id = bybit_market(intent.symbol)
        rules = await self.market_rules(intent.symbol)
        amount = rules.round_amount(intent.amount)
        if amount <= 0 or (rules.min_amount is not None and amount < rules.min_amount):
            raise InvalidOrder(f"amount {intent.amount} is below the minimum of {intent.symbol}", exchange=self.name)
        if intent.leverage is not None and category != "spot":
            await self.set_leverage(intent.symbol, intent.leverage)
        price = rules.round_price(intent.price) if intent.type is OrderType.LIMIT and intent.price else None
        stop_loss = rules.round_price(intent.stop_loss) if intent.stop_loss else None
        take_profit = rules.round_price(intent.take_profit) if intent.take_profit else None
        request: Json = {
            "category": category,
            "symbol": market_id,
            "side": "Buy" if intent.side is Side.BUY else "Sell",
            "orderType": "Limit" if intent.type is OrderType.LIMIT else "Market",
            "qty": _decimal_str(amount),
            "orderLinkId": intent.client_order_id,
        }
        if price is not None:
            request["price"] = _decimal_str(price)
        if intent.reduce_only:
            request["reduceOnly"] = True
        if stop_loss is not None:
            request["stopLoss"] = _decimal_str(stop_loss)
        if take_profit is not None:
            request["takeProfit"] = _decimal_str(take_profit)
        result = await self._call(self._http.place_order, creating=True, **request)
        return ExchangeOrder(
            id=str(result["orderId"]),
            client_order_id=result.get("orderLinkId") or intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            status=OrderStatus.SUBMITTED,
            amount=amount,
            price=price,
            reduce_only=intent.reduce_only,
            stop_loss=stop_loss,
            take_profit=take_profit,
        )

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        category, market_id = bybit_market(symbol)
        # Realtime answers open orders and recent closed ones by orderLinkId; history keeps older ones.
        for read in (self._http.get_open_orders, self._http.get_order_history):
            result = await self._call(read, category=category, symbol=market_id, orderLinkId=client_order_id)
            rows = [row for row in result.get("list") or [] if row.get("orderLinkId") == client_order_id]
            if rows:
                return _order(rows[0], symbol)
        return None

    @writes_to_exchange
    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> None:
        if (order_id is None) == (client_order_id is None):
            raise ValueError("cancel_order needs exactly one of order_id and client_order_id")
        category, market_id = bybit_market(symbol)
        await self._call(
            self._http.cancel_order, category=category, symbol=market_id, orderId=order_id, orderLinkId=client_order_id
        )

    @writes_to_exchange
    async def set_leverage(self, symbol: str, leverage: float) -> None:
        category, market_id = bybit_market(symbol)
        if category == "spot":
            raise InvalidOrder(f"{symbol} is spot: leverage applies to contracts", exchange=self.name)
        value = _decimal_str(leverage)
        try:
            await self._call(
                self._http.set_leverage, category=category, symbol=market_id, buyLeverage=value, sellLeverage=value
            )
        except ExchangeError as exc:
            if exc.code != str(LEVERAGE_NOT_MODIFIED):  # already at this leverage: nothing to do
                raise

    async def market_rules(self, symbol: str) -> MarketRules:
        if symbol in self._rules:
            return self._rules[symbol]
        category, market_id = bybit_market(symbol)
        result = await self._call(self._http.get_instruments_info, category=category, symbol=market_id)
        rows = [row for row in result.get("list") or [] if row.get("symbol") == market_id]
        if not rows:
            raise InvalidOrder(f"Bybit lists no market {symbol}", exchange=self.name)
        lot, price, leverage = (rows[0].get(k) or {} for k in ("lotSizeFilter", "priceFilter", "leverageFilter"))
        spot = category == "spot"
        rules = MarketRules(
            symbol=symbol,
            min_amount=_float(lot.get("minOrderQty")),
            amount_step=_float(lot.get("basePrecision" if spot else "qtyStep")),
            price_tick=_float(price.get("tickSize")),
            min_notional=_float(lot.get("minOrderAmt" if spot else "minNotionalValue")),
            max_leverage=_float(leverage.get("maxLeverage")),
        )
        self._rules[symbol] = rules
        return rules

    async def close(self) -> None:
        self._http.client.close()

    async def _call(self, method: Callable[..., Json], *, creating: bool = False, **params: Any) -> Json:
        """`result` of one pybit call run in a thread, its failures turned into taxonomy errors."""
        params = {k: v for k, v in params.items() if v is not None}
        try:
            response = await asyncio.to_thread(method, **params)
        except InvalidRequestError as exc:  # Bybit answered with a non-zero retCode
            message = redact(str(exc.message), self._secret)
            raise bybit_error(
                int(exc.status_code), message, creating=creating, retry_after=bybit_retry_after(exc.resp_headers)
            ) from None
        except FailedRequestError as exc:  # an HTTP status other than 200, or a body that is not JSON
            raise self._http_error(int(exc.status_code), exc.resp_headers, creating) from None
        except requests.RequestException as exc:  # no answer at all: refused, dropped, timed out
            text = f"{type(exc).__name__} during {getattr(method, '__name__', 'request')}"
            if creating:
                raise OrderOutcomeUnknown(f"{text}: the order may exist", exchange=self.name) from None
            raise NetworkError(text, exchange=self.name) from None
        return response.get("result") or {}

    def _http_error(self, status: int, headers: Mapping[str, str] | None, creating: bool) -> ExchangeError:
        text = f"HTTP {status}"
        # 403 is how Bybit's gateway answers an IP over its rate limit.
        if status in (403, 429):
            return RateLimited(text, exchange=self.name, code=str(status), retry_after=bybit_retry_after(headers))
        if status == 401:
            return AuthenticationFailed(text, exchange=self.name, code=str(status))
        if status >= 500 or status == 409:  # 409: pybit's code for an unreadable body
            if creating:
                return OrderOutcomeUnknown(f"{text}: the order may exist", exchange=self.name, code=str(status))
            return ExchangeUnavailable(text, exchange=self.name, code=str(status))
        return ExchangeError(text, exchange=self.name, code=str(status))


def _order(row: Mapping[str, Any], symbol: str) -> ExchangeOrder:
    side = {"Buy": Side.BUY, "Sell": Side.SELL}.get(row.get("side", ""))
    order_type = {"Market": OrderType.MARKET, "Limit": OrderType.LIMIT}.get(row.get("orderType", ""))
    created = row.get("createdTime")
    return ExchangeOrder(
        id=str(row.get("orderId")),
        client_order_id=row.get("orderLinkId") or None,
        symbol=symbol,
        side=side,
        type=order_type,
        status=_STATUS.get(row.get("orderStatus", ""), OrderStatus.SUBMITTED),
        amount=_float(row.get("qty")),
        filled=_float(row.get("cumExecQty")),
        price=_float(row.get("price")) or None if order_type is OrderType.LIMIT else None,
        average=_float(row.get("avgPrice")) or None,
        reduce_only=row.get("reduceOnly"),
        stop_loss=_float(row.get("stopLoss")) or None,
        take_profit=_float(row.get("takeProfit")) or None,
        timestamp_ms=int(created) if created else None,
    )


def _float(value: Any) -> float | None:
    """Bybit's numeric strings as floats; "" (Bybit's "not set") as None."""
    if value is None or value == "":
        return None
    return float(value)


def _decimal_str(value: float) -> str:
    """A float as the plain decimal string Bybit expects (no exponent, no binary noise)."""
    return format(Decimal(repr(value)).normalize(), "f")
