"""Gann agent: Square of 9 price levels, time cycles and the 1x1 angle, all from the last major pivot.

Definitions used here (Gann left several readings open; these are the ones this agent commits to):

- Square of 9: turning a price P by theta degrees gives (sqrt(P) + theta / 180)^2, so a full
  turn (360 deg) adds 2 to the square root. Levels are taken every 45 deg, up and down.
- Price scale: the wheel is not scale-free (a turn adds ~4 / sqrt(P) of the price), so prices are
  multiplied by the power of ten that brings the last close into [100, 1000) before turning and
  divided back after. ETH/BTC at 0.099 is read as 99, BTC/USDT at 60 000 as 600; the spacing of
  the levels is then 1.6-5 % for every instrument, whatever its quote currency.
- 1x1 angle: time and price are squared on the wheel, one bar turning it one degree. From a
  pivot P0 the 1x1 after k bars is (sqrt(P0) + k / 180)^2 from a low (rising) and
  (sqrt(P0) - k / 180)^2 from a high (falling), in scaled prices. Price above the line is strength.
- Time cycles: bars since the pivot are compared with Gann's counts (GANN_CYCLES); within 3 % (at
  least one bar) of one, a turn is "due" and the move since the pivot is treated as tiring.
- Major pivot: the last point of a zigzag of fractal pivots (see fibonacci.py) with a 10-bar window
  and reversals of at least 5 ATR, falling back to 5 bars and 3 ATR on short series. `PivotSeries`
  walks both once over a series; `gann_at` reads it at one candle.
"""

from __future__ import annotations

import math

import numpy as np

from workers.agents.atr import atr_series
from workers.agents.fibonacci import Pivot, PivotKind, SwingSeries
from workers.agents.insight import AgentName, Insight, Level
from workers.market.candles import Candles

GANN_DEGREES: tuple[int, ...] = (45, 90, 135, 180, 225, 270, 315, 360)
GANN_CYCLES: tuple[int, ...] = (30, 45, 60, 90, 120, 135, 144, 180, 225, 240, 270, 315, 360)
CYCLE_TOLERANCE = 0.03
# (pivot window, minimum reversal in ATR): major pivots first, then the fallback for short series.
PIVOT_SETTINGS: tuple[tuple[int, float], ...] = ((10, 5.0), (5, 3.0))


def square_of_nine(price: float, degrees: float) -> float:
    """`price` turned by `degrees` on the Square of 9: (sqrt(price) + degrees / 180) ** 2."""
    if price <= 0:
        raise ValueError("Square of 9 needs a positive price")
    root = math.sqrt(price) + degrees / 180.0
    if root < 0:
        raise ValueError(f"{price} cannot be turned by {degrees} degrees: the root would be negative")
    return root * root


def price_scale(price: float) -> float:
    """The power of ten that brings `price` into [100, 1000)."""
    if price <= 0 or not math.isfinite(price):
        raise ValueError("price scale needs a positive finite price")
    return 10.0 ** (2 - math.floor(math.log10(price)))


_TURNS = tuple((f"gann_+{deg}", f"gann_-{deg}", deg / 180.0) for deg in GANN_DEGREES)


def square_of_nine_levels(anchor: float, scale: float = 1.0) -> list[Level]:
    """Levels `gann_+45` .. `gann_+360` and `gann_-45` .. `gann_-360` turned from `anchor` (`square_of_nine`
    written out: this runs at every candle of a backtest)."""
    if anchor <= 0:
        raise ValueError("Square of 9 needs a positive price")
    root = math.sqrt(anchor * scale)
    up = [Level(name, (root + turn) * (root + turn) / scale) for name, _, turn in _TURNS]
    down = [Level(name, (root - turn) * (root - turn) / scale) for _, name, turn in _TURNS if root - turn > 0]
    return up + down


def one_by_one(pivot_price: float, rising: bool, bars: int, scale: float = 1.0) -> float:
    """The 1x1 line `bars` after a pivot: one degree of the Square of 9 per bar (floored at zero)."""
    root = math.sqrt(pivot_price * scale) + (bars if rising else -bars) / 180.0
    return max(root, 0.0) ** 2 / scale


def _cycle_status(bars_since: int) -> tuple[int | None, int | None]:
    hit = next(
        (c for c in GANN_CYCLES if abs(bars_since - c) <= max(1, round(CYCLE_TOLERANCE * c))),
        None,
    )
    ahead = next((c for c in GANN_CYCLES if c > bars_since), None)
    return hit, ahead


# Every count is at most 360 (+ its tolerance), so the answers up to there are a table.
_CYCLE_TABLE = [_cycle_status(bars) for bars in range(GANN_CYCLES[-1] + 2 * max(1, round(CYCLE_TOLERANCE * 360)))]


def cycle_status(bars_since: int) -> tuple[int | None, int | None]:
    """(the Gann count hit now or None, the next count still ahead or None)."""
    if 0 <= bars_since < len(_CYCLE_TABLE):
        return _CYCLE_TABLE[bars_since]
    return _cycle_status(bars_since)


