"""The numpy indicators agree with TA-Lib to 1e-9 on every real candle series, NaN lookback included.

Tolerance: |ours - talib| <= 1e-9 * |talib| + 1e-9 * m, where m is the median magnitude of the
TA-Lib output on that series (so a MACD histogram crossing zero is judged against its usual size,
not against zero). RSI, an index in [0, 100], is held to 1e-9 absolute.
"""

from __future__ import annotations

import numpy as np
import pytest
import talib

from workers.agents import indicators as ta


def assert_matches_talib(ours: np.ndarray, theirs: np.ndarray, absolute: float | None = None) -> None:
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg="NaN lookback differs")
    valid = ~np.isnan(theirs)
    if not valid.any():  # a series shorter than the lookback: agreeing on all-NaN is the whole check
        return
    if absolute is None:
        absolute = 1e-9 * float(np.median(np.abs(theirs[valid])))
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=1e-9, atol=absolute)


@pytest.mark.parametrize("period", [2, 5, 9, 20, 50, 200])
def test_sma_matches_talib_on_real_candles(real_series, period):
    close = real_series.close
    assert_matches_talib(ta.sma(close, period), talib.SMA(close, period))


@pytest.mark.parametrize("period", [2, 5, 9, 20, 50, 200])
def test_ema_matches_talib_on_real_candles(real_series, period):
    close = real_series.close
    assert_matches_talib(ta.ema(close, period), talib.EMA(close, period))


@pytest.mark.parametrize("period", [2, 7, 14, 21, 50])
def test_rsi_matches_talib_on_real_candles(real_series, period):
    close = real_series.close
    assert_matches_talib(ta.rsi(close, period), talib.RSI(close, period), absolute=1e-9)


@pytest.mark.parametrize("fast,slow,signal", [(12, 26, 9), (5, 35, 5), (8, 21, 5), (26, 12, 9), (3, 10, 1)])
def test_macd_matches_talib_seeding_and_alignment(real_series, fast, slow, signal):
    close = real_series.close
    for ours, theirs in zip(ta.macd(close, fast, slow, signal), talib.MACD(close, fast, slow, signal), strict=True):
        assert_matches_talib(ours, theirs)


@pytest.mark.parametrize(
    "period,up,down", [(2, 2.0, 2.0), (5, 2.0, 2.0), (20, 2.0, 2.0), (20, 1.5, 2.5), (50, 1.0, 1.0)]
)
def test_bbands_match_talib_population_deviation(real_series, period, up, down):
    close = real_series.close
    ours = ta.bbands(close, period, up, down)
    theirs = talib.BBANDS(close, period, up, down, 0)
    for our_band, their_band in zip(ours, theirs, strict=True):
        assert_matches_talib(our_band, their_band)


def test_trange_matches_talib_on_real_candles(real_series):
    c = real_series
    assert_matches_talib(ta.trange(c.high, c.low, c.close), talib.TRANGE(c.high, c.low, c.close))


@pytest.mark.parametrize("period", [1, 2, 7, 14, 28])
def test_atr_matches_talib_wilder_smoothing(real_series, period):
    c = real_series
    assert_matches_talib(ta.atr(c.high, c.low, c.close, period), talib.ATR(c.high, c.low, c.close, period))


def test_leading_nans_shift_the_lookback_like_talib(series):
    c = series("XRP_USDT_USDT-1h")
    close = c.close.copy()
    close[:7] = np.nan
    high = c.high.copy()
    high[:3] = np.nan
    assert_matches_talib(ta.ema(close, 10), talib.EMA(close, 10))
    assert_matches_talib(ta.rsi(close, 14), talib.RSI(close, 14), absolute=1e-9)
    for ours, theirs in zip(ta.macd(close), talib.MACD(close), strict=True):
        assert_matches_talib(ours, theirs)
    assert_matches_talib(ta.atr(high, c.low, close, 5), talib.ATR(high, c.low, close, 5))


def test_series_shorter_than_the_lookback_is_all_nan_like_talib():
    close = np.array([1.0, 2.0, 3.0, 2.5, 2.0])
    for ours, theirs in [
        (ta.sma(close, 6), talib.SMA(close, 6)),
        (ta.ema(close, 6), talib.EMA(close, 6)),
        (ta.rsi(close, 5), talib.RSI(close, 5)),
        (ta.macd(close)[0], talib.MACD(close)[0]),
        (ta.bbands(close, 6)[0], talib.BBANDS(close, 6)[0]),
        (ta.atr(close, close, close, 5), talib.ATR(close, close, close, 5)),
    ]:
        assert np.isnan(ours).all() and np.isnan(theirs).all()
    assert ta.ema(np.empty(0), 5).shape == (0,)


def test_flat_prices_give_zero_width_bands_and_zero_rsi_like_talib():
    close = np.full(60, 5.33e-5)
    upper, middle, lower = ta.bbands(close, 20)
    t_upper, t_middle, _ = talib.BBANDS(close, 20)
    assert np.array_equal(upper[19:], middle[19:]) and np.array_equal(lower[19:], middle[19:])
    assert np.array_equal(t_upper[19:], t_middle[19:])
    np.testing.assert_array_equal(ta.rsi(close, 14), talib.RSI(close, 14))


def test_fine_tick_bands_do_not_collapse(series):
    # ADA/BTC moves in 1e-8 steps: its variance (~1e-15) is below old TA-Lib's fixed 1e-14 cut-off.
    close = series("ADA_BTC-5m").close
    upper, middle, _ = ta.bbands(close, 20)
    width = (upper - middle)[19:]
    moving = np.lib.stride_tricks.sliding_window_view(close, 20)
    moving = np.ptp(moving, axis=1) > 0
    assert np.all(width[moving] > 0)


@pytest.mark.parametrize("call", [lambda x: ta.sma(x, 1), lambda x: ta.ema(x, 0), lambda x: ta.rsi(x, 1)])
def test_periods_below_talibs_minimum_are_refused(call):
    with pytest.raises(ValueError):
        call(np.arange(10.0))
