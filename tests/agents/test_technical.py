"""Technical agent: required values, bounded score, graceful with few candles, multi-timeframe alignment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

from workers.agents.insight import AgentName
from workers.agents.technical import technical_insight
from workers.market.candles import Candles
from workers.market.resample import resample

REQUIRED = (
    "close",
    "atr",
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "ema_fast",
    "ema_slow",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "trend_alignment",
)


def assert_well_formed(insight) -> None:
    assert insight.agent is AgentName.TECHNICAL
    assert -1.0 <= insight.score <= 1.0
    assert 0.0 <= insight.confidence <= 1.0
    assert set(REQUIRED) <= set(insight.values)
    assert all(math.isfinite(v) for v in insight.values.values()), insight.values
    assert all(math.isfinite(lv.price) for lv in insight.levels)
    assert insight.reasons


def trend_candles(drift: float, bars: int = 4000, seed: int = 7) -> Candles:
    """A 5m random walk with a steady drift per bar (fraction of price), for known-direction trends."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(drift + 0.001 * rng.standard_normal(bars)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * 1.0005
    low = np.minimum(open_, close) * 0.9995
    ts = np.arange(bars, dtype=np.int64) * 300_000
    return Candles("TEST/USDT", "5m", ts, open_, high, low, close, np.ones(bars))


def timeframes(five: Candles) -> dict[str, Candles]:
    return {"5m": five, "15m": resample(five, "15m"), "1h": resample(five, "1h"), "4h": resample(five, "4h")}


def test_real_candles_give_every_required_value_and_a_bounded_score(eth_timeframes):
    insight = technical_insight("ETH/BTC", eth_timeframes)
    assert_well_formed(insight)
    assert insight.confidence > 0
    for tf in eth_timeframes:
        assert f"trend_{tf}" in insight.values


def test_reported_values_are_the_indicators_of_the_trading_timeframe(eth_timeframes):
    five = eth_timeframes["5m"]
    values = technical_insight("ETH/BTC", eth_timeframes).values
    assert values["close"] == five.close[-1]
    assert values["rsi"] == pytest.approx(talib.RSI(five.close, 14)[-1], abs=1e-9)
    assert values["atr"] == pytest.approx(talib.ATR(five.high, five.low, five.close, 14)[-1], rel=1e-9)
    macd, signal, hist = (x[-1] for x in talib.MACD(five.close, 12, 26, 9))
    assert values["macd"] == pytest.approx(macd, rel=1e-9)
    assert values["macd_signal"] == pytest.approx(signal, rel=1e-9)
    assert values["macd_hist"] == pytest.approx(hist, rel=1e-6)
    upper, middle, lower = (x[-1] for x in talib.BBANDS(five.close, 20, 2.0, 2.0, 0))
    assert (values["bb_upper"], values["bb_middle"], values["bb_lower"]) == pytest.approx((upper, middle, lower))
    assert values["ema_fast"] == pytest.approx(talib.EMA(five.close, 20)[-1])
    assert values["ema_slow"] == pytest.approx(talib.EMA(five.close, 50)[-1])


@pytest.mark.parametrize("count", [0, 1, 2, 5, 15, 30, 60])
def test_too_few_candles_lower_confidence_without_crash_or_nan(series, count):
    five = series("ETH_BTC-5m").head(count)
    insight = technical_insight("ETH/BTC", {"5m": five, "1h": resample(five, "1h")})
    assert_well_formed(insight)
    assert insight.confidence <= 0.5
    if count < 15:
        assert insight.confidence == 0.0


def test_confidence_grows_with_history(series):
    five = series("ETH_BTC-5m")
    short = technical_insight("ETH/BTC", {"5m": five.head(40)})
    full = technical_insight("ETH/BTC", {"5m": five.head(1000)})
    assert 0 < short.confidence < full.confidence


def test_rising_market_aligns_every_timeframe_up_and_scores_bullish():
    insight = technical_insight("TEST/USDT", timeframes(trend_candles(drift=0.0008)))
    assert_well_formed(insight)
    assert insight.values["trend_alignment"] == 1.0
    assert insight.score > 0.2
    assert any("trend up on every timeframe" in r for r in insight.reasons)


def test_falling_market_aligns_every_timeframe_down_and_scores_bearish():
    insight = technical_insight("TEST/USDT", timeframes(trend_candles(drift=-0.0008)))
    assert insight.values["trend_alignment"] == -1.0
    assert insight.score < -0.2


def test_timeframes_that_disagree_pull_alignment_towards_zero():
    # Four days of decline, then half a day of rally: the 5m trend turns up, the 4h one stays down.
    down = trend_candles(drift=-0.0008, bars=1150, seed=1)
    up_close = down.close[-1] * np.exp(np.cumsum(0.002 + 0.0005 * np.random.default_rng(2).standard_normal(150)))
    close = np.r_[down.close, up_close]
    open_ = np.r_[close[0], close[:-1]]
    ts = np.arange(close.shape[0], dtype=np.int64) * 300_000
    five = Candles("TEST/USDT", "5m", ts, open_, np.maximum(open_, close), np.minimum(open_, close), close, close)
    insight = technical_insight("TEST/USDT", timeframes(five))
    assert insight.values["trend_5m"] > 0 > insight.values["trend_4h"]
    assert -1.0 < insight.values["trend_alignment"] < 1.0
    assert any("disagree" in r for r in insight.reasons)


def test_overbought_rsi_is_named_in_the_reasons():
    insight = technical_insight("TEST/USDT", {"5m": trend_candles(drift=0.003, bars=300)})
    assert insight.values["rsi"] > 70
    assert any("overbought" in r for r in insight.reasons)
