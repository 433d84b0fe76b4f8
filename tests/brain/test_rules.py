"""Behaviour of the deterministic rules brain, driven by hand-built insights."""

from __future__ import annotations

import math

import pytest

from workers.agents.insight import AgentName, Insight, Level, OpenPosition, PositionSide
from workers.agents.positions import positions_insight
from workers.brain.decision import Action
from workers.brain.rules import DEFAULT_WEIGHTS, RulesBrain, RulesParams, decide_by_rules

SYMBOL = "ETH/BTC"
PRICE = 100.0
ATR = 2.0


def technical(score: float, confidence: float = 0.9, regime: float | None = None) -> Insight:
    """A technical reading; its slowest timeframe trends the way `score` points unless `regime` says otherwise."""
    trend = regime if regime is not None else math.copysign(0.6, score) if score else 0.0
    return Insight(
        AgentName.TECHNICAL,
        SYMBOL,
        score,
        confidence,
        reasons=("ema fast above slow",),
        values={"close": PRICE, "atr": ATR, "rsi": 60.0, "regime_trend": trend},
    )


def fibonacci(score: float, support: float = 96.0, resistance: float = 110.0, confidence: float = 0.8) -> Insight:
    return Insight(
        AgentName.FIBONACCI,
        SYMBOL,
        score,
        confidence,
        levels=(
            Level("fib_0.382", 98.5),
            Level("support", support),
            Level("resistance", resistance),
            Level("fib_0.786", 115.0),
        ),
    )


def agent(name: AgentName, score: float, confidence: float = 0.8) -> Insight:
    return Insight(name, SYMBOL, score, confidence)


def bullish() -> list[Insight]:
    return [
        technical(0.8),
        fibonacci(0.6),
        agent(AgentName.GANN, 0.5),
        agent(AgentName.SENTIMENT, 0.7),
    ]


def bearish() -> list[Insight]:
    return [
        technical(-0.8),
        fibonacci(-0.6, support=90.0, resistance=103.0),
        agent(AgentName.GANN, -0.5),
        agent(AgentName.SENTIMENT, -0.7),
    ]


def long_position(stop: float = 95.0) -> OpenPosition:
    return OpenPosition(
        SYMBOL,
        PositionSide.LONG,
        entry_price=98.0,
        amount=1.0,
        opened_at=0,
        stop_loss=stop,
        take_profit=110.0,
    )


def test_strong_bullish_consensus_opens_long_with_stop_below_and_target_above_entry():
    d = decide_by_rules(SYMBOL, bullish())
    assert d.action == Action.OPEN_LONG
    assert d.entry == PRICE
    assert d.stop_loss < PRICE < d.take_profit
    # beyond the fib support (96) by the ATR buffer, and at least 1.5 ATR away
    assert d.stop_loss < 96.0
    assert PRICE - d.stop_loss >= 1.5 * ATR
    assert (d.take_profit - PRICE) / (PRICE - d.stop_loss) >= RulesParams().min_reward_risk
    assert 0.5 < d.confidence <= 1.0
    assert any("technical" in r for r in d.reasons)


def test_strong_bearish_consensus_opens_short_with_stop_above_and_target_below_entry():
    d = decide_by_rules(SYMBOL, bearish())
    assert d.action == Action.OPEN_SHORT
    assert d.take_profit < PRICE < d.stop_loss
    assert d.stop_loss > 103.0  # beyond the fib resistance
    assert (PRICE - d.take_profit) / (d.stop_loss - PRICE) >= RulesParams().min_reward_risk


def test_stop_keeps_at_least_min_atr_distance_when_the_fib_level_hugs_the_price():
    insights = [technical(0.9), fibonacci(0.8, support=99.9, resistance=130.0)]
    d = decide_by_rules(SYMBOL, insights)
    assert d.action == Action.OPEN_LONG
    assert abs((PRICE - d.stop_loss) - 1.5 * ATR) < 1e-9


def test_stop_is_capped_when_the_fib_level_is_far_away():
    insights = [technical(0.9), fibonacci(0.8, support=50.0, resistance=130.0)]
    d = decide_by_rules(SYMBOL, insights)
    assert d.action == Action.OPEN_LONG
    assert abs((PRICE - d.stop_loss) - 4.0 * ATR) < 1e-9


def test_take_profit_uses_the_resistance_when_it_pays_enough():
    # stop 97 - 0.25 ATR = 96.5, so 3.5 of risk: the resistance 12 away pays 3.4 R, within [3, 4] R
    d = decide_by_rules(SYMBOL, [technical(0.9), fibonacci(0.8, support=97.0, resistance=112.0)])
    assert d.action == Action.OPEN_LONG
    assert d.take_profit == 112.0


