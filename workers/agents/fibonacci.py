"""Fibonacci agent: the last significant swing, its retracement and extension levels, and where price sits.

Swing detection, in two steps:
1. Fractal pivots: bar i is a swing high when its high is the highest of bars i-w .. i+w (the
   earliest bar wins a tie), a swing low likewise with lows. A pivot is confirmed only once w
   later bars exist, so the last w bars can never be pivots: nothing is read from the future.
2. Zigzag: pivots are made to alternate high/low (of two in a row of the same kind the more
   extreme is kept), and a reversal smaller than `min_move` (default 3 x ATR(14) at the candle that
   confirms the pivot) is ignored.

`SwingSeries` walks the zigzag once over a whole series and answers "the last swing as of candle t"
for every t, so a backtest does not redo it per candle; `fibonacci_at` reads it at one candle.

The swing is the last zigzag leg A -> B. Low then high is an up-swing: retracements lie below the
high (high - r x range) and extensions above it (low + e x range). High then low is a down-swing,
mirrored. `support` and `resistance` are the nearest of these levels (swing ends included) at or
below, and above, the last close.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from workers.agents.atr import atr_series
from workers.agents.insight import AgentName, Insight, Level
from workers.market.candles import Candles

RETRACEMENTS: tuple[float, ...] = (0.236, 0.382, 0.5, 0.618, 0.786)
EXTENSIONS: tuple[float, ...] = (1.272, 1.618, 2.618)
PIVOT_WINDOW = 5
MIN_MOVE_ATR = 3.0

# Score of a pullback by its depth into the swing (0 = at the swing's end, 1 = back at its start),
# for an up-swing; a down-swing reads mirrored. Pullbacks to 0.382-0.786 are where a trend is
# usually resumed; beyond the start the swing has failed; beyond the end it is still running.
_DEPTH_KNOTS = (-0.618, 0.0, 0.236, 0.382, 0.5, 0.618, 0.786, 1.0, 1.272)
_DEPTH_SCORES = (0.3, 0.0, 0.15, 0.4, 0.55, 0.6, 0.35, -0.3, -0.6)


class PivotKind(enum.StrEnum):
    HIGH = "high"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Pivot:
    index: int
    price: float
    kind: PivotKind


@dataclass(frozen=True, slots=True)
class Swing:
    """A leg from `start` to `end`; `up` when it runs from a low to a high."""

    start: Pivot
    end: Pivot

    @property
    def up(self) -> bool:
        return self.end.kind is PivotKind.HIGH

    @property
    def high(self) -> float:
        return self.end.price if self.up else self.start.price

    @property
    def low(self) -> float:
        return self.start.price if self.up else self.end.price


def _pivot_arrays(high: np.ndarray, low: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bar index, price, is_high) of every confirmed fractal pivot, oldest first, highs before lows on a bar."""
    if window < 1:
        raise ValueError("window must be >= 1")
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    span = 2 * window + 1
    if high.shape[0] < span:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty(0), np.empty(0, dtype=bool)
    # argmax/argmin return the first extreme, so only the earliest bar of a flat top is a pivot.
    highs = np.flatnonzero(sliding_window_view(high, span).argmax(axis=1) == window) + window
    lows = np.flatnonzero(sliding_window_view(low, span).argmin(axis=1) == window) + window
    index = np.concatenate((highs, lows))
    price = np.concatenate((high[highs], low[lows]))
    is_high = np.concatenate((np.ones(highs.shape[0], bool), np.zeros(lows.shape[0], bool)))
    order = np.argsort(index, kind="stable")
    return index[order], price[order], is_high[order]


def fractal_pivots(high: np.ndarray, low: np.ndarray, window: int = PIVOT_WINDOW) -> list[Pivot]:
    """Confirmed fractal highs and lows, oldest first (a bar can be both: an outside bar)."""
    index, price, is_high = _pivot_arrays(high, low, window)
    return [
        Pivot(i, p, PivotKind.HIGH if h else PivotKind.LOW)
        for i, p, h in zip(index.tolist(), price.tolist(), is_high.tolist(), strict=True)
    ]


