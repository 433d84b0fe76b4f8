"""The typed decision every brain returns and the risk guard adjusts."""

from __future__ import annotations

import enum

import msgspec


class Action(enum.StrEnum):
    WAIT = "WAIT"  # no position and nothing worth opening
    HOLD = "HOLD"  # keep the open position as it is
    OPEN_LONG = "OPEN_LONG"
    OPEN_SHORT = "OPEN_SHORT"
    CLOSE = "CLOSE"


class Decision(msgspec.Struct, frozen=True):
    """A brain's proposal for one symbol; prices in quote currency, `size` in base units (set by the guard)."""

    action: Action
    symbol: str
    confidence: float
    entry: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    leverage: float = 1.0
    size: float | None = None
    reasons: tuple[str, ...] = ()