def test_the_regime_filter_keeps_entries_with_the_slowest_timeframes_trend():
    against = decide_by_rules(SYMBOL, [technical(0.9, regime=-0.5), fibonacci(0.8)])
    flat = decide_by_rules(SYMBOL, [technical(0.9, regime=0.2), fibonacci(0.8)])
    assert against.action == flat.action == Action.WAIT
    assert "slowest timeframe" in against.reasons[0]
    unfiltered = decide_by_rules(SYMBOL, [technical(0.9, regime=-0.5), fibonacci(0.8)],
                                 params=RulesParams(regime_trend=None))
    assert unfiltered.action == Action.OPEN_LONG


def test_a_position_whose_regime_turns_against_it_is_closed():
    d = decide_by_rules(SYMBOL, [technical(0.1, regime=-0.5), fibonacci(0.1)], position=long_position())
    assert d.action == Action.CLOSE
    assert "turned against" in d.reasons[0]


def test_the_cost_aware_entry_waits_when_a_candles_move_does_not_pay_the_costs():
    quiet = Insight(AgentName.TECHNICAL, SYMBOL, 0.9, 0.9, values={"close": PRICE, "atr": 0.5, "regime_trend": 0.6})
    d = decide_by_rules(SYMBOL, [quiet, fibonacci(0.8)])  # ATR 0.5 % of price, 3 round trips of 0.3 % need 0.9 %
    assert d.action == Action.WAIT and "round trips of costs" in d.reasons[0]
    assert decide_by_rules(SYMBOL, [quiet, fibonacci(0.8)], params=RulesParams(min_edge=1.0)).action == Action.OPEN_LONG


def test_following_the_regime_enters_with_the_trend_whatever_the_consensus():
    d = decide_by_rules(SYMBOL, [technical(0.05, regime=0.6), fibonacci(0.0)],
                        params=RulesParams(follow_regime=True))
    assert d.action == Action.OPEN_LONG


def test_weak_consensus_waits():
    d = decide_by_rules(SYMBOL, [technical(0.15), fibonacci(0.1), agent(AgentName.GANN, 0.1)])
    assert d.action == Action.WAIT
    assert d.stop_loss is None and d.entry is None


def test_conflicting_agents_wait():
    insights = [technical(0.9), fibonacci(-0.9), agent(AgentName.GANN, 0.8), agent(AgentName.SENTIMENT, -0.9)]
    assert decide_by_rules(SYMBOL, insights).action == Action.WAIT


def test_weights_change_the_outcome():
    insights = [technical(0.8, 0.8), agent(AgentName.SENTIMENT, -0.8, 0.8)]
    assert decide_by_rules(SYMBOL, insights).action == Action.WAIT
    trust_charts = {AgentName.TECHNICAL: 1.0, AgentName.SENTIMENT: 0.1}
    assert decide_by_rules(SYMBOL, insights, weights=trust_charts).action == Action.OPEN_LONG
    trust_news = {AgentName.TECHNICAL: 0.1, AgentName.SENTIMENT: 1.0}
    unfiltered = RulesParams(regime_trend=None)  # the slowest timeframe trends up: the filter would refuse a short
    assert decide_by_rules(SYMBOL, insights, weights=trust_news, params=unfiltered).action == Action.OPEN_SHORT


def test_agents_left_out_of_the_weights_keep_their_defaults_and_zero_silences_one():
    insights = [technical(0.8, 0.8), agent(AgentName.SENTIMENT, -0.8, 0.8)]
    only_news_named = decide_by_rules(SYMBOL, insights, weights={AgentName.SENTIMENT: 0.25})
    assert only_news_named == decide_by_rules(SYMBOL, insights)
    assert decide_by_rules(SYMBOL, insights, weights={AgentName.SENTIMENT: 0.0}).action == Action.OPEN_LONG


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match="weight of technical"):
        RulesBrain({AgentName.TECHNICAL: -1.0})


def test_agent_with_zero_confidence_abstains_instead_of_diluting():
    with_silent_news = [technical(0.5, 0.8), agent(AgentName.SENTIMENT, 0.0, 0.0)]
    assert decide_by_rules(SYMBOL, with_silent_news).action == Action.OPEN_LONG


def test_shorts_can_be_disallowed():
    d = decide_by_rules(SYMBOL, bearish(), params=RulesParams(allow_short=False))
    assert d.action == Action.WAIT


def test_no_atr_means_no_trade():
    insights = [Insight(AgentName.TECHNICAL, SYMBOL, 0.9, 0.9, values={"close": PRICE}), fibonacci(0.8)]
    assert decide_by_rules(SYMBOL, insights).action == Action.WAIT


def test_open_long_with_bearish_reversal_closes():
    d = decide_by_rules(SYMBOL, bearish(), position=long_position())
    assert d.action == Action.CLOSE
    assert any("against" in r for r in d.reasons)