def _walk(high: np.ndarray, low: np.ndarray, window: int, min_move: float | np.ndarray) -> Iterator[tuple[int, list]]:
    """The zigzag as it grows: after each bar's pivots, (the bar that confirmed them, the zigzag so far).

    `min_move` is one threshold, or one per bar read at the bar that confirms a pivot (its index + window),
    so a live series and a backtest judge each reversal with what was known when it was confirmed; a NaN
    threshold (no ATR yet) lets every reversal through."""
    index, price, is_high = _pivot_arrays(high, low, window)
    moves = np.broadcast_to(np.asarray(min_move, dtype=np.float64), (np.asarray(high).shape[0],)).tolist()
    idx_l, price_l, high_l = index.tolist(), price.tolist(), is_high.tolist()
    zig: list[tuple[int, float, bool]] = []
    k = 0
    count = len(idx_l)
    while k < count:
        group = [(idx_l[k], price_l[k], high_l[k])]
        if k + 1 < count and idx_l[k + 1] == idx_l[k]:
            k += 1
            group.append((idx_l[k], price_l[k], high_l[k]))
            # An outside bar made both a high and a low: first the kind that continues the zigzag.
            if zig and group[0][2] == zig[-1][2]:
                group.reverse()
        confirmed = group[0][0] + window
        move = moves[confirmed]
        for pivot in group:
            if not zig:
                zig.append(pivot)
            elif pivot[2] == zig[-1][2]:
                more_extreme = pivot[1] > zig[-1][1] if pivot[2] else pivot[1] < zig[-1][1]
                if more_extreme:
                    zig[-1] = pivot
            elif not move > abs(pivot[1] - zig[-1][1]):
                zig.append(pivot)
        yield confirmed, zig
        k += 1


def _pivot(point: tuple[int, float, bool]) -> Pivot:
    return Pivot(point[0], point[1], PivotKind.HIGH if point[2] else PivotKind.LOW)


def zigzag(
    high: np.ndarray, low: np.ndarray, window: int = PIVOT_WINDOW, min_move: float | np.ndarray = 0.0
) -> list[Pivot]:
    """Fractal pivots made to alternate: the more extreme of same-kind neighbours, reversals >= min_move only."""
    grown = [zig for _, zig in _walk(high, low, window, min_move)]  # one list, grown in place
    return [_pivot(p) for p in grown[-1]] if grown else []


class SwingSeries:
    """The zigzag's last two points as of every candle of a series, walked once: `at(t)` is what `zigzag`
    of the candles up to t ends with, without redoing it per candle."""

    def __init__(self, candles: Candles, window: int, min_move: float | np.ndarray) -> None:
        self._confirmed: list[int] = []
        self._states: list[tuple[tuple[int, float, bool] | None, tuple[int, float, bool]]] = []
        self._pivots: dict[int, tuple[Pivot | None, Pivot]] = {}
        for bar, zig in _walk(candles.high, candles.low, window, min_move):
            state = (zig[-2] if len(zig) > 1 else None, zig[-1])
            if self._states and self._states[-1] == state:
                continue
            if self._confirmed and self._confirmed[-1] == bar:
                self._states[-1] = state
            else:
                self._confirmed.append(bar)
                self._states.append(state)

    def at(self, t: int) -> tuple[Pivot | None, Pivot] | None:
        """(the point before the last, the last point) of the zigzag confirmed by candle t, or None."""
        k = bisect_right(self._confirmed, t) - 1
        if k < 0:
            return None
        state = self._pivots.get(k)
        if state is None:  # made into Pivots once, when first read: a live cycle reads only the last one
            before, last = self._states[k]
            state = self._pivots[k] = ((_pivot(before) if before is not None else None), _pivot(last))
        return state

    def swing_at(self, t: int) -> Swing | None:
        """The last completed leg confirmed by candle t."""
        state = self.at(t)
        return Swing(state[0], state[1]) if state is not None and state[0] is not None else None


def last_swing(
    high: np.ndarray, low: np.ndarray, window: int = PIVOT_WINDOW, min_move: float | np.ndarray = 0.0
) -> Swing | None:
    """The most recent completed zigzag leg, or None when there are not two alternating pivots."""
    zig = zigzag(high, low, window, min_move)
    if len(zig) < 2:
        return None
    return Swing(zig[-2], zig[-1])


def swing_levels(swing: Swing) -> list[Level]:
    """Retracements `fib_<r>` and extensions `ext_<e>` of a swing, direction-aware; non-positive prices dropped."""
    hi, lo = swing.high, swing.low
    rng = hi - lo
    levels: list[Level] = []
    for r in RETRACEMENTS:
        price = hi - r * rng if swing.up else lo + r * rng
        levels.append(Level(f"fib_{r:g}", price))
    for e in EXTENSIONS:
        price = lo + e * rng if swing.up else hi - e * rng
        if price > 0:
            levels.append(Level(f"ext_{e:g}", price))
    return levels


