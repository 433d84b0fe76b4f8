"""Resample candles to a longer timeframe (5m → 15m/1h/4h) without inventing missing candles.

Pure numpy, no I/O: used by the replay source, by backtests and wherever a source only has a shorter
timeframe than an agent asks for.
"""

from __future__ import annotations

import numpy as np

from workers.market.candles import TIMEFRAME_MS, Candles


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds in `timeframe`; ValueError for a timeframe Quorum does not know."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(f"unknown timeframe {timeframe!r}; known: {', '.join(TIMEFRAME_MS)}") from None


def resample(
    candles: Candles,
    timeframe: str,
    *,
    until_ms: int | None = None,
    keep_partial: bool = False,
) -> Candles:
    """Aggregate `candles` into `timeframe` buckets aligned to floor(ts / tf) * tf (UTC epoch).

    open is the first candle present in a bucket, close the last, high/low the extremes, volume the sum;
    a bucket with no candle at all is absent. The trailing bucket is dropped unless it had ended by
    `until_ms` (default: the close of the last input candle) or `keep_partial` is set.
    """
    src_ms = timeframe_ms(candles.timeframe)
    dst_ms = timeframe_ms(timeframe)
    if dst_ms % src_ms:
        raise ValueError(f"cannot resample {candles.timeframe} to {timeframe}: not a multiple")
    n = len(candles)
    if n == 0:
        return Candles(candles.symbol, timeframe, *_arrays(candles))
    if dst_ms == src_ms:
        return candles
    ts = candles.timestamp
    if not np.all(ts[1:] > ts[:-1]):
        raise ValueError("candle timestamps must be strictly increasing")

    bucket = (ts // dst_ms) * dst_ms
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], n] - 1
    out = Candles(
        candles.symbol,
        timeframe,
        bucket[starts].astype(np.int64),
        candles.open[starts],
        np.maximum.reduceat(candles.high, starts),
        np.minimum.reduceat(candles.low, starts),
        candles.close[ends],
        np.add.reduceat(candles.volume, starts),
    )
    if keep_partial:
        return out
    end_ms = int(ts[-1]) + src_ms if until_ms is None else until_ms
    if int(out.timestamp[-1]) + dst_ms > end_ms:
        return out.head(len(out) - 1)
    return out


def _arrays(candles: Candles) -> tuple[np.ndarray, ...]:
    return (candles.timestamp, candles.open, candles.high, candles.low, candles.close, candles.volume)
