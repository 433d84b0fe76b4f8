"""Any exchange ccxt speaks, through `ccxt.async_support`, behind the `Exchange` interface.

The client order id goes out as ccxt's unified `clientOrderId` param (Bybit: orderLinkId, Binance:
newClientOrderId). ccxt's own retries stay off (`maxRetriesOnFailure` 0), so a create is sent once;
a create that gets no answer raises `OrderOutcomeUnknown`. ccxt's exceptions become the errors of
`workers.exchanges.errors`, with the secret and any echoed signing payload masked.

Looking an order up by client id: Bybit answers it exactly (orderLinkId on /v5/order/realtime, then
/v5/order/history); other exchanges are searched through their open and recent closed orders.
Key checks: Bybit (/v5/user/query-api) and Binance (/sapi/v1/account/apiRestrictions) report what a
key may do; elsewhere the check proves the key authenticates and reports the rest as unknown.

One adapter holds one ccxt client, whose HTTP session belongs to the event loop it first ran on:
create the adapter in the loop that uses it and `close()` it before that loop ends. Loaded markets
are shared by all adapters of the same exchange in the process and refreshed hourly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

from workers.ccxt_origin import with_api_origin
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
from workers.exchanges.bybit import DUPLICATE_CODES, LEVERAGE_NOT_MODIFIED, bybit_retry_after, key_check_from_bybit
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

T = TypeVar("T")

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_RET_CODE = re.compile(r'"ret_?[cC]ode"\s*:\s*"?(\d+)')

# Markets are public: one copy per exchange (and testnet, and origin) serves every adapter in the
# process, so a cycle per tenant does not reload them (a dozen requests on Bybit). Kept for an hour.
MARKETS_TTL_S = 3600.0
_shared_markets: dict[tuple[str, bool, str | None], tuple[float, Any, Any]] = {}


class CcxtExchange:
    """One account on the ccxt exchange `exchange_id` (e.g. "bybit", "binanceusdm", "okx").

    `password` is the passphrase some exchanges add to a key (OKX, KuCoin). `sandbox` selects the
    exchange's testnet. `api_origin` replaces the scheme and host of every `urls['api']` entry (paths
    kept): tests point the real client at a local fake with it. `options` go to ccxt as they are.
    """

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        password: str | None = None,
        sandbox: bool = False,
        api_origin: str | None = None,
        timeout_ms: int = 10_000,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if exchange_id not in ccxt_async.exchanges:
            raise ValueError(f"ccxt does not know the exchange {exchange_id!r}")
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": True,
            "timeout": timeout_ms,
            "options": {"maxRetriesOnFailure": 0, **(options or {})},
        }
        if password is not None:
            config["password"] = password
        self._client: ccxt_async.Exchange = getattr(ccxt_async, exchange_id)(config)
        if sandbox:
            self._client.set_sandbox_mode(True)
        if api_origin is not None:
            self._client.urls["api"] = with_api_origin(self._client.urls["api"], api_origin)
        self.name = exchange_id
        self._secrets = (secret, password)
        self._markets_key = (exchange_id, sandbox, api_origin)

    def __repr__(self) -> str:
        return f"CcxtExchange({self.name!r})"

    async def check_key(self) -> KeyCheck:
        if self.name == "bybit":
            response = await self._run(self._client.private_get_v5_user_query_api())
            return key_check_from_bybit(response.get("result") or {})
        if self.name.startswith("binance") and hasattr(self._client, "sapi_get_account_apirestrictions"):
            restrictions = await self._run(self._client.sapi_get_account_apirestrictions())
            return _key_check_from_binance(restrictions)
        await self.fetch_balance()  # proves the key authenticates
        note = f"ccxt offers no way to read the permissions of a {self.name} key"
        return KeyCheck(can_withdraw=None, ip_whitelisted=None, can_trade=None, notes=(note,))

    async def fetch_balance(self) -> dict[str, AssetBalance]:
        await self._markets()
        balance = await self._run(self._client.fetch_balance())
        totals: Mapping[str, Any] = balance.get("total") or {}
        frees: Mapping[str, Any] = balance.get("free") or {}
        return {
            code: AssetBalance(currency=code, total=float(total), free=_float(frees.get(code)))
            for code, total in totals.items()
            if total
        }

    async def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        if not symbols:
            return []
        await self._markets()
        if len(symbols) <= 1:
            raw = await self._run(self._client.fetch_positions(list(symbols)))
        else:
            try:
                raw = await self._run(self._client.fetch_positions(list(symbols)))
            except InvalidOrder:  # ccxt.ArgumentsRequired: this exchange takes one symbol at a time
                raw = []
                for symbol in symbols:
                    raw.extend(await self._run(self._client.fetch_positions([symbol])))
        wanted = set(symbols)
        return [p for p in (_position(row) for row in raw) if p is not None and p.symbol in wanted]

    async def fetch_open_orders(self, symbol: str) -> list[ExchangeOrder]:
        await self._markets()
        return [_order(row) for row in await self._run(self._client.fetch_open_orders(symbol))]

    @writes_to_exchange
    async def create_order(self, intent: OrderIntent) -> ExchangeOrder:
        await self._markets()
        if intent.leverage is not None:
            await self.set_leverage(intent.symbol, intent.leverage)
        params: dict[str, Any] = {"clientOrderId": intent.client_order_id}
        if intent.reduce_only:
            params["reduceOnly"] = True
        if intent.stop_loss is not None or intent.take_profit is not None:
            if not self._client.has.get("createOrderWithTakeProfitAndStopLoss"):
                raise InvalidOrder("no stop-loss or take-profit attached to orders here", exchange=self.name)
            if intent.stop_loss is not None:
                params["stopLoss"] = {"triggerPrice": intent.stop_loss}
            if intent.take_profit is not None:
                params["takeProfit"] = {"triggerPrice": intent.take_profit}
        price = intent.price if intent.type is OrderType.LIMIT else None
        try:
            raw = await self._client.create_order(
                intent.symbol, intent.type.value, intent.side.value, intent.amount, price, params
            )
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.InvalidNonce) as exc:
            raise self._error(exc) from None  # refused before it was looked at: nothing was placed
        except ccxt.NetworkError as exc:  # no answer, a timeout or a 5xx: the order may exist
            message = f"{type(exc).__name__} on create: the order may exist ({redact(str(exc), *self._secrets)})"
            raise OrderOutcomeUnknown(message, exchange=self.name) from None
        except ccxt.BaseError as exc:
            raise self._error(exc) from None
        order = _order(raw)
        return ExchangeOrder(
            id=order.id,
            client_order_id=order.client_order_id or intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            status=order.status if raw.get("status") else OrderStatus.SUBMITTED,
            amount=order.amount or intent.amount,
            filled=order.filled,
            price=order.price if order.price is not None else price,
            average=order.average,
            reduce_only=intent.reduce_only,
            stop_loss=intent.stop_loss,
            take_profit=intent.take_profit,
            timestamp_ms=order.timestamp_ms,
        )

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        await self._markets()
        client = self._client
        if self.name == "bybit":
            # Bybit filters by orderLinkId itself: realtime holds open and recent closed orders, history the rest.
            params = {"orderLinkId": client_order_id}
            found = await self._run(client.fetch_open_orders(symbol, params=params))
            if not found:
                found = await self._run(client.fetch_canceled_and_closed_orders(symbol, params=params))
        else:
            found = []
            if client.has.get("fetchOpenOrders"):
                found.extend(await self._run(client.fetch_open_orders(symbol)))
            if client.has.get("fetchClosedOrders"):
                found.extend(await self._run(client.fetch_closed_orders(symbol)))
            elif client.has.get("fetchOrders"):
                found.extend(await self._run(client.fetch_orders(symbol)))
        matches = [row for row in found if row.get("clientOrderId") == client_order_id]
        return _order(matches[0]) if matches else None

    @writes_to_exchange
    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> None:
        if (order_id is None) == (client_order_id is None):
            raise ValueError("cancel_order needs exactly one of order_id and client_order_id")
        await self._markets()
        # ccxt's bybit takes the client id only under Bybit's own name; most others read `clientOrderId`.
        id_param = "orderLinkId" if self.name == "bybit" else "clientOrderId"
        params = {} if client_order_id is None else {id_param: client_order_id}
        await self._run(self._client.cancel_order(order_id, symbol, params))

    @writes_to_exchange
    async def set_leverage(self, symbol: str, leverage: float) -> None:
        await self._markets()
        try:
            await self._run(self._client.set_leverage(leverage, symbol))
        except ExchangeError as exc:
            if exc.code != str(LEVERAGE_NOT_MODIFIED):  # Bybit: already at this leverage, nothing to do
                raise

    async def market_rules(self, symbol: str) -> MarketRules:
        await self._markets()
        try:
            market = self._client.market(symbol)
        except ccxt.BaseError as exc:
            raise self._error(exc) from None
        limits = market.get("limits") or {}
        precision = market.get("precision") or {}
        return MarketRules(
            symbol=symbol,
            min_amount=_float((limits.get("amount") or {}).get("min")),
            amount_step=self._step(precision.get("amount")),
            price_tick=self._step(precision.get("price")),
            min_notional=_float((limits.get("cost") or {}).get("min")),
            max_leverage=_float((limits.get("leverage") or {}).get("max")),
        )

    async def close(self) -> None:
        await self._client.close()

    async def _markets(self) -> None:
        if self._client.markets is None:
            cached = _shared_markets.get(self._markets_key)
            if cached is not None and time.monotonic() - cached[0] < MARKETS_TTL_S:
                self._client.set_markets(cached[1], cached[2])
            else:
                await self._run(self._client.load_markets())
                _shared_markets[self._markets_key] = (time.monotonic(), self._client.markets, self._client.currencies)
        if self.name == "bybit":
            # ccxt asks Bybit for the account type before its first create; asking here, once, keeps that
            # read out of create_order, where a failed read would look like a lost order.
            await self._run(self._client.is_unified_enabled())

    async def _run(self, call: Awaitable[T]) -> T:
        """Await one ccxt call (never an order creation), its exceptions turned into taxonomy errors."""
        try:
            return await call
        except ccxt.BaseError as exc:
            raise self._error(exc) from None

    def _step(self, precision: Any) -> float | None:
        """ccxt precision as a step size, whatever the exchange's precision mode."""
        if precision is None:
            return None
        if self._client.precisionMode == ccxt.DECIMAL_PLACES:
            return 10.0 ** -int(precision)
        return float(precision)  # TICK_SIZE; SIGNIFICANT_DIGITS has no fixed step and is rare for derivatives

    def _error(self, exc: ccxt.BaseError) -> ExchangeError:
        message = redact(f"{type(exc).__name__}: {exc}", *self._secrets)
        match = _RET_CODE.search(str(exc))
        code = match.group(1) if match else None
        kwargs: dict[str, Any] = {"exchange": self.name, "code": code}
        # Order matters: ccxt's subclasses come before their parents.
        if isinstance(exc, ccxt.DuplicateOrderId) or (self.name == "bybit" and code and int(code) in DUPLICATE_CODES):
            return DuplicateClientOrderId(message, **kwargs)
        if isinstance(exc, ccxt.OrderNotFound):
            return OrderNotFound(message, **kwargs)
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFunds(message, **kwargs)
        if isinstance(exc, ccxt.InvalidOrder | ccxt.ArgumentsRequired):
            return InvalidOrder(message, **kwargs)
        if isinstance(exc, ccxt.PermissionDenied):
            return PermissionDenied(message, **kwargs)
        if isinstance(exc, ccxt.AuthenticationError):  # also AccountSuspended
            return AuthenticationFailed(message, **kwargs)
        if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            return RateLimited(message, retry_after=self._retry_after(), **kwargs)
        if isinstance(exc, ccxt.ExchangeNotAvailable):
            return ExchangeUnavailable(message, **kwargs)
        if isinstance(exc, ccxt.InvalidNonce):
            return TemporaryError(message, **kwargs)
        if isinstance(exc, ccxt.NetworkError):  # RequestTimeout and plain connection failures
            return NetworkError(message, **kwargs)
        return ExchangeError(message, **kwargs)

    def _retry_after(self) -> float | None:
        headers = self._client.last_response_headers or {}
        if self.name == "bybit":
            return bybit_retry_after(headers)
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


