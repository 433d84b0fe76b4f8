"""OHLCV candles as numpy arrays: the one shape every source returns and every agent reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


@dataclass(frozen=True, slots=True)
class Candles:
    """A series of candles, oldest first; `timestamp` is the candle open in ms since epoch (UTC)."""

    symbol: str
    timeframe: str
    timestamp: np.ndarray  # int64
    open: np.ndarray  # float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])

    def upto(self, ts_ms: int) -> Candles:
        """The candles that had closed by `ts_ms`: what a decision taken at that time may see."""
        closed = self.timestamp + TIMEFRAME_MS[self.timeframe] <= ts_ms
        n = int(np.count_nonzero(closed))
        return self.head(n)

    def head(self, n: int) -> Candles:
        return Candles(
            self.symbol,
            self.timeframe,
            self.timestamp[:n],
            self.open[:n],
            self.high[:n],
            self.low[:n],
            self.close[:n],
            self.volume[:n],
        )

    def tail(self, n: int) -> Candles:
        start = max(len(self) - n, 0)
        return Candles(
            self.symbol,
            self.timeframe,
            self.timestamp[start:],
            self.open[start:],
            self.high[start:],
            self.low[start:],
            self.close[start:],
            self.volume[start:],
        )
