"""Classic indicators as numpy functions that reproduce TA-Lib's definitions (default compatibility).

Every function takes float arrays, returns arrays of the same length, and puts NaN over the
lookback exactly where TA-Lib does; leading NaNs in the input shift the lookback the way the
`talib` Python wrapper does. The definitions followed:

- SMA: mean of the last `period` values.
- EMA: k = 2 / (period + 1), seeded with the SMA of the first `period` values.
- RSI: Wilder's averages of gains and losses, seeded with their plain mean over the first
  `period` changes, then avg = (avg * (period - 1) + change) / period; a window with neither
  gain nor loss reads 0, as in TA-Lib.
- MACD: EMA(fast) - EMA(slow), both started at bar slow-1; TA-Lib seeds the fast EMA with the SMA
  of the `fast` bars ending there (not of the first `fast` bars). Signal is an EMA of that line;
  all three outputs begin at bar (slow-1) + (signal-1). Periods are swapped when slow < fast.
- BBANDS (SMA middle band): population standard deviation of the window; a window flat to within
  1e-12 of its squared deviations reads exactly 0, as TA-Lib's reseed floor does.
- TRANGE / ATR: true range from bar 1; ATR seeded with the mean true range of bars 1..period at
  bar `period`, then Wilder-smoothed; ATR(1) is TRANGE.

The first-order recursions (EMA, Wilder) run as a log-depth prefix scan in numpy. Measured on
this project's hardware (Wilder recursion, 1000 / 5760 bars): a Python loop 71 / 406 us, this scan
17 / 65 us, scipy.signal.lfilter 9 / 27 us. The scan is exact to ~1e-15 relative and keeps the
agents free of a scipy dependency for a saving of well under a millisecond per symbol.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

FloatArray = np.ndarray


def _as_float(x: FloatArray) -> FloatArray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _first_valid(*arrays: FloatArray) -> int:
    """Index of the first bar where every input is a number (the talib wrapper's `begidx`)."""
    n = arrays[0].shape[0]
    if n == 0:
        return 0
    start = 0
    for a in arrays:
        if a[0] == a[0]:  # the common case, no leading NaN: nothing to scan
            continue
        finite = ~np.isnan(a)
        if not finite.any():
            return n
        start = max(start, int(np.argmax(finite)))
    return start


def _check_period(period: int, minimum: int, name: str = "period") -> None:
    if int(period) != period or period < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {period!r}")


def _linear_recurrence(seed: FloatArray | float, u: FloatArray, a: FloatArray | float) -> FloatArray:
    """y[t] = a * y[t-1] + u[t] with y[-1] = seed, along the last axis, as a Hillis-Steele scan.

    `a` and `seed` may be per-row (shape (rows, 1)) to run several recursions in one pass.
    """
    y = np.array(u, dtype=np.float64, copy=True)
    n = y.shape[-1]
    if n == 0:
        return y
    coef = float(a) if np.ndim(a) == 0 else np.asarray(a, dtype=np.float64)
    y[..., :1] += coef * seed
    # One scratch buffer and in-place ufuncs: at 1000 bars this halves the time of the naive form.
    scratch = np.empty_like(y)
    shift = 1
    while shift < n:
        term = scratch[..., : n - shift]
        # a ** shift directly (not repeated squaring) keeps the coefficient correctly rounded.
        np.multiply(y[..., :-shift], coef**shift, out=term)
        np.add(y[..., shift:], term, out=y[..., shift:])
        shift *= 2
    return y


def _rolling_sum(x: FloatArray, period: int) -> FloatArray:
    """Sums of each full window of `period` values (length n - period + 1)."""
    # Shifting by the first value keeps the cumulative sums small, so their differences lose
    # little precision to cancellation even for prices far from zero.
    shifted = x - x[0]
    csum = np.cumsum(shifted)
    sums = csum[period - 1 :].copy()
    sums[1:] -= csum[:-period]
    return sums + period * x[0]


def sma(close: FloatArray, period: int = 30) -> FloatArray:
    """Simple moving average (TA-Lib SMA)."""
    _check_period(period, 2)
    x = _as_float(close)
    out = np.full(x.shape[0], np.nan)
    begin = _first_valid(x)
    if x.shape[0] - begin < period:
        return out
    out[begin + period - 1 :] = _rolling_sum(x[begin:], period) / period
    return out


def _ema_from(x: FloatArray, period: int, seed_end: int) -> FloatArray:
    """EMA values for bars seed_end.. of `x`, seeded with the SMA of the `period` bars ending at seed_end."""
    k = 2.0 / (period + 1)
    seed = x[seed_end - period + 1 : seed_end + 1].sum() / period
    rest = _linear_recurrence(seed, k * x[seed_end + 1 :], 1.0 - k)
    return np.concatenate(([seed], rest))


def ema(close: FloatArray, period: int = 30) -> FloatArray:
    """Exponential moving average, SMA-seeded (TA-Lib EMA)."""
    _check_period(period, 2)
    x = _as_float(close)
    out = np.full(x.shape[0], np.nan)
    begin = _first_valid(x)
    if x.shape[0] - begin < period:
        return out
    out[begin + period - 1 :] = _ema_from(x[begin:], period, period - 1)
    return out


def _wilder(values: FloatArray, period: int) -> FloatArray:
    """Wilder smoothing of each row of `values`: seeded with the mean of the first `period` columns."""
    seed = values[..., :period].sum(axis=-1, keepdims=True) / period
    a = (period - 1) / period
    rest = _linear_recurrence(seed, values[..., period:] / period, a)
    return np.concatenate((seed, rest), axis=-1)


def rsi(close: FloatArray, period: int = 14) -> FloatArray:
    """Relative strength index with Wilder smoothing (TA-Lib RSI)."""
    _check_period(period, 2)
    x = _as_float(close)
    out = np.full(x.shape[0], np.nan)
    begin = _first_valid(x)
    if x.shape[0] - begin <= period:
        return out
    change = np.diff(x[begin:])
    gain_loss = np.stack((np.maximum(change, 0.0), np.maximum(-change, 0.0)))
    avg_gain, avg_loss = _wilder(gain_loss, period)
    total = avg_gain + avg_loss
    # No gain and no loss at all reads 0, as in TA-Lib.
    value = np.zeros_like(total)
    np.divide(avg_gain, total, out=value, where=total > 0.0)
    out[begin + period :] = 100.0 * value
    return out


def macd(
    close: FloatArray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line, signal line and histogram with TA-Lib's seeding and alignment."""
    _check_period(fast, 2, "fast")
    _check_period(slow, 2, "slow")
    _check_period(signal, 1, "signal")
    if slow < fast:
        fast, slow = slow, fast
    x = _as_float(close)
    n = x.shape[0]
    line_out = np.full(n, np.nan)
    signal_out = np.full(n, np.nan)
    hist_out = np.full(n, np.nan)
    begin = _first_valid(x)
    lookback = (slow - 1) + (signal - 1)
    if n - begin <= lookback:
        return line_out, signal_out, hist_out
    xs = x[begin:]
    # Both EMAs start at bar slow-1 and share one scan.
    k = np.array([[2.0 / (fast + 1)], [2.0 / (slow + 1)]])
    seeds = np.array([[xs[slow - fast : slow].sum() / fast], [xs[:slow].sum() / slow]])
    tails = _linear_recurrence(seeds, k * xs[slow:], 1.0 - k)
    fast_ema = np.concatenate((seeds[0], tails[0]))
    slow_ema = np.concatenate((seeds[1], tails[1]))
    line = fast_ema - slow_ema
    if signal == 1:
        sig = line.copy()
    else:
        sig = _ema_from(line, signal, signal - 1)
        line = line[signal - 1 :]
    start = begin + lookback
    line_out[start:] = line
    signal_out[start:] = sig
    hist_out[start:] = line - sig
    return line_out, signal_out, hist_out


def _rolling_std(x: FloatArray, period: int, mean: FloatArray) -> FloatArray:
    """Population standard deviation of each full window, computed around the window's own mean."""
    # as_strided rather than sliding_window_view, and einsum rather than .sum(axis=1): the same
    # arithmetic in about half the time on 1000 bars.
    stride = x.strides[0]
    windows = as_strided(x, shape=(x.shape[0] - period + 1, period), strides=(stride, stride), writeable=False)
    dev = windows - mean[:, None]
    mean_sq = np.einsum("ij,ij->i", dev, dev) / period
    bias = np.einsum("ij->i", dev) / period
    variance = mean_sq - bias * bias
    variance[variance < 1e-12 * mean_sq] = 0.0
    return np.sqrt(variance)


def bbands(
    close: FloatArray, period: int = 5, nbdev_up: float = 2.0, nbdev_dn: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger Bands over an SMA middle band: (upper, middle, lower), as TA-Lib BBANDS(matype=SMA)."""
    _check_period(period, 2)
    x = _as_float(close)
    n = x.shape[0]
    upper = np.full(n, np.nan)
    middle = np.full(n, np.nan)
    lower = np.full(n, np.nan)
    begin = _first_valid(x)
    if n - begin < period:
        return upper, middle, lower
    xs = x[begin:]
    mid = _rolling_sum(xs, period) / period
    std = _rolling_std(xs, period, mid)
    start = begin + period - 1
    middle[start:] = mid
    if nbdev_up == nbdev_dn:
        width = std * nbdev_up
        upper[start:] = mid + width
        lower[start:] = mid - width
    else:
        upper[start:] = mid + std * nbdev_up
        lower[start:] = mid - std * nbdev_dn
    return upper, middle, lower


def _true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """True range of bars 1.. (length n - 1)."""
    prev_close = close[:-1]
    h = high[1:]
    lo = low[1:]
    return np.maximum(np.maximum(h - lo, np.abs(prev_close - h)), np.abs(prev_close - lo))


def trange(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """True range: max(high - low, |high - previous close|, |low - previous close|) (TA-Lib TRANGE)."""
    h, lo, c = _as_float(high), _as_float(low), _as_float(close)
    out = np.full(h.shape[0], np.nan)
    begin = _first_valid(h, lo, c)
    if h.shape[0] - begin < 2:
        return out
    out[begin + 1 :] = _true_range(h[begin:], lo[begin:], c[begin:])
    return out


def atr(high: FloatArray, low: FloatArray, close: FloatArray, period: int = 14) -> FloatArray:
    """Average true range with Wilder smoothing (TA-Lib ATR)."""
    _check_period(period, 1)
    if period == 1:
        return trange(high, low, close)
    h, lo, c = _as_float(high), _as_float(low), _as_float(close)
    out = np.full(h.shape[0], np.nan)
    begin = _first_valid(h, lo, c)
    if h.shape[0] - begin <= period:
        return out
    tr = _true_range(h[begin:], lo[begin:], c[begin:])
    out[begin + period :] = _wilder(tr, period)
    return out