def _key_check_from_binance(restrictions: Mapping[str, Any]) -> KeyCheck:
    trade_flags = ("enableSpotAndMarginTrading", "enableFutures", "enablePortfolioMarginTrading")
    can_trade = any(restrictions.get(flag) for flag in trade_flags)
    return KeyCheck(
        can_withdraw=bool(restrictions.get("enableWithdrawals")),
        ip_whitelisted=bool(restrictions.get("ipRestrict")),
        can_trade=can_trade,
        read_only=not can_trade,
    )


def _order(raw: Mapping[str, Any]) -> ExchangeOrder:
    side = raw.get("side")
    order_type = raw.get("type")
    return ExchangeOrder(
        id=str(raw.get("id")),
        client_order_id=raw.get("clientOrderId") or None,
        symbol=str(raw.get("symbol")),
        side=Side(side) if side in ("buy", "sell") else None,
        type=OrderType(order_type) if order_type in ("market", "limit") else None,
        status=_STATUS.get(str(raw.get("status")), OrderStatus.SUBMITTED),
        amount=_float(raw.get("amount")),
        filled=_float(raw.get("filled")),
        price=_float(raw.get("price")) if order_type == "limit" else None,
        average=_float(raw.get("average")),
        reduce_only=raw.get("reduceOnly"),
        stop_loss=_float(raw.get("stopLossPrice")),
        take_profit=_float(raw.get("takeProfitPrice")),
        timestamp_ms=raw.get("timestamp"),
    )


def _position(raw: Mapping[str, Any]) -> Position | None:
    contracts = _float(raw.get("contracts")) or 0.0
    if not contracts or raw.get("side") not in ("long", "short"):
        return None
    return Position(
        symbol=str(raw.get("symbol")),
        side=PositionSide(raw["side"]),
        amount=contracts,
        entry_price=_float(raw.get("entryPrice")),
        mark_price=_float(raw.get("markPrice")),
        unrealized_pnl=_float(raw.get("unrealizedPnl")),
        leverage=_float(raw.get("leverage")),
        liquidation_price=_float(raw.get("liquidationPrice")),
        stop_loss=_float(raw.get("stopLossPrice")),
        take_profit=_float(raw.get("takeProfitPrice")),
    )


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)
