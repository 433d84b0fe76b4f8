"""Fibonacci agent: pivots, direction-aware levels on hand-made swings, nearest support and resistance."""

from __future__ import annotations

import numpy as np
import pytest

from workers.agents.fibonacci import PivotKind, fibonacci_insight, fractal_pivots, last_swing
from workers.agents.insight import AgentName
from workers.market.candles import Candles


def candles_from_closes(closes: list[float], timeframe: str = "1h") -> Candles:
    """Candles whose high, low, open and close are all the given price: pivots fall exactly on it."""
    c = np.asarray(closes, dtype=np.float64)
    ts = np.arange(c.shape[0], dtype=np.int64) * 3_600_000
    return Candles("TEST/USDT", timeframe, ts, c, c.copy(), c.copy(), c.copy(), np.ones_like(c))


def path(*legs: tuple[float, float, int]) -> list[float]:
    """Straight legs (start, end, bars) joined end to start."""
    out: list[float] = []
    for start, end, bars in legs:
        leg = np.linspace(start, end, bars + 1).tolist()
        out += leg if not out else leg[1:]
    return out


# 150 -> 100 at bar 10 -> 200 at bar 30 -> 160 at bar 40 (the last bar).
UP_SWING = path((150, 100, 10), (100, 200, 20), (200, 160, 10))
# 150 -> 200 at bar 10 -> 100 at bar 30 -> 140 at bar 40.
DOWN_SWING = path((150, 200, 10), (200, 100, 20), (100, 140, 10))


def levels_of(insight) -> dict[str, float]:
    return {lv.name: lv.price for lv in insight.levels}


def test_up_swing_retracements_lie_below_the_high_and_extensions_above():
    insight = fibonacci_insight("TEST/USDT", candles_from_closes(UP_SWING))
    levels = levels_of(insight)
    expected = {
        "fib_0.236": 176.4,
        "fib_0.382": 161.8,
        "fib_0.5": 150.0,
        "fib_0.618": 138.2,
        "fib_0.786": 121.4,
        "ext_1.272": 227.2,
        "ext_1.618": 261.8,
        "ext_2.618": 361.8,
        "swing_high": 200.0,
        "swing_low": 100.0,
    }
    for name, price in expected.items():
        assert levels[name] == pytest.approx(price, abs=1e-9), name
    assert insight.agent is AgentName.FIBONACCI
    assert insight.values["swing_direction"] == 1.0
    assert insight.values["retracement"] == pytest.approx(0.4)


def test_nearest_levels_around_the_price_are_named_support_and_resistance():
    levels = levels_of(fibonacci_insight("TEST/USDT", candles_from_closes(UP_SWING)))
    # Price 160 sits between fib_0.5 (150) and fib_0.382 (161.8).
    assert levels["support"] == pytest.approx(150.0)
    assert levels["resistance"] == pytest.approx(161.8)


def test_pullback_into_an_up_swing_reads_bullish():
    insight = fibonacci_insight("TEST/USDT", candles_from_closes(UP_SWING))
    assert insight.score > 0.3
    assert 0 < insight.confidence <= 1


def test_down_swing_mirrors_levels_and_reads_bearish_on_a_bounce():
    insight = fibonacci_insight("TEST/USDT", candles_from_closes(DOWN_SWING))
    levels = levels_of(insight)
    assert levels["fib_0.382"] == pytest.approx(138.2)
    assert levels["fib_0.618"] == pytest.approx(161.8)
    assert levels["ext_1.618"] == pytest.approx(38.2)
    assert levels["support"] == pytest.approx(138.2)
    assert levels["resistance"] == pytest.approx(150.0)
    assert insight.values["swing_direction"] == -1.0
    assert insight.score < -0.3


def test_extensions_that_would_be_negative_prices_are_left_out():
    # A down-swing from 200 to 100 projects 2.618 x 100 below 200: -61.8 is not a price.
    levels = levels_of(fibonacci_insight("TEST/USDT", candles_from_closes(DOWN_SWING)))
    assert "ext_2.618" not in levels
    assert all(price > 0 for price in levels.values())


def test_fractal_pivot_needs_window_bars_on_both_sides_and_takes_the_first_of_a_flat_top():
    closes = [1, 2, 3, 5, 5, 3, 2, 1, 0.5, 1, 2]
    c = candles_from_closes(closes)
    pivots = fractal_pivots(c.high, c.low, window=2)
    highs = [p.index for p in pivots if p.kind is PivotKind.HIGH]
    lows = [p.index for p in pivots if p.kind is PivotKind.LOW]
    assert highs == [3]  # bar 4 ties bar 3 and loses
    assert lows == [8]
    # The last `window` bars can never be pivots: nothing is read from the future.
    assert fractal_pivots(c.high[:9], c.low[:9], window=2)[-1].index == 3


def test_small_reversals_below_min_move_do_not_make_a_swing():
    closes = path((100, 110, 10), (110, 109, 6), (109, 120, 10))
    c = candles_from_closes(closes)
    assert last_swing(c.high, c.low, window=3, min_move=5.0) is None
    swing = last_swing(c.high, c.low, window=3, min_move=0.5)
    assert swing is not None and swing.low == pytest.approx(109.0) and swing.high == pytest.approx(110.0)


def test_without_a_swing_the_agent_abstains():
    for closes in ([], [100.0], path((100, 120, 30))):
        insight = fibonacci_insight("TEST/USDT", candles_from_closes(closes))
        assert insight.score == 0.0 and insight.confidence == 0.0
        assert insight.levels == ()
        assert all(np.isfinite(v) for v in insight.values.values())


def test_levels_on_real_candles_bracket_the_swing_in_its_direction(eth_timeframes):
    insight = fibonacci_insight("ETH/BTC", eth_timeframes["5m"])
    levels = levels_of(insight)
    hi, lo = insight.values["swing_high"], insight.values["swing_low"]
    assert hi > lo
    for r in ("0.236", "0.382", "0.5", "0.618", "0.786"):
        assert lo < levels[f"fib_{r}"] < hi
    up = insight.values["swing_direction"] > 0
    assert (levels["ext_1.272"] > hi) if up else (levels["ext_1.272"] < lo)
    close = insight.values["close"]
    assert levels["support"] <= close < levels["resistance"]
    assert -1 <= insight.score <= 1 and 0 <= insight.confidence <= 1
