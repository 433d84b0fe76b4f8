"""What the analysis agents return, and the inputs that are not candles."""

from __future__ import annotations

import enum

import msgspec


class AgentName(enum.StrEnum):
    TECHNICAL = "technical"
    FIBONACCI = "fibonacci"
    GANN = "gann"
    SENTIMENT = "sentiment"
    POSITIONS = "positions"


class Level(msgspec.Struct, frozen=True):
    """A price level an agent found, e.g. `fib_0.618`, `support`, `gann_+90`, `trailing_stop`."""

    name: str
    price: float


class Insight(msgspec.Struct, frozen=True):
    """One agent's reading of one symbol: score in [-1, 1] (positive is bullish), confidence in [0, 1]."""

    agent: AgentName
    symbol: str
    score: float
    confidence: float
    reasons: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ()
    values: dict[str, float] = {}


class Headline(msgspec.Struct, frozen=True):
    """A news headline as the sentiment agent reads it; `published_at` is ms since epoch (UTC)."""

    title: str
    published_at: int
    source: str = ""
    url: str = ""


class PositionSide(enum.StrEnum):
    LONG = "long"
    SHORT = "short"


class OpenPosition(msgspec.Struct, frozen=True):
    """An open position as the position manager sees it; `opened_at` is ms since epoch (UTC)."""

    symbol: str
    side: PositionSide
    entry_price: float
    amount: float
    opened_at: int
    stop_loss: float | None = None
    take_profit: float | None = None
