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
    if not candles:
        raise ValueError("analyse_symbol needs at least one timeframe of candles")
    timeframe = next(iter(candles))
    trading = candles[timeframe]
    if now_ms is None:
        now_ms = int(trading.timestamp[-1]) + TIMEFRAME_MS[timeframe] if len(trading) else 0

    technical = technical_insight(symbol, candles)
    atr = technical.values["atr"]
    insights = [
        technical,
        fibonacci_insight(symbol, trading, atr=atr),
        gann_insight(symbol, trading, atr=atr),
    ]

    insights.append(sentiment_insight(symbol, headlines, now_ms))

    mine = [p for p in positions if p.symbol == symbol]
    if mine and len(trading):
        price = float(trading.close[-1])
        side = managed_side([p for p in mine if p.amount > 0] or mine)
        opened = min(p.opened_at for p in mine if p.side is side)
        managed = positions_insight(
            symbol,
            mine,
            price=price,
            atr=atr,
            now_ms=now_ms,
            bar_ms=TIMEFRAME_MS[timeframe],
            best_price=_best_price_since(trading, opened, side),
        )
        if managed is not None:
            insights.append(managed)
    return insights
