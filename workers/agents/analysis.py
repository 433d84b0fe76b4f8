"""Run every analysis agent on one symbol: the single entry point a trading cycle or backtest calls.

Pure like the agents it runs. The first timeframe of `candles` is the trading timeframe (list the
smallest first); Fibonacci, Gann and the position manager read it, the technical agent also reads
the others for trend alignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from workers.agents.fibonacci import fibonacci_insight
from workers.agents.gann import gann_insight
from workers.agents.insight import Headline, Insight, OpenPosition, PositionSide
from workers.agents.positions import managed_side, positions_insight
from workers.agents.sentiment import sentiment_insight
from workers.agents.technical import technical_insight
from workers.market.candles import TIMEFRAME_MS, Candles


def _best_price_since(candles: Candles, opened_at: int, side: PositionSide) -> float | None:
    """Highest high (long) or lowest low (short) of the candles that were open at or after `opened_at`."""
    if len(candles) == 0:
        return None
    since = candles.timestamp + TIMEFRAME_MS[candles.timeframe] > opened_at
    if not since.any():
        return None
    return float(np.max(candles.high[since]) if side is PositionSide.LONG else np.min(candles.low[since]))


def analyse_symbol(
    symbol: str,
    candles: Mapping[str, Candles],
    headlines: Sequence[Headline] = (),
    positions: Sequence[OpenPosition] = (),
    now_ms: int | None = None,
) -> list[Insight]:
    """Every agent's Insight for `symbol`: technical, fibonacci, gann, sentiment, then positions when one is open."""
    insights = market_insights(symbol, candles, headlines, now_ms)
    managed = position_insight(symbol, candles, insights[0], positions, now_ms)
    return insights if managed is None else [*insights, managed]


def market_insights(
    symbol: str, candles: Mapping[str, Candles], headlines: Sequence[Headline] = (), now_ms: int | None = None
) -> list[Insight]:
    """The insights that depend on the market alone (technical, fibonacci, gann, sentiment): the same for
    every bot on this symbol and candle, so a worker computes them once and shares them."""
    if not candles:
        raise ValueError("analyse_symbol needs at least one timeframe of candles")
    trading = next(iter(candles.values()))
    technical = technical_insight(symbol, candles)
    atr = technical.values["atr"]
    return [
        technical,
        fibonacci_insight(symbol, trading, atr=atr),
        gann_insight(symbol, trading, atr=atr),
        sentiment_insight(symbol, headlines, _now(trading, now_ms)),
    ]


def position_insight(
    symbol: str,
    candles: Mapping[str, Candles],
    technical: Insight,
    positions: Sequence[OpenPosition],
    now_ms: int | None = None,
) -> Insight | None:
    """The position manager's insight on the bot's own open position(s) in `symbol`, if any."""
    timeframe = next(iter(candles))
    trading = candles[timeframe]
    mine = [p for p in positions if p.symbol == symbol]
    if not mine or not len(trading):
        return None
    side = managed_side([p for p in mine if p.amount > 0] or mine)
    opened = min(p.opened_at for p in mine if p.side is side)
    return positions_insight(
        symbol,
        mine,
        price=float(trading.close[-1]),
        atr=technical.values["atr"],
        now_ms=_now(trading, now_ms),
        bar_ms=TIMEFRAME_MS[timeframe],
        best_price=_best_price_since(trading, opened, side),
    )


def _now(trading: Candles, now_ms: int | None) -> int:
    if now_ms is not None:
        return now_ms
    return int(trading.timestamp[-1]) + TIMEFRAME_MS[trading.timeframe] if len(trading) else 0
