"""Gann agent: Square of 9 arithmetic, price scale, time cycles and the 1x1 angle from the pivot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.agents.gann import (
    cycle_status,
    gann_insight,
    one_by_one,
    price_scale,
    square_of_nine,
    square_of_nine_levels,
)
from workers.agents.insight import AgentName
from workers.market.candles import Candles


def test_forty_turned_by_225_degrees_is_about_57_37():
    assert square_of_nine(40, 225) == pytest.approx(57.37, abs=0.005)
    assert square_of_nine(40, 225) == pytest.approx((math.sqrt(40) + 1.25) ** 2, rel=1e-15)


@pytest.mark.parametrize(
    "price,degrees,expected",
    [
        (100, 360, 144.0),  # a full turn adds 2 to the root: 10 -> 12
        (144, -360, 100.0),
        (100, 180, 121.0),
        (100, 90, 110.25),
        (100, 45, 105.0625),
        (100, -180, 81.0),
        (1, 360, 9.0),
    ],
)
def test_square_of_nine_reference_values(price, degrees, expected):
    assert square_of_nine(price, degrees) == pytest.approx(expected, rel=1e-12)


def test_square_of_nine_refuses_prices_it_cannot_turn():
    with pytest.raises(ValueError):
        square_of_nine(0, 45)
    with pytest.raises(ValueError):
        square_of_nine(1, -360)  # root 1 - 2 < 0


def test_levels_every_45_degrees_both_ways_from_the_anchor():
    levels = {lv.name: lv.price for lv in square_of_nine_levels(100.0)}
    assert levels["gann_+360"] == pytest.approx(144.0)
    assert levels["gann_-360"] == pytest.approx(64.0)
    assert levels["gann_+45"] == pytest.approx(105.0625)
    assert len(levels) == 16
    ups = [levels[f"gann_+{d}"] for d in range(45, 361, 45)]
    assert ups == sorted(ups)


@pytest.mark.parametrize(
    "price,scale", [(0.0995, 1e4), (5.33e-5, 1e7), (60_000.0, 0.01), (40.0, 10.0), (100.0, 1.0), (999.0, 1.0)]
)
def test_price_scale_brings_any_quote_into_the_hundreds(price, scale):
    assert price_scale(price) == pytest.approx(scale)
    assert 100 <= price * price_scale(price) < 1000


def test_scaled_levels_are_the_unscaled_wheel_divided_back():
    levels = {lv.name: lv.price for lv in square_of_nine_levels(0.04, scale=1000.0)}
    assert levels["gann_+225"] == pytest.approx(square_of_nine(40, 225) / 1000.0)


def test_one_by_one_turns_one_degree_per_bar_from_the_pivot():
    assert one_by_one(100.0, rising=True, bars=180) == pytest.approx(121.0)
    assert one_by_one(100.0, rising=False, bars=180) == pytest.approx(81.0)
    assert one_by_one(100.0, rising=True, bars=0) == pytest.approx(100.0)
    assert one_by_one(1.0, rising=False, bars=400) == 0.0


@pytest.mark.parametrize(
    "bars,hit,ahead", [(89, 90, 90), (90, 90, 120), (100, None, 120), (143, 144, 144), (5, None, 30), (400, None, None)]
)
def test_time_cycle_counts_from_the_pivot(bars, hit, ahead):
    assert cycle_status(bars) == (hit, ahead)


def _pivot_then_rally(bars_after: int, step: float) -> Candles:
    """A fall to a low of 100 at bar 30, then a straight rally of `step` per bar."""
    down = np.linspace(130, 100, 31)
    up = 100 + step * np.arange(1, bars_after + 1)
    close = np.concatenate((down, up))
    ts = np.arange(close.shape[0], dtype=np.int64) * 3_600_000
    return Candles("TEST/USDT", "1h", ts, close, close + 0.5, close - 0.5, close, np.ones_like(close))


def test_rally_faster_than_the_1x1_reads_strong_and_slower_reads_weak():
    # With price scale 1 the 1x1 from 100 rises by about 0.11 per bar.
    fast = gann_insight("TEST/USDT", _pivot_then_rally(60, 0.5), scale=1.0)
    slow = gann_insight("TEST/USDT", _pivot_then_rally(60, 0.02), scale=1.0)
    for insight in (fast, slow):
        assert insight.agent is AgentName.GANN
        assert insight.values["pivot_price"] == pytest.approx(99.5)  # the low of the pivot candle
        assert insight.values["bars_since_pivot"] == 60
        assert insight.values["pivot_is_low"] == 1.0
        assert insight.values["cycle_due"] == 1.0  # 60 is a Gann count
    assert fast.values["distance_to_1x1_atr"] > 0 > slow.values["distance_to_1x1_atr"]
    assert fast.score > slow.score
    line = {lv.name: lv.price for lv in fast.levels}["one_by_one"]
    assert line == pytest.approx(one_by_one(99.5, True, 60))


def test_gann_abstains_without_a_pivot():
    close = np.linspace(100, 120, 15)
    ts = np.arange(15, dtype=np.int64) * 60_000
    c = Candles("TEST/USDT", "1m", ts, close, close, close, close, np.ones(15))
    for candles in (c, c.head(0)):
        insight = gann_insight("TEST/USDT", candles)
        assert insight.score == 0.0 and insight.confidence == 0.0
        assert all(np.isfinite(v) for v in insight.values.values())


def test_gann_on_real_candles_gives_positive_levels_and_bounded_score(series):
    for name in ("ETH_BTC-5m", "ADA_BTC-5m", "XRP_USDT_USDT-1h"):
        insight = gann_insight(name, series(name))
        assert -1 <= insight.score <= 1 and 0 <= insight.confidence <= 1
        assert insight.levels and all(lv.price > 0 and np.isfinite(lv.price) for lv in insight.levels)
        assert all(np.isfinite(v) for v in insight.values.values())
