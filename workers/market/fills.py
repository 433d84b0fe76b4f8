"""The one fill model: what a market order fills at and pays, when a stop or target takes a position out, what a
position makes and the margin it holds. Pure (no I/O, no clock): the paper exchange keeps its results in
PostgreSQL, the backtest in memory, the ledger books closes with `pnl`.

Rules
-----
* A market order fills at the reference price (the last close, a candle's open, a stop or target level) moved
  against us by the slippage, and pays the fee rate on its notional (amount x fill price).
* Long and short are one-way and netted: an order against the position reduces it, past zero flips it; an order
  with it adds at the average entry.
* A stop or target is reached when a candle's low or high touches it. A candle opening beyond the level fills at
  its open (a gap); one touching both counts as the stop (the conservative reading).
* Linear contracts: PnL is (exit - entry) x amount for a long, the reverse for a short, in the settle currency.

Money is `Decimal` and every figure is exact by construction: fill prices are rounded to `PRICE_UNIT`, amounts
down to `AMOUNT_UNIT` and fees to `MONEY_UNIT`, each to at most 15 significant digits. So a notional or a PnL has
at most 18 decimals (what the database's money columns hold), and a price, amount or fee survives the float an
`ExchangeOrder` carries it in: the cash a paper account moves, the fills the ledger stores and the realised PnL
it books agree to the last unit.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal

import msgspec
import numpy as np

from workers.exchanges.base import PositionSide, Side
from workers.market.candles import Candles

ZERO = Decimal(0)
ONE = Decimal(1)
PRICE_UNIT = Decimal("1e-12")
AMOUNT_UNIT = Decimal("1e-6")
MONEY_UNIT = Decimal("1e-18")  # the scale of the money columns (Numeric(38, 18))
FLOAT_DIGITS = 15  # any decimal of at most 15 significant digits comes back unchanged from a float
STOP_LOSS, TAKE_PROFIT = "stop_loss", "take_profit"

# Products of two 15-digit figures have 30 digits: more than the default context's 28.
_EXACT = Context(prec=60)


def settle_currency(symbol: str) -> str:
    """The currency an order on `symbol` is paid and settled in: `BTC/USDT` → USDT, `BTC/USD:BTC` → BTC."""
    pair, _, settle = symbol.partition(":")
    return settle or pair.partition("/")[2]


def decimal(value: float) -> Decimal:
    """A float as the decimal it prints as (`0.1` → `Decimal("0.1")`, not its binary expansion)."""
    return Decimal(repr(float(value)))


def _rounded(value: Decimal, unit: Decimal, rounding: str) -> Decimal:
    exponent = max(unit.as_tuple().exponent, value.adjusted() - FLOAT_DIGITS + 1) if value else unit.as_tuple().exponent
    return value.quantize(Decimal((0, (1,), exponent)), rounding=rounding)


def round_price(price: Decimal) -> Decimal:
    return _rounded(price, PRICE_UNIT, ROUND_HALF_EVEN)


def round_amount(amount: Decimal) -> Decimal:
    """Down, never up: more than the order asked for could exceed the funds it was sized for."""
    return _rounded(amount, AMOUNT_UNIT, ROUND_DOWN)


def pnl(side: PositionSide | str, entry: Decimal, exit_: Decimal, amount: Decimal) -> Decimal:
    """What `amount` makes from `entry` to `exit_`, before fees (exact)."""
    move = _EXACT.subtract(exit_, entry) if side == PositionSide.LONG else _EXACT.subtract(entry, exit_)
    return _EXACT.multiply(move, amount)


def margin(amount: Decimal, price: Decimal, leverage: Decimal) -> Decimal:
    """The margin `amount` at `price` holds at `leverage`."""
    return amount * price / leverage


def closing_side(side: PositionSide | str) -> Side:
    return Side.SELL if side == PositionSide.LONG else Side.BUY


class Fill(msgspec.Struct, frozen=True):
    """A market order's execution: `price` after slippage, `fee` in the settle currency."""

    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    reference: Decimal  # the price before slippage

    @property
    def cash_flow(self) -> Decimal:
        """What the fill moves before its fee: the notional in for a sell, out for a buy."""
        notional = _EXACT.multiply(self.amount, self.price)
        return notional if self.side is Side.SELL else -notional

    @property
    def slippage(self) -> Decimal:
        """What the slippage cost against the reference price."""
        return _EXACT.multiply(self.amount, abs(self.price - self.reference))


class FillModel(msgspec.Struct, frozen=True):
    """The costs of a fill: fractions of the notional (fee) and of the price (slippage, against us)."""

    fee_rate: Decimal
    slippage_rate: Decimal

    @classmethod
    def from_pct(cls, fee_pct: float, slippage_pct: float) -> FillModel:
        return cls(decimal(fee_pct) / 100, decimal(slippage_pct) / 100)

    @classmethod
    def from_bps(cls, fee_bps: float, slippage_bps: float) -> FillModel:
        return cls(decimal(fee_bps) / 10_000, decimal(slippage_bps) / 10_000)

    def fill_price(self, side: Side, reference: Decimal) -> Decimal:
        slipped = reference * (ONE + self.slippage_rate if side is Side.BUY else ONE - self.slippage_rate)
        return round_price(slipped)

    def market(self, side: Side, amount: Decimal, reference: Decimal) -> Fill:
        """A market order of `amount` (rounded down to the amount unit) against `reference`."""
        amount = round_amount(amount)
        price = self.fill_price(side, reference)
        fee = _rounded(_EXACT.multiply(_EXACT.multiply(amount, price), self.fee_rate), MONEY_UNIT, ROUND_HALF_EVEN)
        return Fill(side, amount, price, fee, reference)