class PivotSeries:
    """The last major pivot as of every candle of a series: the major zigzag's last point, or the fallback
    zigzag's while the major one has none (short series). Built once, read at any candle; the fallback is
    walked only when it is needed, unless given (the Fibonacci agent's zigzag has the same settings)."""

    def __init__(self, candles: Candles, unit: np.ndarray, fallback: SwingSeries | None = None) -> None:
        (window, move), _ = PIVOT_SETTINGS
        self._candles, self._unit = candles, unit
        self._major = SwingSeries(candles, window, move * unit)
        self._minor = fallback

    def at(self, t: int) -> Pivot | None:
        state = self._major.at(t)
        if state is None:
            if self._minor is None:
                _, (window, move) = PIVOT_SETTINGS
                self._minor = SwingSeries(self._candles, window, move * self._unit)
            state = self._minor.at(t)
        return state[1] if state is not None else None


def gann_insight(symbol: str, candles: Candles, scale: float | None = None, atr: float | None = None) -> Insight:
    """Square of 9 levels, time cycle and 1x1 position of the last close, from the last major pivot.

    `scale` overrides the automatic price scale; `atr` is ATR(14) of `candles` when already known.
    """
    _, unit = atr_series(candles)
    n = len(candles)
    if atr is None or not math.isfinite(atr) or atr <= 0:
        atr = float(unit[-1]) if n and math.isfinite(unit[-1]) else 0.0
    close = float(candles.close[-1]) if n else 0.0
    return gann_at(symbol, PivotSeries(candles, unit), n - 1, close, atr, scale)


def gann_at(
    symbol: str, pivots: PivotSeries, t: int, close: float, atr: float, scale: float | None = None
) -> Insight:
    """The Gann Insight at candle t, whose close is `close`, from the last major pivot confirmed by then."""
    n = t + 1
    pivot = pivots.at(t) if n and close > 0 else None
    if pivot is None or pivot.price <= 0:
        return Insight(
            agent=AgentName.GANN,
            symbol=symbol,
            score=0.0,
            confidence=0.0,
            reasons=(f"no major pivot in {n} candles: no Gann reading",),
            values={"close": close, "atr": atr},
        )

    k = scale if scale is not None else price_scale(close)
    rising = pivot.kind is PivotKind.LOW
    bars_since = n - 1 - pivot.index
    reasons = [f"last major pivot: {pivot.kind} {pivot.price:.8g}, {bars_since} bars ago"]

    # 1x1 angle
    line = one_by_one(pivot.price, rising, bars_since, k)
    unit = atr if atr > 0 else abs(close) * 1e-3
    distance = (close - line) / unit
    angle_score = math.tanh(distance / 3.0)
    side = "above" if close >= line else "below"
    reasons.append(
        f"price {side} the {'rising' if rising else 'falling'} 1x1 from the pivot ({line:.8g}, {distance:+.1f} ATR)"
    )

    # Square of 9 levels from the pivot
    levels = square_of_nine_levels(pivot.price, k)
    below = [lv for lv in levels if lv.price <= close]
    above = [lv for lv in levels if lv.price > close]
    support = max(below, key=lambda lv: lv.price) if below else None
    resistance = min(above, key=lambda lv: lv.price) if above else None
    level_score = 0.0
    if support is not None and resistance is not None:
        frac = (close - support.price) / (resistance.price - support.price)
        level_score = 0.5 * (1.0 - 2.0 * frac)
        reasons.append(
            f"between Square of 9 {support.name} ({support.price:.8g}) and {resistance.name} ({resistance.price:.8g})"
        )

    # Time cycles
    hit, ahead = cycle_status(bars_since)
    cycle_score = 0.0
    move = close - pivot.price
    if hit is not None:
        cycle_score = -0.5 * math.copysign(1.0, move) if move != 0 else 0.0
        reasons.append(f"time cycle due: {bars_since} bars since the pivot, Gann count {hit}")
    elif ahead is not None:
        reasons.append(f"next Gann time count {ahead} in {ahead - bars_since} bars")

    score = 0.5 * angle_score + 0.3 * level_score + 0.2 * cycle_score
    confidence = 0.25 + 0.15 * abs(angle_score) + (0.1 if hit is not None else 0.0)

    out_levels = [*levels, Level("one_by_one", line), Level("gann_pivot", pivot.price)]
    if support is not None:
        out_levels.append(Level("gann_support", support.price))
    if resistance is not None:
        out_levels.append(Level("gann_resistance", resistance.price))
    values = {
        "close": close,
        "atr": atr,
        "price_scale": k,
        "pivot_price": pivot.price,
        "pivot_is_low": 1.0 if rising else 0.0,
        "bars_since_pivot": float(bars_since),
        "one_by_one": line,
        "distance_to_1x1_atr": distance,
        "cycle_due": 1.0 if hit is not None else 0.0,
        "bars_to_next_cycle": float(ahead - bars_since) if ahead is not None else 0.0,
    }
    return Insight(
        agent=AgentName.GANN,
        symbol=symbol,
        score=max(-1.0, min(1.0, score)),
        confidence=max(0.0, min(1.0, confidence)),
        reasons=tuple(reasons),
        levels=tuple(out_levels),
        values=values,
    )
