"""The one fill model: fill prices, fees, netting, stop and target triggers, PnL and margin, exactly."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from workers.exchanges.base import PositionSide, Side
from workers.market.candles import Candles
from workers.market.fills import (
    AMOUNT_UNIT,
    FillModel,
    Holding,
    first_trigger,
    margin,
    net,
    pnl,
    settle_currency,
    trigger,
)

D = Decimal
MODEL = FillModel.from_pct(0.1, 0.05)  # the paper exchange's defaults: 0.1 % fee, 0.05 % slippage


def long(stop: str | None = "95", target: str | None = "110") -> Holding:
    return Holding(symbol="X/USDT", side=PositionSide.LONG, amount=D(2), entry_price=D(100),
                   stop_loss=D(stop) if stop else None, take_profit=D(target) if target else None)


def short(stop: str = "105", target: str = "90") -> Holding:
    return Holding(symbol="X/USDT:USDT", side=PositionSide.SHORT, amount=D(2), entry_price=D(100),
                   stop_loss=D(stop), take_profit=D(target))


def test_settle_currency_is_the_quote_on_spot_and_the_settle_on_derivatives():
    assert settle_currency("BTC/USDT") == "USDT"
    assert settle_currency("BTC/USDT:USDT") == "USDT"
    assert settle_currency("BTC/USD:BTC") == "BTC"


def test_a_market_order_fills_worse_by_the_slippage_and_pays_the_fee_on_its_notional():
    bought = MODEL.market(Side.BUY, D(2), D(100))
    sold = MODEL.market(Side.SELL, D(2), D(100))
    assert bought.price == D("100.05") and sold.price == D("99.95")
    assert bought.fee == D("0.2001") and sold.fee == D("0.1999")
    assert bought.cash_flow == D("-200.1") and sold.cash_flow == D("199.9")
    assert bought.slippage == sold.slippage == D("0.1")


def test_amounts_round_down_to_the_unit_and_prices_to_fifteen_digits_so_a_float_carries_them_unchanged():
    fill = MODEL.market(Side.BUY, D("1.23456789"), D("65432.123456789"))
    assert fill.amount == D("1.234567") and fill.amount.as_tuple().exponent >= AMOUNT_UNIT.as_tuple().exponent
    for figure in (fill.amount, fill.price, fill.fee):
        assert D(repr(float(figure))) == figure
    assert fill.cash_flow.as_tuple().exponent >= -18  # a notional fits the money columns' 18 decimals


def test_pnl_is_exact_and_signed_by_the_side():
    assert pnl(PositionSide.LONG, D("100.05"), D("109.945"), D(2)) == D("19.790")
    assert pnl(PositionSide.SHORT, D("100"), D("90"), D(2)) == D(20)
    # 15 digits times 15 digits: more than the default context's 28, still exact
    assert pnl("long", D("0.123456789012345"), D("0.223456789012345"), D("123456789.012345")) == D(
        "12345678.9012345"
    )


def test_margin_is_the_notional_over_the_leverage():
    assert margin(D(2), D(100), D(4)) == D(50)
    assert long().margin == D(200)


def test_a_fill_against_the_position_reduces_closes_or_flips_it():
    held = long()
    partly = net(held, MODEL.market(Side.SELL, D(1), D(110)), symbol=held.symbol)
    assert partly.holding is not None and partly.holding.amount == D(1) and partly.opened == 0
    assert partly.realised == D("9.945") and partly.cash == D("9.945") - D("0.1099450")

    closed = net(held, MODEL.market(Side.SELL, D(2), D(110)), symbol=held.symbol)
    assert closed.holding is None and closed.required == 0  # a way out never needs margin

    flipped = net(held, MODEL.market(Side.SELL, D(3), D(110)), symbol=held.symbol, leverage=D(2))
    assert flipped.holding is not None and flipped.holding.side == PositionSide.SHORT
    assert (flipped.holding.amount, flipped.holding.entry_price, flipped.opened) == (D(1), D("109.945"), D(1))
    assert flipped.holding.stop_loss is None  # the flipped position starts without the old stop
    assert flipped.required == D("54.9725") + flipped.fee


def test_a_fill_with_the_position_adds_at_the_average_entry():
    free = FillModel(D(0), D(0))
    added = net(long(), free.market(Side.BUY, D(2), D(110)), symbol="X/USDT", stop_loss=D(99))
    assert added.holding is not None
    assert (added.holding.amount, added.holding.entry_price, added.holding.stop_loss) == (D(4), D("105"), D(99))
    assert added.holding.take_profit == D(110) and added.realised == 0


@pytest.mark.parametrize(
    ("holding", "candle", "reason", "price"),
    [
        (long(), ("100", "101", "94", "96"), "stop_loss", "95"),
        (long(), ("100", "111", "99", "109"), "take_profit", "110"),
        (long(), ("93", "94", "92", "93"), "stop_loss", "93"),  # gapped through the stop: its open
        (long(), ("112", "113", "111", "112"), "take_profit", "112"),  # gapped through the target: its open
        (long(), ("100", "111", "94", "105"), "stop_loss", "95"),  # touched both: the stop
        (short(), ("100", "106", "99", "104"), "stop_loss", "105"),
        (short(), ("100", "101", "89", "90"), "take_profit", "90"),
        (short(), ("107", "108", "106", "107"), "stop_loss", "107"),
        (short(), ("100", "106", "89", "100"), "stop_loss", "105"),
    ],
)
def test_a_candle_reaching_the_stop_or_target_takes_the_position_out(holding, candle, reason, price):
    open_, high, low, _close = (D(x) for x in candle)
    hit = trigger(holding, open_, high, low)
    assert hit is not None and (hit.reason, hit.price) == (reason, D(price))


def test_a_candle_inside_the_stop_and_target_leaves_the_position_open():
    assert trigger(long(), D(100), D(109), D(96)) is None
    assert trigger(long(stop=None, target=None), D(100), D(200), D(1)) is None


def test_the_first_candle_since_the_last_check_decides_in_time_order():
    ts = np.array([0, 300_000, 600_000, 900_000], dtype=np.int64)
    o = np.array([100.0, 100.0, 100.0, 100.0])
    h = np.array([111.0, 100.5, 111.0, 100.5])  # the first candle would hit the target, but was checked
    lo = np.array([99.5, 94.0, 94.0, 99.5])
    candles = Candles("X/USDT", "5m", ts, o, h, lo, o, np.ones(4))
    hit = first_trigger(candles, 300_000, long())
    assert hit is not None and (hit.reason, hit.level) == ("stop_loss", D(95))
    assert first_trigger(candles, 1_200_000, long()) is None


def test_a_stop_only_ever_tightens():
    held = long()
    assert held.tightened(D(97), D(100)).stop_loss == D(97)
    assert held.tightened(D(90), D(100)).stop_loss == D(95)  # looser: kept
    assert held.tightened(D(101), D(100)).stop_loss == D(95)  # beyond the price: kept
    assert short().tightened(D(103), D(100)).stop_loss == D(103)


def test_a_round_trip_moves_the_cash_by_its_cash_flows_less_its_fees():
    bought = MODEL.market(Side.BUY, D("3.3"), D("0.0512345"))
    opened = net(None, bought, symbol="ETH/BTC")
    assert opened.holding is not None and opened.cash == -bought.fee
    sold = MODEL.market(Side.SELL, opened.holding.amount, D("0.0498765"))
    closed = net(opened.holding, sold, symbol="ETH/BTC")
    assert opened.cash + closed.cash == bought.cash_flow + sold.cash_flow - bought.fee - sold.fee
