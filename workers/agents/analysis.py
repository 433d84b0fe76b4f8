"""Run every analysis agent on one symbol: the single entry point a trading cycle or backtest calls.

Pure like the agents it runs. The first timeframe of `candles` is the trading timeframe (list the
smallest first); Fibonacci, Gann and the position manager read it, the technical agent also reads
the others for trend alignment.

`SymbolAnalysis` computes every agent's series once over all the candles it is given and reads them
at any trading candle t (`at(t)`), which is how a backtest runs; a live cycle calls `analyse_symbol`,
which is the same reading at the last candle. Every series is causal, so `at(t)` over a long history
equals `analyse_symbol` of the history cut after t (tests/agents/test_analysis.py checks it candle by
candle), apart from where the history starts: exponential averages and the zigzag start from the
first candle given, and a live cycle gives the last few hundred.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from workers.agents.fibonacci import MIN_MOVE_ATR, PIVOT_WINDOW, SwingSeries, fibonacci_at
from workers.agents.gann import PivotSeries, gann_at
from workers.agents.insight import Headline, Insight, OpenPosition, PositionSide
from workers.agents.positions import managed_side, positions_insight
from workers.agents.sentiment import sentiment_insight
from workers.agents.technical import TechnicalSeries, technical_at, trend_series
from workers.market.candles import TIMEFRAME_MS, Candles


class SymbolAnalysis:
    """Every agent's series for one symbol's timeframes, computed once; `at(t)` is the analysis at the close of
    trading candle t, seeing for each higher timeframe only its candles closed by then."""

    def __init__(self, symbol: str, candles: Mapping[str, Candles], *, all_closed: bool = False) -> None:
        if not candles:
            raise ValueError("analyse_symbol needs at least one timeframe of candles")
        self.symbol = symbol
        trading, *others = candles.values()
        self.trading = trading
        self.bar_ms = TIMEFRAME_MS[trading.timeframe]
        self._close_ms = trading.timestamp + self.bar_ms
        self.technical = TechnicalSeries(trading, per_candle=not all_closed)
        unit = np.asarray(self.technical.unit)
        self.swings = SwingSeries(trading, PIVOT_WINDOW, MIN_MOVE_ATR * unit)
        self.pivots = PivotSeries(trading, unit, fallback=self.swings)
        self._higher: list[tuple[str, list[float], list[int]]] = []
        for other in others:
            if all_closed:  # a live cycle's candles: every one of them has closed
                index = [len(other) - 1] * len(trading)
            else:
                ends = other.timestamp + TIMEFRAME_MS[other.timeframe]
                index = (np.searchsorted(ends, self._close_ms, side="right") - 1).tolist()
            self._higher.append((other.timeframe, trend_series(other).tolist(), index))

    def __len__(self) -> int:
        return len(self.trading)

    def close_ms(self, t: int) -> int:
        """When trading candle t closes: the moment of a decision taken on it."""
        return int(self._close_ms[t])

    def market_at(self, t: int, headlines: Sequence[Headline] = (), now_ms: int | None = None) -> list[Insight]:
        """The insights that depend on the market alone (technical, fibonacci, gann, sentiment) at candle t."""
        symbol = self.symbol
        higher = [(tf, strength, index[t]) for tf, strength, index in self._higher]
        technical = technical_at(symbol, self.technical, t, higher)
        atr = technical.values["atr"]
        close = technical.values["close"]
        now = now_ms if now_ms is not None else (self.close_ms(t) if t >= 0 else 0)
        return [
            technical,
            fibonacci_at(symbol, self.swings, t, close, atr),
            gann_at(symbol, self.pivots, t, close, atr),
            sentiment_insight(symbol, headlines, now),
        ]

    def position_at(
        self, t: int, technical: Insight, positions: Sequence[OpenPosition], now_ms: int | None = None
    ) -> Insight | None:
        """The position manager's insight at candle t on the bot's own open position(s) in the symbol, if any."""
        return _manage(self.symbol, self.trading, t, technical, positions, now_ms)

    def at(
        self,
        t: int,
        headlines: Sequence[Headline] = (),
        positions: Sequence[OpenPosition] = (),
        now_ms: int | None = None,
    ) -> list[Insight]:
        """Every agent's Insight at candle t: technical, fibonacci, gann, sentiment, then positions when one is open."""
        insights = self.market_at(t, headlines, now_ms)
        managed = self.position_at(t, insights[0], positions, now_ms)
        return insights if managed is None else [*insights, managed]


def _manage(
    symbol: str, trading: Candles, t: int, technical: Insight, positions: Sequence[OpenPosition], now_ms: int | None
) -> Insight | None:
    """The position manager on `symbol`'s positions at trading candle t (whose close `technical` read)."""
    mine = [p for p in positions if p.symbol == symbol]
    if not mine or t < 0:
        return None
    side = managed_side([p for p in mine if p.amount > 0] or mine)
    opened = min(p.opened_at for p in mine if p.side is side)
    bar_ms = TIMEFRAME_MS[trading.timeframe]
    # The best price since entry: over the candles up to t that were still open when the position opened.
    first = int(np.searchsorted(trading.timestamp, opened - bar_ms, side="right"))
    best = None
    if first <= t:
        since = trading.high[first : t + 1] if side is PositionSide.LONG else trading.low[first : t + 1]
        best = float(since.max() if side is PositionSide.LONG else since.min())
    return positions_insight(
        symbol,
        mine,
        price=technical.values["close"],
        atr=technical.values["atr"],
        now_ms=now_ms if now_ms is not None else int(trading.timestamp[t]) + bar_ms,
        bar_ms=bar_ms,
        best_price=best,
    )


def analyse_symbol(
    symbol: str,
    candles: Mapping[str, Candles],
    headlines: Sequence[Headline] = (),
    positions: Sequence[OpenPosition] = (),
    now_ms: int | None = None,
) -> list[Insight]:
    """Every agent's Insight for `symbol` at its last candle: technical, fibonacci, gann, sentiment, then
    positions when one is open."""
    analysis = SymbolAnalysis(symbol, candles, all_closed=True)
    return analysis.at(len(analysis) - 1, headlines, positions, now_ms)


def market_insights(
    symbol: str, candles: Mapping[str, Candles], headlines: Sequence[Headline] = (), now_ms: int | None = None
) -> list[Insight]:
    """The insights that depend on the market alone (technical, fibonacci, gann, sentiment): the same for
    every bot on this symbol and candle, so a worker computes them once and shares them."""
    analysis = SymbolAnalysis(symbol, candles, all_closed=True)
    return analysis.market_at(len(analysis) - 1, headlines, now_ms)


def position_insight(
    symbol: str,
    candles: Mapping[str, Candles],
    technical: Insight,
    positions: Sequence[OpenPosition],
    now_ms: int | None = None,
) -> Insight | None:
    """The position manager's insight on the bot's own open position(s) in `symbol`, if any."""
    trading = next(iter(candles.values()))
    return _manage(symbol, trading, len(trading) - 1, technical, positions, now_ms)
