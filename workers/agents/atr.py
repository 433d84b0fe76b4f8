"""ATR, the volatility unit every agent measures distances in, with the fallback for short series."""

from __future__ import annotations

import numpy as np
import talib

from workers.market.candles import Candles

ATR_PERIOD = 14


def atr_series(candles: Candles, period: int = ATR_PERIOD) -> tuple[np.ndarray, np.ndarray]:
    """(ATR, unit) of every candle: TA-Lib's ATR (NaN over its first `period` candles) and the unit the agents
    use, which is the ATR where it is positive, else the mean high-low range of the last `period` candles, and
    NaN where neither is positive. Both are causal: the value at t reads candles <= t only."""
    if not len(candles):
        return np.empty(0), np.empty(0)
    high, low, close = (np.ascontiguousarray(x, dtype=np.float64) for x in (candles.high, candles.low, candles.close))
    atr = talib.ATR(high, low, close, period)
    total = np.cumsum(high - low)
    total[period:] -= total[:-period].copy()
    mean_range = total / np.minimum(np.arange(1, high.shape[0] + 1), period)
    unit = np.where(np.isfinite(atr) & (atr > 0), atr, mean_range)
    unit[~(np.isfinite(unit) & (unit > 0))] = np.nan
    return atr, unit
