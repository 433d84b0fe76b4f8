"""The one interface every exchange adapter implements (paper, ccxt, Bybit via pybit), and its types.

Symbols are ccxt's unified symbols everywhere: `BTC/USDT` is spot, `BTC/USDT:USDT` the USDT-margined
perpetual, `BTC/USD:BTC` the inverse one. Prices and amounts are floats, as the exchange libraries
hand them over; amounts count the exchange's order units: base currency on spot and on Bybit's
linear perpetuals, contracts where a contract is something else (inverse: USD). They are
rounded to the market's step and tick by the adapter before sending (`MarketRules.round_amount`,
`round_price`), and converted to Decimal by whoever stores money.

Orders are idempotent by a deterministic client order id (`client_order_id`), recorded before the
request is sent. When the answer to a create is lost (`OrderOutcomeUnknown`) or the exchange says the
id is taken (`DuplicateClientOrderId`), the order is found with `fetch_order_by_client_id`; a create is
never sent twice. Errors are the types of `workers.exchanges.errors`, each carrying the action to take.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

import msgspec

from workers.agents.insight import PositionSide  # one side type for agents, brain, fills, exchanges

# Bybit's orderLinkId and Binance's newClientOrderId allow 36 characters, OKX's clOrdId 32
# (alphanumeric, starting with a letter): "q" and 30 base32 characters (150 bits) fit all three.
CLIENT_ORDER_ID_LENGTH = 31
# What every exchange we know of accepts in a client order id (Bybit: letters, digits, '-' and '_').
_CLIENT_ID_CHARS = re.compile(r"[A-Za-z0-9_-]{1,36}")


def client_order_id(bot_id: object, slot: int | str, symbol: str, leg: str) -> str:
    """The client order id of one order leg of one bot in one cycle slot: same inputs, same id.

    `slot` names the cycle (for example the open time of the decision candle), `leg` the order's
    role in it (`entry`, `stop_loss`, `take_profit`, `close`).
    """
    # The unit separator cannot occur in the parts, so ("a", "b:c") and ("a:b", "c") stay distinct.
    material = "\x1f".join((str(bot_id), str(slot), symbol, leg)).encode()
    digest = base64.b32encode(hashlib.sha256(material).digest()).decode().lower()
    return "q" + digest[: CLIENT_ORDER_ID_LENGTH - 1]


def exit_client_order_id(entry_client_order_id: str) -> str:
    """The client order id of the exit an exchange makes by itself (a stop-loss or take-profit reached) from the
    position the order `entry_client_order_id` opened: the paper exchange names its exits so, and the cycle
    looks them up by it. Same shape as `client_order_id`'s."""
    material = f"{entry_client_order_id}\x1fexit".encode()
    digest = base64.b32encode(hashlib.sha256(material).digest()).decode().lower()
    return "q" + digest[: CLIENT_ORDER_ID_LENGTH - 1]


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    SUBMITTED = "submitted"  # accepted by the exchange, state not reported yet (the answer to a create)
    OPEN = "open"  # resting, possibly partly filled
    FILLED = "filled"
    CANCELED = "canceled"  # possibly after a partial fill
    REJECTED = "rejected"
    EXPIRED = "expired"


class KeyCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What the exchange says a key may do; None where the exchange offers no way to tell."""

    can_withdraw: bool | None
    ip_whitelisted: bool | None
    can_trade: bool | None
    read_only: bool | None = None
    notes: tuple[str, ...] = ()


class OrderIntent(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the cycle means it, before it is sent; `client_order_id` comes from `client_order_id()`."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: float
    price: float | None = None  # required for limit orders
    reduce_only: bool = False
    stop_loss: float | None = None  # trigger price of a stop attached to the order, where supported
    take_profit: float | None = None
    leverage: float | None = None  # set on the symbol before the order when given

    def __post_init__(self) -> None:
        if not _CLIENT_ID_CHARS.fullmatch(self.client_order_id):
            raise ValueError("client_order_id must be 1 to 36 ASCII letters, digits, '-' or '_'")
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise ValueError("amount must be a positive number")
        if self.type is OrderType.LIMIT and self.price is None:
            raise ValueError("a limit order needs a price")
        for name in ("price", "stop_loss", "take_profit", "leverage"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number")


class ExchangeOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the exchange reports it."""

    id: str
    client_order_id: str | None
    symbol: str
    side: Side | None
    type: OrderType | None
    status: OrderStatus
    amount: float | None
    filled: float | None = None
    price: float | None = None  # limit price
    average: float | None = None  # average fill price
    reduce_only: bool | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    timestamp_ms: int | None = None
    fee: float | None = None  # in the settle currency, when the exchange reports it


class AssetBalance(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    total: float
    free: float | None  # None when the exchange does not say (used = total - free)


class Position(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    side: PositionSide
    amount: float  # always positive; `side` gives the direction
    entry_price: float | None
    mark_price: float | None = None
    unrealized_pnl: float | None = None
    leverage: float | None = None
    liquidation_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None


class MarketRules(msgspec.Struct, frozen=True, kw_only=True):
    """What an order on `symbol` must respect; None where the exchange sets no such rule."""

    symbol: str
    min_amount: float | None
    amount_step: float | None
    price_tick: float | None
    min_notional: float | None
    max_leverage: float | None = None

    def round_amount(self, amount: float) -> float:
        """`amount` rounded down to the amount step (never up: that could exceed the funds sized for)."""
        return _to_step(amount, self.amount_step, ROUND_DOWN)

    def round_price(self, price: float) -> float:
        """`price` rounded to the nearest price tick."""
        return _to_step(price, self.price_tick, ROUND_HALF_UP)


def _to_step(value: float, step: float | None, rounding: str) -> float:
    if not step:
        return value
    step_d = Decimal(repr(step))
    return float((Decimal(repr(value)) / step_d).quantize(Decimal(1), rounding=rounding) * step_d)


@runtime_checkable
class Exchange(Protocol):
    """One trading account on one exchange, reached with one API key. All methods are coroutines.

    Reads may be wrapped in `errors.retry_read`; `create_order`, `cancel_order` and `set_leverage` never are.
    """

    name: str

    async def check_key(self) -> KeyCheck:
        """What the key may do (withdraw, trade, IP whitelist), as far as the exchange tells."""
        ...

    async def fetch_balance(self) -> dict[str, AssetBalance]:
        """Balances by currency code, zero balances left out."""
        ...

    async def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        """Open positions on these symbols (closed, zero-size ones left out)."""
        ...

    async def fetch_open_orders(self, symbol: str) -> list[ExchangeOrder]:
        """Orders on `symbol` still resting on the book."""
        ...

    async def create_order(self, intent: OrderIntent) -> ExchangeOrder:
        """Send the order once. A lost answer raises OrderOutcomeUnknown: look it up, never resend."""
        ...

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        """The order with this client order id in any state, or None if the exchange has none."""
        ...

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> None:
        """Cancel by exchange id or client order id; OrderNotFound if there is no such open order."""
        ...

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        """Set the leverage of `symbol`; setting the value it already has is not an error."""
        ...

    async def market_rules(self, symbol: str) -> MarketRules:
        """Minimum amount, amount step, price tick and minimum notional of `symbol`."""
        ...

    async def close(self) -> None:
        """Release the HTTP session; the adapter is not used afterwards."""
        ...
