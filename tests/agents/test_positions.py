"""Position manager: PnL, break-even, trailing and time stops, and the direction of what it recommends."""

from __future__ import annotations

import pytest

from workers.agents.insight import AgentName, OpenPosition, PositionSide
from workers.agents.positions import PositionRules, positions_insight

HOUR = 3_600_000
OPENED = 1_700_000_000_000


def long(entry=100.0, amount=1.0, stop=None, target=None, symbol="BTC/USDT"):
    return OpenPosition(symbol, PositionSide.LONG, entry, amount, OPENED, stop_loss=stop, take_profit=target)


def short(entry=100.0, amount=1.0, stop=None, target=None, symbol="BTC/USDT"):
    return OpenPosition(symbol, PositionSide.SHORT, entry, amount, OPENED, stop_loss=stop, take_profit=target)


def manage(positions, price, atr=2.0, bars=5, best=None, rules=PositionRules()):
    return positions_insight(
        "BTC/USDT", positions, price, atr, now_ms=OPENED + bars * HOUR, bar_ms=HOUR, best_price=best, rules=rules
    )


def levels_of(insight) -> dict[str, float]:
    return {lv.name: lv.price for lv in insight.levels}


def test_unrealised_pnl_of_long_and_short():
    up = manage([long(entry=100, amount=2, stop=95)], price=110)
    assert up.values["unrealised_pnl"] == pytest.approx(20.0)
    assert up.values["unrealised_pnl_pct"] == pytest.approx(0.10)
    assert up.values["r_multiple"] == pytest.approx(2.0)  # risk 5, gain 10
    down = manage([short(entry=100, amount=1, stop=105)], price=90)
    assert down.values["unrealised_pnl"] == pytest.approx(10.0)
    assert down.values["r_multiple"] == pytest.approx(2.0)
    assert up.agent is AgentName.POSITIONS


def test_one_r_in_profit_suggests_moving_the_stop_to_break_even():
    insight = manage([long(entry=100, stop=95)], price=106, atr=2.0)
    levels = levels_of(insight)
    assert levels["break_even"] == pytest.approx(100.1)  # entry plus 0.1% for fees
    assert any("break-even" in r for r in insight.reasons)
    assert insight.score > 0  # keep the long


def test_winner_past_one_and_a_half_r_gets_a_trailing_stop_behind_the_best_price():
    insight = manage([long(entry=100, stop=95)], price=110, atr=2.0, best=112)
    levels = levels_of(insight)
    assert levels["trailing_stop"] == pytest.approx(112 - 2.5 * 2.0)
    assert any("trailing stop" in r for r in insight.reasons)
    assert insight.score > 0


def test_short_trailing_stop_hangs_above_the_lowest_price():
    insight = manage([short(entry=100, stop=105)], price=90, atr=2.0, best=88)
    assert levels_of(insight)["trailing_stop"] == pytest.approx(88 + 5.0)
    assert levels_of(insight)["break_even"] == pytest.approx(99.9)
    assert insight.score < 0  # keep the short: the recommended trade is on the sell side


def test_no_stop_suggestion_that_loosens_the_existing_stop():
    # The stop already sits at 108, above both the trailing stop (105) and break-even (100.1).
    insight = manage([long(entry=100, stop=108)], price=110, atr=2.0)
    assert not any("move the stop" in r for r in insight.reasons)


def test_price_through_the_stop_asks_to_close_with_full_confidence():
    out_long = manage([long(entry=100, stop=95)], price=94)
    out_short = manage([short(entry=100, stop=105)], price=106)
    assert out_long.score == -1.0 and out_long.confidence == 1.0
    assert out_short.score == 1.0 and out_short.confidence == 1.0
    assert any("stop-loss" in r for r in out_long.reasons)


def test_take_profit_reached_asks_to_take_it():
    insight = manage([long(entry=100, stop=95, target=110)], price=111)
    assert insight.score < -0.5
    assert levels_of(insight)["take_profit"] == 110


def test_time_stop_after_many_bars_going_nowhere():
    stale = manage([long(entry=100, stop=95)], price=100.5, bars=200)
    fresh = manage([long(entry=100, stop=95)], price=100.5, bars=10)
    assert stale.values["bars_held"] == 200
    assert any("time stop" in r for r in stale.reasons)
    assert stale.score < 0 < fresh.score  # the stale long is asked to sell; the fresh one is kept
    assert not any("time stop" in r for r in fresh.reasons)


def test_positions_of_one_side_are_merged_at_their_weighted_entry():
    insight = manage([long(entry=100, amount=1, stop=90), long(entry=110, amount=3, stop=95)], price=120)
    assert insight.values["entry_price"] == pytest.approx(107.5)
    assert insight.values["amount"] == pytest.approx(4.0)
    assert levels_of(insight)["stop_loss"] == 95  # the tighter stop


def test_other_symbols_positions_are_ignored():
    assert manage([long(symbol="ETH/USDT")], price=100) is None
    assert manage([], price=100) is None


def test_missing_atr_falls_back_to_one_percent_of_price():
    insight = manage([long(entry=100, stop=95)], price=101, atr=float("nan"))
    assert insight.values["atr"] == pytest.approx(1.01)
    assert any("ATR unavailable" in r for r in insight.reasons)


def test_without_a_stop_the_risk_unit_is_two_atr_and_the_gap_is_flagged():
    insight = manage([long(entry=100)], price=104, atr=2.0)
    assert insight.values["r_multiple"] == pytest.approx(1.0)
    assert any("no stop-loss" in r for r in insight.reasons)
    assert insight.confidence <= 0.5