def test_open_long_with_bullish_or_mild_consensus_holds():
    assert decide_by_rules(SYMBOL, bullish(), position=long_position()).action == Action.HOLD
    mild = [technical(-0.1, regime=0.3), fibonacci(0.05)]
    d = decide_by_rules(SYMBOL, mild, position=long_position())
    assert d.action == Action.HOLD
    assert d.stop_loss == 95.0 and d.take_profit == 110.0


def test_open_short_with_bullish_reversal_closes():
    short = OpenPosition(SYMBOL, PositionSide.SHORT, 102.0, 1.0, 0, stop_loss=105.0, take_profit=95.0)
    assert decide_by_rules(SYMBOL, bullish(), position=short).action == Action.CLOSE
    assert decide_by_rules(SYMBOL, bearish(), position=short).action == Action.HOLD


FIVE_MIN = 300_000


def test_positions_agent_time_stop_closes():
    # held 100 five-minute bars, still at the entry price: the position manager calls a time stop
    position = OpenPosition(SYMBOL, PositionSide.LONG, PRICE, 1.0, opened_at=0, stop_loss=96.0)
    managed = positions_insight(SYMBOL, [position], price=PRICE, atr=ATR, now_ms=100 * FIVE_MIN, bar_ms=FIVE_MIN)
    d = decide_by_rules(SYMBOL, [*bullish(), managed], position=position)
    assert d.action == Action.CLOSE
    assert "time stop" in d.reasons[0]


def test_price_through_the_stop_closes():
    d = decide_by_rules(SYMBOL, bullish(), position=long_position(stop=101.0))
    assert d.action == Action.CLOSE


def test_hold_moves_the_stop_to_the_trailing_stop_once_the_trade_has_run():
    # entered at 90 with a 4-point risk, now at 100: 2.5 R up, trailing stop 2.5 ATR under the best price
    position = OpenPosition(SYMBOL, PositionSide.LONG, 90.0, 1.0, opened_at=0, stop_loss=86.0)
    managed = positions_insight(SYMBOL, [position], price=PRICE, atr=ATR, now_ms=10 * FIVE_MIN, bar_ms=FIVE_MIN)
    d = decide_by_rules(SYMBOL, [*bullish(), managed], position=position)
    assert d.action == Action.HOLD
    assert d.stop_loss == PRICE - 2.5 * ATR


def test_hold_keeps_the_stop_of_a_young_trade_and_never_loosens_it():
    young = Insight(
        AgentName.POSITIONS,
        SYMBOL,
        0.1,
        0.4,
        levels=(Level("trailing_stop", 99.0), Level("break_even", 98.1)),
        values={"r_multiple": 0.5},
    )
    assert decide_by_rules(SYMBOL, [*bullish(), young], position=long_position()).stop_loss == 95.0
    looser = Insight(
        AgentName.POSITIONS, SYMBOL, 0.4, 0.6, levels=(Level("trailing_stop", 90.0),), values={"r_multiple": 3.0}
    )
    assert decide_by_rules(SYMBOL, [*bullish(), looser], position=long_position()).stop_loss == 95.0


def test_decisions_are_deterministic():
    brain = RulesBrain({AgentName.TECHNICAL: 0.5, AgentName.FIBONACCI: 0.5})
    first = brain.decide(SYMBOL, bullish())
    for _ in range(5):
        assert brain.decide(SYMBOL, bullish()) == first
        assert brain.decide(SYMBOL, list(reversed(bullish()))).action == first.action


def test_default_weights_cover_every_agent():
    assert set(DEFAULT_WEIGHTS) == set(AgentName)


def test_the_brain_weighs_by_the_one_table_of_default_weights_the_api_shows():
    from tenants.bot_limits import DEFAULT_AGENT_WEIGHTS

    assert {a.value: w for a, w in DEFAULT_WEIGHTS.items()} == DEFAULT_AGENT_WEIGHTS


def test_without_headlines_the_others_share_the_weight_as_in_a_live_cycle_without_news():
    # what a backtest (which passes no headlines) and a live cycle without news both give the brain
    silent = Insight(AgentName.SENTIMENT, SYMBOL, 0.0, 0.0)
    with_silence = decide_by_rules(SYMBOL, [technical(0.5), fibonacci(0.5), agent(AgentName.GANN, 0.5), silent])
    assert with_silence.reasons[0].startswith("consensus +0.")  # 0.5 x confidences, over 0.75 of weight
    expected = (0.40 * 0.9 * 0.5 + 0.20 * 0.8 * 0.5 + 0.15 * 0.8 * 0.5) / 0.75
    assert f"consensus {expected:+.3f}" in " ".join(with_silence.reasons)
