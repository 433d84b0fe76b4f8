"""Every limit on a bot's configuration, in one place: the API schemas, `tenants.bots` and (later) the
mobile app's forms all read these, so a limit changes here and nowhere else."""

from __future__ import annotations

import enum
from decimal import Decimal


class Timeframe(enum.StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"


class BrainKind(enum.StrEnum):
    RULES = "rules"
    GPT = "gpt"


class BotMode(enum.StrEnum):
    PAPER = "paper"
    LIVE = "live"


# The analysis agents a bot may weigh: the values of `workers.agents.insight.AgentName` (tenants may not
# import workers; tests/test_bots.py pins the two lists together).
AGENT_NAMES: tuple[str, ...] = ("technical", "fibonacci", "gann", "sentiment", "positions")

NAME_MIN_LENGTH, NAME_MAX_LENGTH = 1, 80

# ccxt unified symbols: `BASE/QUOTE` for spot, `BASE/QUOTE:SETTLE` for perpetual swaps.
SYMBOLS_MIN, SYMBOLS_MAX = 1, 20
SYMBOL_BASE_LENGTH = (2, 15)
SYMBOL_QUOTE_LENGTH = (2, 10)
SYMBOL_PATTERN = (
    rf"^[A-Z0-9]{{{SYMBOL_BASE_LENGTH[0]},{SYMBOL_BASE_LENGTH[1]}}}"
    rf"/[A-Z0-9]{{{SYMBOL_QUOTE_LENGTH[0]},{SYMBOL_QUOTE_LENGTH[1]}}}"
    rf"(?::[A-Z0-9]{{{SYMBOL_QUOTE_LENGTH[0]},{SYMBOL_QUOTE_LENGTH[1]}}})?$"
)

TIMEFRAMES_MIN, TIMEFRAMES_MAX = 1, 4

LEVERAGE_MIN, LEVERAGE_MAX = 1, 50
RISK_PER_TRADE_PCT_MIN, RISK_PER_TRADE_PCT_MAX = 0.1, 5
MAX_OPEN_POSITIONS_MIN, MAX_OPEN_POSITIONS_MAX = 1, 20
DAILY_LOSS_LIMIT_PCT_MIN, DAILY_LOSS_LIMIT_PCT_MAX = 0.5, 50
CYCLE_INTERVAL_SECONDS_MIN, CYCLE_INTERVAL_SECONDS_MAX = 60, 86_400
AGENT_WEIGHT_MIN, AGENT_WEIGHT_MAX = 0, 1
BRAIN_MODEL_MIN_LENGTH, BRAIN_MODEL_MAX_LENGTH = 1, 80

# Stored precision of the Decimal columns (tenants.models.Bot); finer input is rounded to it.
LEVERAGE_STEP = Decimal("0.01")
PCT_STEP = Decimal("0.001")

# A new bot, and the default bot the mobile app's config screen starts from.
DEFAULT_BOT_NAME = "My bot"
DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC/USDT",)
DEFAULT_TIMEFRAMES: tuple[Timeframe, ...] = (Timeframe.M15, Timeframe.H1)
DEFAULT_LEVERAGE = 1.0
DEFAULT_RISK_PER_TRADE_PCT = 1.0
DEFAULT_MAX_OPEN_POSITIONS = 1
DEFAULT_DAILY_LOSS_LIMIT_PCT = 3.0
DEFAULT_CYCLE_INTERVAL_SECONDS = 900
DEFAULT_BRAIN = BrainKind.RULES
DEFAULT_GPT_MODEL = "gpt-4o-mini"
DEFAULT_MODE = BotMode.PAPER
# The rules brain's default weights (workers.brain.rules reads them from here): positions manages trades, it
# does not vote.
DEFAULT_AGENT_WEIGHTS: dict[str, float] = {
    "technical": 0.40, "sentiment": 0.25, "fibonacci": 0.20, "gann": 0.15, "positions": 0.0,
}

# The exchange id of a paper account; a live bot needs a key of any other exchange.