def nearest_support_resistance(levels: list[Level], price: float) -> tuple[Level | None, Level | None]:
    """The highest level at or below `price` and the lowest level above it."""
    below = [lv for lv in levels if lv.price <= price]
    above = [lv for lv in levels if lv.price > price]
    support = max(below, key=lambda lv: lv.price) if below else None
    resistance = min(above, key=lambda lv: lv.price) if above else None
    return support, resistance


def fibonacci_insight(
    symbol: str,
    candles: Candles,
    window: int = PIVOT_WINDOW,
    min_move_atr: float = MIN_MOVE_ATR,
    atr: float | None = None,
) -> Insight:
    """Where the last close sits in the last significant swing of `candles` (`atr`: ATR(14) if known)."""
    _, unit = atr_series(candles)
    n = len(candles)
    if atr is None or not math.isfinite(atr) or atr <= 0:
        atr = float(unit[-1]) if n and math.isfinite(unit[-1]) else 0.0
    swings = SwingSeries(candles, window, min_move_atr * unit)
    return fibonacci_at(symbol, swings, n - 1, float(candles.close[-1]) if n else 0.0, atr, window)


def _depth_score(depth: float) -> float:
    """The pullback score `_DEPTH_SCORES` at `depth`, linear between the knots and flat beyond them."""
    knots, scores = _DEPTH_KNOTS, _DEPTH_SCORES
    if depth <= knots[0]:
        return scores[0]
    for k in range(1, len(knots)):
        if depth <= knots[k]:
            x0, x1 = knots[k - 1], knots[k]
            return scores[k - 1] + (scores[k] - scores[k - 1]) * (depth - x0) / (x1 - x0)
    return scores[-1]


def fibonacci_at(
    symbol: str, swings: SwingSeries, t: int, close: float, atr: float, window: int = PIVOT_WINDOW
) -> Insight:
    """The Fibonacci Insight at candle t: the last swing confirmed by then, and where `close` sits in it."""
    n = t + 1
    swing = swings.swing_at(t) if n else None
    if swing is None or swing.high <= swing.low:
        return Insight(
            agent=AgentName.FIBONACCI,
            symbol=symbol,
            score=0.0,
            confidence=0.0,
            reasons=(f"no confirmed swing in {n} candles (pivot window {window})",),
            values={"close": close, "atr": atr},
        )

    hi, lo = swing.high, swing.low
    rng = hi - lo
    direction = 1.0 if swing.up else -1.0
    depth = (hi - close) / rng if swing.up else (close - lo) / rng
    score = direction * _depth_score(depth)

    levels = swing_levels(swing)
    ends = [Level("swing_high", hi), Level("swing_low", lo)]
    support, resistance = nearest_support_resistance(levels + ends, close)

    kind = "up-swing" if swing.up else "down-swing"
    size_note = f", {rng / atr:.1f} ATR" if atr > 0 else ""
    reasons = [
        f"last {kind} {swing.start.price:.8g} -> {swing.end.price:.8g} "
        f"(ended {n - 1 - swing.end.index} candles ago{size_note})",
        f"price has retraced {depth:.1%} of the swing",
    ]
    if depth < 0:
        reasons.append(f"price beyond the swing {'high' if swing.up else 'low'}: the move is extending")
    elif depth > 1:
        reasons.append(f"price beyond the swing {'low' if swing.up else 'high'}: the swing has failed")
    if support is not None:
        reasons.append(f"support {support.name} at {support.price:.8g}")
    if resistance is not None:
        reasons.append(f"resistance {resistance.name} at {resistance.price:.8g}")

    # Confidence grows with the swing's size and with price sitting on a level.
    size = min(1.0, rng / (10.0 * atr)) if atr > 0 else 0.5
    near = [lv for lv in levels if atr > 0 and abs(lv.price - close) <= 0.5 * atr]
    confidence = 0.3 + 0.3 * size + (0.15 if near else 0.0)
    if near:
        reasons.append(f"price within half an ATR of {near[0].name}")

    out_levels = levels + ends
    if support is not None:
        out_levels.append(Level("support", support.price))
    if resistance is not None:
        out_levels.append(Level("resistance", resistance.price))
    values = {
        "close": close,
        "atr": atr,
        "swing_high": hi,
        "swing_low": lo,
        "swing_direction": direction,
        "retracement": depth,
        "bars_since_swing_end": float(n - 1 - swing.end.index),
    }
    return Insight(
        agent=AgentName.FIBONACCI,
        symbol=symbol,
        score=max(-1.0, min(1.0, score)),
        confidence=max(0.0, min(1.0, confidence)),
        reasons=tuple(reasons),
        levels=tuple(out_levels),
        values=values,
    )
