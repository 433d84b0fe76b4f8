"""Technical agent: RSI, MACD, EMA trend, Bollinger position, ATR volatility and multi-timeframe trend.

Pure: candles in, one `Insight` out. The first timeframe of the mapping is the trading timeframe;
the others only vote on trend alignment. With too few candles an indicator is left out, the
confidence drops with it, and every reported value stays a finite number.

Two steps, so a backtest computes the indicators once per series and not once per candle:
`TechnicalSeries(candles)` runs every indicator (TA-Lib) over the whole series, and
`technical_at(symbol, series, t, others)` reads them at candle t. Every indicator is causal (its
value at t uses candles <= t only), so the reading at t of a long series is exactly the reading of
the series cut after t; `technical_insight` is that reading at the last candle.

Each reading is a number in [-1, 1] (distances are measured in ATRs, so the same reading means the
same on any instrument): EMA trend, MACD histogram, RSI (momentum between 30 and 70, contrarian
beyond), Bollinger %B (contrarian), and `trend_alignment`, the mean up (+1) / flat (0) / down (-1)
vote of every timeframe. The score is their WEIGHTS-weighted mean over the readings available.
Confidence = share of weight available x warm-up (candles / 2 x slow EMA, capped at 1) x
(0.25 + 0.75 x agreement of the readings' signs), cut by 30 % while volatility is expanding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import talib

from workers.agents.atr import atr_series
from workers.agents.insight import AgentName, Insight, Level
from workers.market.candles import Candles


@dataclass(frozen=True, slots=True)
class TechnicalSettings:
    rsi_period: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    ema_fast: int = 20
    ema_slow: int = 50
    bb_period: int = 20
    bb_deviations: float = 2.0
    atr_period: int = 14
    # How far back the ATR is compared with its own median to call volatility expanding.
    volatility_window: int = 100


# Share of each reading in the score; trend and alignment dominate, oscillators refine.
WEIGHTS: dict[str, float] = {"trend": 0.25, "alignment": 0.25, "macd": 0.2, "rsi": 0.15, "bollinger": 0.15}
_WEIGHT_TOTAL = sum(WEIGHTS.values())
# A timeframe too short for EMA(20/50) still votes with EMA(9/21).
SHORT_TREND_EMAS = (9, 21)
# A trend strength below this reads as flat in the alignment vote.
FLAT_TREND = 0.1
# The values every technical Insight carries, whatever the number of candles.
REQUIRED_VALUES = (
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


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _series(values: np.ndarray) -> list[float]:
    """A numpy series as a list of Python floats: indexing one per candle is then ten times cheaper."""
    return values.tolist()


def _volatility_ratio(atr: np.ndarray, unit: np.ndarray, period: int, window: int) -> np.ndarray:
    """`unit` over the median of the last `window` ATR values (1 while fewer than 10 of them exist). ATR is NaN
    over its first `period` candles only, so the finite values in a window are those from `period` on."""
    n = atr.shape[0]
    ratio = np.ones(n)
    first = period + 9  # the first candle with ten ATR values behind it
    if n <= first:
        return ratio
    median = np.empty(n - first)
    full_from = period + window - 1  # from here the window holds `window` ATR values
    for t in range(first, min(full_from, n)):
        median[t - first] = np.median(atr[period : t + 1])
    if n > full_from:
        windows = np.lib.stride_tricks.sliding_window_view(atr[period:], window)
        median[full_from - first :] = np.median(windows, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = unit[first:] / median
    ratio[first:] = np.where(np.isfinite(tail) & (median > 0), tail, 1.0)
    return ratio


def _trend(close: np.ndarray, fast: np.ndarray, slow: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """EMA spread and price against the fast EMA, in units: 0.5 tanh(spread) + 0.5 tanh(distance)."""
    with np.errstate(invalid="ignore"):
        return 0.5 * np.tanh((fast - slow) / unit) + 0.5 * np.tanh((close - fast) / unit)


def _strength(close: np.ndarray, ema_fast: np.ndarray, ema_slow: np.ndarray, unit: np.ndarray, slow: int) -> np.ndarray:
    """The trend strength of every candle; a candle with too few before it for the slow EMA reads the short
    pair (SHORT_TREND_EMAS) instead."""
    short_fast, short_slow = SHORT_TREND_EMAS
    return np.where(
        np.arange(close.shape[0]) >= slow,
        _trend(close, ema_fast, ema_slow, unit),
        _trend(close, talib.EMA(close, short_fast), talib.EMA(close, short_slow), unit),
    )


def trend_series(candles: Candles, settings: TechnicalSettings = TechnicalSettings()) -> np.ndarray:
    """The trend strength in [-1, 1] of every candle of a higher timeframe (NaN where it has too few candles):
    all the technical agent reads of a timeframe that only votes on alignment."""
    close = np.ascontiguousarray(candles.close, dtype=np.float64)
    _, unit = atr_series(candles, settings.atr_period)
    ema_fast, ema_slow = talib.EMA(close, settings.ema_fast), talib.EMA(close, settings.ema_slow)
    return _strength(close, ema_fast, ema_slow, unit, settings.ema_slow)


class TechnicalSeries:
    """Every indicator of the trading timeframe, over all of its candles, as per-candle series (NaN where an
    indicator has too few candles behind it). `per_candle` turns them into lists, which a backtest reading
    every candle indexes faster; a live cycle reads one candle and skips the conversion."""

    def __init__(
        self, candles: Candles, settings: TechnicalSettings = TechnicalSettings(), *, per_candle: bool = False
    ) -> None:
        s = self.settings = settings
        self.timeframe = candles.timeframe
        self.n = len(candles)
        close = np.ascontiguousarray(candles.close, dtype=np.float64)
        raw_atr, unit = atr_series(candles, s.atr_period)
        ema_fast, ema_slow = talib.EMA(close, s.ema_fast), talib.EMA(close, s.ema_slow)
        rsi = talib.RSI(close, s.rsi_period)
        line, signal, hist = talib.MACD(close, s.macd_fast, s.macd_slow, s.macd_signal)
        upper, middle, lower = talib.BBANDS(close, s.bb_period, s.bb_deviations, s.bb_deviations, 0)
        # The readings' unit: the ATR, else a tiny fraction of price so a flat series never divides by zero.
        reading_unit = np.where(np.isnan(unit), np.maximum(np.abs(close) * 1e-4, 1e-12), unit)
        with np.errstate(invalid="ignore", divide="ignore"):
            width = upper - lower
            percent_b = np.where(width > 0, (close - lower) / width, 0.5)
            macd_reading = 0.7 * np.tanh(2.0 * hist / reading_unit) + 0.3 * np.tanh(line / reading_unit)
        keep = _series if per_candle else np.asarray
        self.close = keep(close)
        self.unit = keep(unit)
        self.rsi = keep(rsi)
        self.macd, self.macd_signal, self.macd_hist = keep(line), keep(signal), keep(hist)
        self.macd_reading = keep(macd_reading)
        self.ema_fast, self.ema_slow = keep(ema_fast), keep(ema_slow)
        self.trend_reading = keep(_trend(close, ema_fast, ema_slow, reading_unit))
        self.strength = keep(_strength(close, ema_fast, ema_slow, unit, s.ema_slow))
        self.bb_upper, self.bb_middle, self.bb_lower = keep(upper), keep(middle), keep(lower)
        self.percent_b = keep(percent_b)
        self._raw_atr, self._unit = raw_atr, unit
        self._volatility: list[float] | None = None

    def atr_at(self, t: int) -> float | None:
        """ATR(14) at candle t (the mean range while ATR has too few candles), None without a positive one."""
        return _finite(self.unit, t) if t < self.n else None

    def volatility_ratio(self, t: int) -> float:
        """The ATR at t over the median of the last `volatility_window` ATR values (1 while fewer than 10 exist).
        The whole series is computed on the first read before the last candle (a backtest); a live cycle reads
        only the last candle and pays for that one median."""
        if self._volatility is None and t == self.n - 1:
            recent = self._raw_atr[max(0, t - self.settings.volatility_window + 1) : t + 1]
            recent = recent[np.isfinite(recent)]
            unit = float(self._unit[t])
            if recent.shape[0] < 10 or unit != unit:
                return 1.0
            median = float(np.median(recent))
            return unit / median if median > 0 else 1.0
        if self._volatility is None:
            s = self.settings
            self._volatility = _series(_volatility_ratio(self._raw_atr, self._unit, s.atr_period, s.volatility_window))
        return self._volatility[t]



def trend_strength(c: Candles, settings: TechnicalSettings = TechnicalSettings()) -> float | None:
    """Trend of one timeframe in [-1, 1] at its last candle: EMA spread and price above/below the fast EMA,
    in ATRs (EMA 9/21 while there are too few candles for the configured pair)."""
    return _finite(trend_series(c, settings), len(c) - 1)


def _finite(values: Sequence[float] | np.ndarray, t: int) -> float | None:
    if t < 0:
        return None
    v = float(values[t])
    return v if v == v else None


def _rsi_reading(rsi: float) -> float:
    """Momentum between 30 and 70 (up to +-0.4), turning contrarian past them (-1 from 84, +1 from 16)."""
    r = rsi - 50.0
    if abs(r) <= 20.0:
        return 0.4 * r / 20.0
    return _clamp(math.copysign(1.0, r) * (0.4 - (abs(r) - 20.0) / 10.0), -1.0, 1.0)


def technical_insight(
    symbol: str, candles: Mapping[str, Candles], settings: TechnicalSettings = TechnicalSettings()
) -> Insight:
    """Read the trading timeframe (first key) and the trend of every timeframe into one Insight."""
    if not candles:
        raise ValueError("technical_insight needs at least one timeframe of candles")
    trading, *others = candles.values()
    series = TechnicalSeries(trading, settings)
    return technical_at(
        symbol, series, series.n - 1, [(o.timeframe, trend_series(o, settings), len(o) - 1) for o in others]
    )


def technical_at(
    symbol: str,
    series: TechnicalSeries,
    t: int,
    others: Sequence[tuple[str, Sequence[float] | np.ndarray, int]] = (),
) -> Insight:
    """The technical Insight at candle t of `series`; `others` are the higher timeframes that vote on trend
    alignment: for each, its name, its `trend_series` and the index of its last candle closed by then (-1 for
    none)."""
    s = series.settings
    timeframe = series.timeframe
    n = t + 1
    reasons: list[str] = []
    readings: dict[str, float] = {}

    if t < 0:
        return Insight(
            agent=AgentName.TECHNICAL,
            symbol=symbol,
            score=0.0,
            confidence=0.0,
            reasons=(f"no {timeframe} candles: nothing to read",),
            values={**dict.fromkeys(REQUIRED_VALUES, 0.0), "rsi": 50.0},
        )
    close = float(series.close[t])
    atr = series.atr_at(t)
    atr_value = atr if atr is not None else 0.0

    # RSI
    rsi = _finite(series.rsi, t)
    if rsi is not None:
        readings["rsi"] = _rsi_reading(rsi)
        zone = "overbought" if rsi >= 70 else "oversold" if rsi <= 30 else "neutral"
        reasons.append(f"RSI({s.rsi_period}) {rsi:.1f} on {timeframe}: {zone}")

    # MACD
    hist = _finite(series.macd_hist, t)
    line, signal = float(series.macd[t]), float(series.macd_signal[t])
    if hist is not None:
        readings["macd"] = float(series.macd_reading[t])
        prev_hist = _finite(series.macd_hist, t - 1)
        if prev_hist is not None and prev_hist <= 0 < hist:
            reasons.append("MACD crossed above its signal line on the last candle")
        elif prev_hist is not None and prev_hist >= 0 > hist:
            reasons.append("MACD crossed below its signal line on the last candle")
        else:
            unit = atr if atr is not None else max(abs(close) * 1e-4, 1e-12)
            side = "above" if hist > 0 else "below"
            reasons.append(f"MACD {side} its signal line (histogram {hist / unit:+.2f} ATR)")

    # EMA trend of the trading timeframe
    ema_fast, ema_slow = _finite(series.ema_fast, t), _finite(series.ema_slow, t)
    if ema_fast is not None and ema_slow is not None:
        readings["trend"] = float(series.trend_reading[t])
        if close > ema_fast > ema_slow:
            reasons.append(f"uptrend: close above EMA{s.ema_fast} above EMA{s.ema_slow}")
        elif close < ema_fast < ema_slow:
            reasons.append(f"downtrend: close below EMA{s.ema_fast} below EMA{s.ema_slow}")
        else:
            reasons.append(f"no clean EMA{s.ema_fast}/EMA{s.ema_slow} trend")

    # Bollinger position: stretched to a band reads as mean-reverting.
    bb_upper, bb_middle, bb_lower = _finite(series.bb_upper, t), float(series.bb_middle[t]), float(series.bb_lower[t])
    percent_b = 0.5
    if bb_upper is not None:
        if bb_upper - bb_lower > 0:
            percent_b = float(series.percent_b[t])
            readings["bollinger"] = _clamp(-(percent_b - 0.5) * 2.0, -1.0, 1.0) * 0.8
            if percent_b >= 1.0:
                reasons.append("close at or above the upper Bollinger band")
            elif percent_b <= 0.0:
                reasons.append("close at or below the lower Bollinger band")
            else:
                reasons.append(f"close at {percent_b:.0%} of the Bollinger band width")
        else:
            readings["bollinger"] = 0.0
            reasons.append("Bollinger bands flat: no recent price movement")

    # Volatility: ATR against its own recent median.
    volatility_ratio = series.volatility_ratio(t)
    atr_pct = atr_value / close if close else 0.0
    if volatility_ratio >= 1.8:
        reasons.append(f"volatility expanding: ATR {volatility_ratio:.1f}x its recent median")
    elif volatility_ratio <= 0.6:
        reasons.append(f"volatility contracting: ATR {volatility_ratio:.1f}x its recent median")
    if atr is not None:
        reasons.append(f"ATR({s.atr_period}) {atr_pct:.2%} of price")

    # Multi-timeframe trend alignment
    trends: dict[str, float] = {}
    own = readings["trend"] if "trend" in readings else _finite(series.strength, t)
    if own is not None:
        trends[timeframe] = own
    for tf, strengths, j in others:
        strength = _finite(strengths, j)
        if strength is not None and tf not in trends:
            trends[tf] = strength
    votes = [0.0 if abs(v) < FLAT_TREND else math.copysign(1.0, v) for v in trends.values()]
    alignment = sum(votes) / len(votes) if votes else 0.0
    if len(trends) >= 2:
        readings["alignment"] = alignment
        ups = [tf for tf, v in trends.items() if v >= FLAT_TREND]
        downs = [tf for tf, v in trends.items() if v <= -FLAT_TREND]
        if len(ups) == len(trends):
            reasons.append(f"trend up on every timeframe ({', '.join(trends)})")
        elif len(downs) == len(trends):
            reasons.append(f"trend down on every timeframe ({', '.join(trends)})")
        else:
            reasons.append(
                "timeframes disagree: up " + (", ".join(ups) or "none") + "; down " + (", ".join(downs) or "none")
            )
    elif trends:
        reasons.append("only one timeframe long enough to judge trend alignment")

    # Combine
    used = {k: v for k, v in readings.items() if math.isfinite(v)}
    used_weight = sum(WEIGHTS[k] for k in used)
    if used_weight > 0:
        total = sum(WEIGHTS[k] * v for k, v in used.items())
        score = total / used_weight
        spread = sum(WEIGHTS[k] * abs(v) for k, v in used.items())
        agreement = abs(total) / spread if spread > 0 else 0.0
    else:
        score, agreement = 0.0, 0.0
    warmup = min(1.0, n / (2.0 * s.ema_slow))
    confidence = used_weight / _WEIGHT_TOTAL * warmup * (0.25 + 0.75 * agreement)
    if volatility_ratio >= 1.8:
        confidence *= 0.7
    if n < 2 * s.ema_slow:
        reasons.append(f"only {n} {timeframe} candles: readings need about {2 * s.ema_slow}")

    values: dict[str, float] = {
        "close": close,
        "atr": atr_value,
        "atr_pct": atr_pct,
        "volatility_ratio": volatility_ratio,
        "rsi": rsi if rsi is not None else 50.0,
        "macd": line if hist is not None else 0.0,
        "macd_signal": signal if hist is not None else 0.0,
        "macd_hist": hist if hist is not None else 0.0,
        "ema_fast": ema_fast if ema_fast is not None else close,
        "ema_slow": ema_slow if ema_slow is not None else close,
        "bb_upper": bb_upper if bb_upper is not None else close,
        "bb_middle": bb_middle if bb_upper is not None else close,
        "bb_lower": bb_lower if bb_upper is not None else close,
        "bb_percent_b": percent_b,
        "trend_alignment": alignment,
        # The trend of the slowest timeframe read (the regime a rules brain may filter entries by).
        "regime_trend": next(reversed(trends.values()), 0.0),
        "candles": float(n),
    }
    for tf, strength in trends.items():
        values[f"trend_{tf}"] = strength
    levels = []
    if bb_upper is not None:
        levels += [Level("bb_upper", bb_upper), Level("bb_lower", bb_lower)]
    if ema_slow is not None:
        levels.append(Level(f"ema_{s.ema_slow}", ema_slow))

    return Insight(
        agent=AgentName.TECHNICAL,
        symbol=symbol,
        score=_clamp(score, -1.0, 1.0),
        confidence=_clamp(confidence, 0.0, 1.0),
        reasons=tuple(reasons),
        levels=tuple(levels),
        values=values,
    )
