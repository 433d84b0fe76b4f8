"""Technical agent: RSI, MACD, EMA trend, Bollinger position, ATR volatility and multi-timeframe trend.

Pure: candles in, one `Insight` out. The first timeframe of the mapping is the trading timeframe;
the others only vote on trend alignment. With too few candles an indicator is left out, the
confidence drops with it, and every reported value stays a finite number.

Each reading is a number in [-1, 1] (distances are measured in ATRs, so the same reading means the
same on any instrument): EMA trend, MACD histogram, RSI (momentum between 30 and 70, contrarian
beyond), Bollinger %B (contrarian), and `trend_alignment`, the mean up (+1) / flat (0) / down (-1)
vote of every timeframe. The score is their WEIGHTS-weighted mean over the readings available.
Confidence = share of weight available x warm-up (candles / 2 x slow EMA, capped at 1) x
(0.25 + 0.75 x agreement of the readings' signs), cut by 30 % while volatility is expanding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from workers.agents import indicators as ta
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


def _last(values: np.ndarray) -> float | None:
    if values.shape[0] == 0:
        return None
    v = float(values[-1])
    return v if math.isfinite(v) else None


def _atr_or_range(c: Candles, period: int, atr_series: np.ndarray | None = None) -> float | None:
    """ATR when there are enough candles, else the mean high-low range of what there is."""
    if atr_series is None:
        atr_series = ta.atr(c.high, c.low, c.close, period)
    value = _last(atr_series)
    if value is not None and value > 0:
        return value
    if len(c) == 0:
        return None
    rng = float(np.mean(c.high[-period:] - c.low[-period:]))
    return rng if math.isfinite(rng) and rng > 0 else None


def trend_strength(c: Candles, settings: TechnicalSettings = TechnicalSettings()) -> float | None:
    """Trend of one timeframe in [-1, 1]: EMA spread and price above/below the fast EMA, in ATRs."""
    n = len(c)
    fast, slow = settings.ema_fast, settings.ema_slow
    if n < slow + 1:
        fast, slow = SHORT_TREND_EMAS
        if n < slow + 1:
            return None
    close = _last(c.close)
    ema_f = _last(ta.ema(c.close, fast))
    ema_s = _last(ta.ema(c.close, slow))
    atr = _atr_or_range(c, settings.atr_period)
    if close is None or ema_f is None or ema_s is None or atr is None:
        return None
    return 0.5 * math.tanh((ema_f - ema_s) / atr) + 0.5 * math.tanh((close - ema_f) / atr)


def _rsi_reading(rsi: float) -> float:
    """Momentum between 30 and 70 (up to +-0.4), turning contrarian past them (-1 from 84, +1 from 16)."""
    r = rsi - 50.0
    if abs(r) <= 20.0:
        return 0.4 * r / 20.0
    return float(np.clip(math.copysign(1.0, r) * (0.4 - (abs(r) - 20.0) / 10.0), -1.0, 1.0))


def technical_insight(
    symbol: str, candles: Mapping[str, Candles], settings: TechnicalSettings = TechnicalSettings()
) -> Insight:
    """Read the trading timeframe (first key) and the trend of every timeframe into one Insight."""
    if not candles:
        raise ValueError("technical_insight needs at least one timeframe of candles")
    s = settings
    timeframe = next(iter(candles))
    c = candles[timeframe]
    n = len(c)
    reasons: list[str] = []
    readings: dict[str, float] = {}

    close = _last(c.close)
    if close is None:
        return Insight(
            agent=AgentName.TECHNICAL,
            symbol=symbol,
            score=0.0,
            confidence=0.0,
            reasons=(f"no {timeframe} candles: nothing to read",),
            values={**dict.fromkeys(REQUIRED_VALUES, 0.0), "rsi": 50.0},
        )

    atr_series = ta.atr(c.high, c.low, c.close, s.atr_period)
    atr = _atr_or_range(c, s.atr_period, atr_series)
    atr_value = atr if atr is not None else 0.0
    # A zero range (a single flat candle) must not divide: fall back to a tiny fraction of price.
    unit = atr if atr is not None else max(abs(close) * 1e-4, 1e-12)

    # RSI
    rsi = _last(ta.rsi(c.close, s.rsi_period))
    if rsi is not None:
        readings["rsi"] = _rsi_reading(rsi)
        zone = "overbought" if rsi >= 70 else "oversold" if rsi <= 30 else "neutral"
        reasons.append(f"RSI({s.rsi_period}) {rsi:.1f} on {timeframe}: {zone}")

    # MACD
    line_a, signal_a, hist_a = ta.macd(c.close, s.macd_fast, s.macd_slow, s.macd_signal)
    line, signal, hist = _last(line_a), _last(signal_a), _last(hist_a)
    if line is not None and signal is not None and hist is not None:
        readings["macd"] = 0.7 * math.tanh(2.0 * hist / unit) + 0.3 * math.tanh(line / unit)
        prev_hist = float(hist_a[-2]) if n >= 2 and math.isfinite(hist_a[-2]) else None
        if prev_hist is not None and prev_hist <= 0 < hist:
            reasons.append("MACD crossed above its signal line on the last candle")
        elif prev_hist is not None and prev_hist >= 0 > hist:
            reasons.append("MACD crossed below its signal line on the last candle")
        else:
            side = "above" if hist > 0 else "below"
            reasons.append(f"MACD {side} its signal line (histogram {hist / unit:+.2f} ATR)")

    # EMA trend of the trading timeframe
    ema_fast = _last(ta.ema(c.close, s.ema_fast))
    ema_slow = _last(ta.ema(c.close, s.ema_slow))
    if ema_fast is not None and ema_slow is not None:
        readings["trend"] = 0.5 * math.tanh((ema_fast - ema_slow) / unit) + 0.5 * math.tanh((close - ema_fast) / unit)
        if close > ema_fast > ema_slow:
            reasons.append(f"uptrend: close above EMA{s.ema_fast} above EMA{s.ema_slow}")
        elif close < ema_fast < ema_slow:
            reasons.append(f"downtrend: close below EMA{s.ema_fast} below EMA{s.ema_slow}")
        else:
            reasons.append(f"no clean EMA{s.ema_fast}/EMA{s.ema_slow} trend")

    # Bollinger position: stretched to a band reads as mean-reverting.
    upper_a, middle_a, lower_a = ta.bbands(c.close, s.bb_period, s.bb_deviations, s.bb_deviations)
    bb_upper, bb_middle, bb_lower = _last(upper_a), _last(middle_a), _last(lower_a)
    percent_b = 0.5
    if bb_upper is not None and bb_middle is not None and bb_lower is not None:
        width = bb_upper - bb_lower
        if width > 0:
            percent_b = (close - bb_lower) / width
            readings["bollinger"] = float(np.clip(-(percent_b - 0.5) * 2.0, -1.0, 1.0)) * 0.8
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
    recent = atr_series[-s.volatility_window :]
    recent = recent[np.isfinite(recent)]
    volatility_ratio = 1.0
    if recent.shape[0] >= 10 and atr is not None:
        median = float(np.median(recent))
        if median > 0:
            volatility_ratio = atr / median
    atr_pct = atr_value / close if close else 0.0
    if volatility_ratio >= 1.8:
        reasons.append(f"volatility expanding: ATR {volatility_ratio:.1f}x its recent median")
    elif volatility_ratio <= 0.6:
        reasons.append(f"volatility contracting: ATR {volatility_ratio:.1f}x its recent median")
    if atr is not None:
        reasons.append(f"ATR({s.atr_period}) {atr_pct:.2%} of price")

    # Multi-timeframe trend alignment
    trends: dict[str, float] = {}
    if "trend" in readings:
        trends[timeframe] = readings["trend"]
    for tf, tf_candles in candles.items():
        if tf in trends:
            continue
        strength = trend_strength(tf_candles, s)
        if strength is not None:
            trends[tf] = strength
    votes = [0.0 if abs(v) < FLAT_TREND else math.copysign(1.0, v) for v in trends.values()]
    alignment = float(np.mean(votes)) if votes else 0.0
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
    weight_total = sum(WEIGHTS.values())
    used = {k: v for k, v in readings.items() if math.isfinite(v)}
    used_weight = sum(WEIGHTS[k] for k in used)
    if used_weight > 0:
        score = sum(WEIGHTS[k] * v for k, v in used.items()) / used_weight
        spread = sum(WEIGHTS[k] * abs(v) for k, v in used.items())
        agreement = abs(sum(WEIGHTS[k] * v for k, v in used.items())) / spread if spread > 0 else 0.0
    else:
        score, agreement = 0.0, 0.0
    warmup = min(1.0, n / (2.0 * s.ema_slow))
    coverage = used_weight / weight_total
    confidence = coverage * warmup * (0.25 + 0.75 * agreement)
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
        "macd": line if line is not None else 0.0,
        "macd_signal": signal if signal is not None else 0.0,
        "macd_hist": hist if hist is not None else 0.0,
        "ema_fast": ema_fast if ema_fast is not None else close,
        "ema_slow": ema_slow if ema_slow is not None else close,
        "bb_upper": bb_upper if bb_upper is not None else close,
        "bb_middle": bb_middle if bb_middle is not None else close,
        "bb_lower": bb_lower if bb_lower is not None else close,
        "bb_percent_b": percent_b,
        "trend_alignment": alignment,
        "candles": float(n),
    }
    for tf, strength in trends.items():
        values[f"trend_{tf}"] = strength
    levels = []
    if bb_upper is not None and bb_lower is not None:
        levels += [Level("bb_upper", bb_upper), Level("bb_lower", bb_lower)]
    if ema_slow is not None:
        levels.append(Level(f"ema_{s.ema_slow}", ema_slow))

    return Insight(
        agent=AgentName.TECHNICAL,
        symbol=symbol,
        score=float(np.clip(score, -1.0, 1.0)),
        confidence=float(np.clip(confidence, 0.0, 1.0)),
        reasons=tuple(reasons),
        levels=tuple(levels),
        values=values,
    )
