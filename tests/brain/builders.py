"""Hand-built inputs for the decision tests: a bot, its insights, the account and the model's answers."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from redis.asyncio import Redis

from workers.agents.insight import AgentName, Headline, Insight, Level
from workers.brain.breaker import RedisCircuitBreaker
from workers.brain.gpt import GptBrainConfig
from workers.brain.risk import AccountState, RiskConfig
from workers.brain.service import BotConfig, BrainKind, DecisionInputs
from workers.exchanges.base import MarketRules

SYMBOL = "ETH/USDT"
OTHER_SYMBOL = "BTC/USDT"
PRICE = 100.0
ATR = 2.0
NOW_MS = 1_735_000_000_000


class ManualClock:
    """A clock the test moves by hand (seconds since epoch), for cooldowns and day boundaries."""

    def __init__(self, now: float | None = None) -> None:
        # Real time to start with: Redis expires keys by its own clock, so days in the past would vanish.
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def insights(direction: float = 1.0, symbol: str = SYMBOL) -> tuple[Insight, ...]:
    """Agents agreeing on `direction` (+1 bullish, -1 bearish) strongly enough for the rules brain to open."""
    return (
        Insight(
            AgentName.TECHNICAL,
            symbol,
            0.8 * direction,
            0.9,
            reasons=("ema fast above slow" if direction > 0 else "ema fast below slow",),
            values={
                "close": PRICE, "atr": ATR, "rsi": 60.0 if direction > 0 else 40.0, "regime_trend": 0.6 * direction,
            },
        ),
        Insight(
            AgentName.FIBONACCI,
            symbol,
            0.6 * direction,
            0.8,
            levels=(Level("support", 96.0), Level("resistance", 110.0)),
        ),
        Insight(AgentName.GANN, symbol, 0.5 * direction, 0.8),
        Insight(AgentName.SENTIMENT, symbol, 0.0, 0.0, reasons=("no headlines in the look-back window",)),
    )


def bot(**overrides: Any) -> BotConfig:
    base = BotConfig(
        tenant_id=uuid.uuid4(),
        bot_id=uuid.uuid4(),
        symbols=(SYMBOL, OTHER_SYMBOL),
        brain=BrainKind.GPT,
        risk=RiskConfig(
            max_leverage=3.0, risk_per_trade_pct=1.0, max_open_positions=2, daily_loss_limit_pct=3.0, allow_short=True
        ),
        entry_band_pct=1.0,
    )
    return msgspec.structs.replace(base, **overrides)


def inputs(**overrides: Any) -> DecisionInputs:
    base = DecisionInputs(
        symbol=SYMBOL,
        price=PRICE,
        insights=insights(),
        account=AccountState(equity=10_000.0, open_positions=0, pnl_today=0.0),
        market=MarketRules(symbol=SYMBOL, amount_step=0.001, price_tick=0.01, min_amount=0.001, min_notional=10.0),
    )
    return msgspec.structs.replace(base, **overrides)


def headline(title: str, minutes_ago: int = 30) -> Headline:
    return Headline(title=title, published_at=NOW_MS - minutes_ago * 60_000, source="wire.example")


def answer(**fields: Any) -> dict[str, Any]:
    """The model's JSON answer; by default a sound 2x long on ETH/USDT at the current price."""
    good: dict[str, Any] = {
        "action": "OPEN_LONG",
        "symbol": SYMBOL,
        "entry": PRICE,
        "stop_loss": 96.0,
        "take_profit": 108.0,
        "leverage": 2,
        "confidence": 0.7,
        "reasons": ["trend up on 5m and 1h", "support at 96 holds"],
    }
    good.update(fields)
    return good


def make_breaker(redis: Redis, config: GptBrainConfig, prefix: str, clock: ManualClock) -> RedisCircuitBreaker:
    return RedisCircuitBreaker(
        redis,
        config.breaker_name,
        failure_threshold=config.llm_breaker_failures,
        window_seconds=config.llm_breaker_window_seconds,
        cooldown_seconds=config.llm_breaker_cooldown_seconds,
        prefix=prefix,
        clock=clock,
    )