class Holding(msgspec.Struct, frozen=True, kw_only=True):
    """An open position as the fill model sees it (the paper exchange's rows and the backtest's state)."""

    symbol: str
    side: PositionSide
    amount: Decimal
    entry_price: Decimal  # the average entry fill
    leverage: Decimal = ONE
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    fees: Decimal = ZERO  # paid by the fills that opened it

    @property
    def margin(self) -> Decimal:
        return margin(self.amount, self.entry_price, self.leverage)

    def pnl(self, price: Decimal) -> Decimal:
        """Unrealised PnL marked at `price`."""
        return pnl(self.side, self.entry_price, price, self.amount)

    def tightened(self, stop: Decimal, price: Decimal) -> Holding:
        """The stop moved to `stop` if that is tighter and still on the right side of `price`; never loosened."""
        if self.stop_loss is None:
            tighter = stop < price if self.side == PositionSide.LONG else stop > price
        elif self.side == PositionSide.LONG:
            tighter = self.stop_loss < stop < price
        else:
            tighter = price < stop < self.stop_loss
        return msgspec.structs.replace(self, stop_loss=stop) if tighter else self


class Netted(msgspec.Struct, frozen=True):
    """A fill netted into a position: what is left, the PnL the reduced part realised, the amount newly opened."""

    holding: Holding | None
    realised: Decimal  # before the fee
    opened: Decimal
    fee: Decimal

    @property
    def cash(self) -> Decimal:
        """What the fill changes the account's cash by: realised PnL in, fee out."""
        return self.realised - self.fee

    @property
    def required(self) -> Decimal:
        """The cash the fill needs free of other positions' margin: the margin of the position it leaves plus
        the fee when it opens or adds, nothing when it only reduces (a way out is never refused)."""
        if self.opened <= 0 or self.holding is None:
            return ZERO
        return self.holding.margin + self.fee


def net(
    holding: Holding | None,
    fill: Fill,
    *,
    symbol: str,
    leverage: Decimal = ONE,
    stop_loss: Decimal | None = None,
    take_profit: Decimal | None = None,
) -> Netted:
    """`fill` applied to `holding` (None: flat): it opens, adds, reduces, closes or flips the position.

    A new or flipped position takes `leverage`, `stop_loss` and `take_profit`; an add takes `leverage` and any
    stop or target given. A partial reduce keeps the fees paid so far on what remains."""
    side = PositionSide.LONG if fill.side is Side.BUY else PositionSide.SHORT
    if holding is None:
        opened = Holding(symbol=symbol, side=side, amount=fill.amount, entry_price=fill.price, leverage=leverage,
                         stop_loss=stop_loss, take_profit=take_profit, fees=fill.fee)
        return Netted(opened, ZERO, fill.amount, fill.fee)
    if holding.side == side:  # adds: average the entry
        total = holding.amount + fill.amount
        entry = round_price((holding.entry_price * holding.amount + fill.price * fill.amount) / total)
        added = msgspec.structs.replace(
            holding, amount=total, entry_price=entry, leverage=leverage, fees=holding.fees + fill.fee,
            stop_loss=stop_loss if stop_loss is not None else holding.stop_loss,
            take_profit=take_profit if take_profit is not None else holding.take_profit,
        )
        return Netted(added, ZERO, fill.amount, fill.fee)
    closing = min(fill.amount, holding.amount)
    realised = pnl(holding.side, holding.entry_price, fill.price, closing)
    if fill.amount > holding.amount:  # flips
        rest = fill.amount - holding.amount
        flipped = Holding(symbol=symbol, side=side, amount=rest, entry_price=fill.price, leverage=leverage,
                          stop_loss=stop_loss, take_profit=take_profit, fees=fill.fee)
        return Netted(flipped, realised, rest, fill.fee)
    if fill.amount == holding.amount:
        return Netted(None, realised, ZERO, fill.fee)
    return Netted(msgspec.structs.replace(holding, amount=holding.amount - closing), realised, ZERO, fill.fee)


class Trigger(msgspec.Struct, frozen=True):
    """A stop or target a candle reached: which, its level, and the price a market exit goes out against (the
    candle's open when it gapped through the level)."""

    reason: str  # stop_loss | take_profit
    level: Decimal
    price: Decimal


def trigger(holding: Holding, open_: Decimal, high: Decimal, low: Decimal) -> Trigger | None:
    """Whether this candle takes `holding` out at its stop or target; the stop wins when both are touched."""
    stop, target = holding.stop_loss, holding.take_profit
    if holding.side == PositionSide.LONG:
        if stop is not None and low <= stop:
            return Trigger(STOP_LOSS, stop, min(open_, stop))
        if target is not None and high >= target:
            return Trigger(TAKE_PROFIT, target, max(open_, target))
    else:
        if stop is not None and high >= stop:
            return Trigger(STOP_LOSS, stop, max(open_, stop))
        if target is not None and low <= target:
            return Trigger(TAKE_PROFIT, target, min(open_, target))
    return None


def first_trigger(candles: Candles, since_ms: int, holding: Holding) -> Trigger | None:
    """The first candle opening at or after `since_ms` that takes `holding` out, in time order."""
    if holding.stop_loss is None and holding.take_profit is None:
        return None
    start = int(np.searchsorted(candles.timestamp, since_ms, side="left"))
    for i in range(start, len(candles)):
        hit = trigger(holding, decimal(candles.open[i]), decimal(candles.high[i]), decimal(candles.low[i]))
        if hit is not None:
            return hit
    return None
