"""The risk guard on crafted decisions: clamps and vetoes, each with its reason."""

from __future__ import annotations

import pytest

from workers.brain.decision import Action, Decision
from workers.brain.risk import (
    AccountState,
    AdjustmentKind,
    Guarded,
    RiskConfig,
    RiskRule,
    guard,
)
from workers.exchanges.base import MarketRules

SYMBOL = "ETH/USDT"
CONFIG = RiskConfig(max_leverage=3.0, risk_per_trade_pct=1.0, max_open_positions=2, daily_loss_limit_pct=3.0)
ACCOUNT = AccountState(equity=10_000.0, open_positions=0, pnl_today=0.0)


def long(**fields: object) -> Decision:
    base: dict[str, object] = {"entry": 100.0, "stop_loss": 96.0, "take_profit": 108.0, "leverage": 1.0}
    base.update(fields)
    return Decision(Action.OPEN_LONG, SYMBOL, 0.7, **base)  # type: ignore[arg-type]


def short(**fields: object) -> Decision:
    base: dict[str, object] = {"entry": 100.0, "stop_loss": 104.0, "take_profit": 92.0, "leverage": 1.0}
    base.update(fields)
    return Decision(Action.OPEN_SHORT, SYMBOL, 0.7, **base)  # type: ignore[arg-type]


def rules_for(**rules: float) -> MarketRules:
    """The exchange's rules for SYMBOL; those not given are absent (None)."""
    absent = {"min_amount": None, "amount_step": None, "price_tick": None, "min_notional": None}
    return MarketRules(symbol=SYMBOL, **{**absent, **rules})


def rules(result: Guarded, kind: AdjustmentKind) -> list[RiskRule]:
    return [a.rule for a in result.adjustments if a.kind == kind]


def test_size_risks_the_configured_share_of_equity_over_the_stop_distance() -> None:
    result = guard(long(), CONFIG, ACCOUNT)
    assert result.decision.action == Action.OPEN_LONG
    assert result.decision.size == pytest.approx(25.0)  # 100 risked / 4.0 stop distance
    assert rules(result, AdjustmentKind.SIZED) == [RiskRule.RISK_PER_TRADE]
    assert not result.vetoed


def test_oversized_leverage_is_clamped_to_the_cap() -> None:
    result = guard(long(leverage=100.0), CONFIG, ACCOUNT)
    assert result.decision.leverage == 3.0
    assert RiskRule.LEVERAGE_CAP in rules(result, AdjustmentKind.CLAMP)


def test_size_is_capped_by_equity_times_leverage() -> None:
    # A stop 0.1 away would risk-size 1,000 units (100,000 notional); 1x leverage allows 100 units.
    result = guard(long(stop_loss=99.9), CONFIG, ACCOUNT)
    assert result.decision.size == pytest.approx(100.0)
    assert RiskRule.NOTIONAL_CAP in rules(result, AdjustmentKind.CLAMP)


def test_stop_on_the_wrong_side_of_a_long_is_vetoed() -> None:
    result = guard(long(stop_loss=101.0), CONFIG, ACCOUNT)
    assert result.decision.action == Action.WAIT
    assert result.decision.size is None
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.STOP_LOSS_SIDE]
    assert "vetoed OPEN_LONG" in result.decision.reasons[-1]


def test_stop_on_the_wrong_side_of_a_short_is_vetoed() -> None:
    result = guard(short(stop_loss=99.0), CONFIG, ACCOUNT)
    assert result.decision.action == Action.WAIT
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.STOP_LOSS_SIDE]


def test_open_without_a_stop_is_vetoed() -> None:
    result = guard(long(stop_loss=None), CONFIG, ACCOUNT)
    assert result.decision.action == Action.WAIT
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.STOP_LOSS_REQUIRED]


def test_take_profit_on_the_wrong_side_is_dropped() -> None:
    result = guard(long(take_profit=90.0), CONFIG, ACCOUNT)
    assert result.decision.action == Action.OPEN_LONG
    assert result.decision.take_profit is None
    assert RiskRule.TAKE_PROFIT_SIDE in rules(result, AdjustmentKind.CLAMP)


def test_too_many_open_positions_vetoes_opening() -> None:
    account = AccountState(equity=10_000.0, open_positions=2)
    result = guard(long(), CONFIG, account)
    assert result.decision.action == Action.WAIT
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.MAX_OPEN_POSITIONS]


def test_daily_loss_limit_pauses_opening_but_still_allows_closing() -> None:
    # Started the day at 10,000, now 9,650: a 3.5% loss against a 3% limit.
    account = AccountState(equity=9_650.0, open_positions=1, pnl_today=-350.0)
    opened = guard(long(), CONFIG, account)
    assert opened.decision.action == Action.WAIT
    assert rules(opened, AdjustmentKind.VETO) == [RiskRule.DAILY_LOSS_LIMIT]
    assert "3.50%" in opened.adjustments[0].detail

    closing = Decision(Action.CLOSE, SYMBOL, 0.9, entry=100.0)
    closed = guard(closing, CONFIG, account)
    assert closed.decision == closing and not closed.adjustments

    holding = Decision(Action.HOLD, SYMBOL, 0.5, entry=95.0, stop_loss=97.0)
    assert guard(holding, CONFIG, account).decision.action == Action.HOLD


def test_loss_just_under_the_limit_still_opens() -> None:
    account = AccountState(equity=9_710.0, pnl_today=-290.0)  # 2.9%
    assert guard(long(), CONFIG, account).decision.action == Action.OPEN_LONG


def test_shorts_are_vetoed_when_the_bot_is_long_only() -> None:
    config = RiskConfig(allow_short=False)
    result = guard(short(), config, ACCOUNT)
    assert result.decision.action == Action.WAIT
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.SHORTS_DISALLOWED]


def test_size_rounds_down_to_the_amount_step_and_prices_to_the_tick() -> None:
    market = rules_for(amount_step=0.01, price_tick=0.05, min_amount=0.01, min_notional=5.0)
    result = guard(long(entry=100.02, stop_loss=96.97, take_profit=108.03), CONFIG, ACCOUNT, market)
    d = result.decision
    assert d.entry == pytest.approx(100.0)
    assert d.stop_loss == pytest.approx(96.95)  # a long's stop rounds down: the risk is never understated
    assert d.take_profit == pytest.approx(108.05)
    # 100 / (100.00 - 96.95) = 32.786..., rounded down to the 0.01 step.
    assert d.size == pytest.approx(32.78)
    assert d.size * (d.entry - d.stop_loss) <= 100.0
    assert {RiskRule.PRICE_TICK, RiskRule.AMOUNT_STEP} <= set(rules(result, AdjustmentKind.CLAMP))


def test_short_stop_rounds_up_to_the_tick() -> None:
    market = rules_for(price_tick=0.5)
    result = guard(short(stop_loss=104.2), CONFIG, ACCOUNT, market)
    assert result.decision.stop_loss == 104.5


def test_size_below_the_minimum_notional_is_vetoed() -> None:
    small = AccountState(equity=50.0)
    market = rules_for(amount_step=0.001, min_notional=10.0)
    # 0.5 risked over a 4.0 stop: 0.125 units, a notional of 12.5 ≥ 10 — allowed.
    assert guard(long(), CONFIG, small, market).decision.action == Action.OPEN_LONG
    # Over a 40.0 stop: 0.0125 → 0.012 units, a notional of 1.2 < 10 — vetoed.
    result = guard(long(stop_loss=60.0), CONFIG, small, market)
    assert result.decision.action == Action.WAIT
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.MIN_NOTIONAL]


def test_size_rounded_to_zero_is_vetoed_as_below_the_minimum_amount() -> None:
    market = rules_for(amount_step=1.0, min_amount=1.0)
    result = guard(long(), CONFIG, AccountState(equity=100.0), market)  # 0.25 units → 0
    assert result.decision.action == Action.WAIT
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.MIN_AMOUNT]


def test_open_without_an_entry_uses_the_current_price() -> None:
    result = guard(long(entry=None), CONFIG, ACCOUNT, price=100.0)
    assert result.decision.entry == 100.0 and result.decision.size == pytest.approx(25.0)


def test_no_equity_vetoes_opening() -> None:
    result = guard(long(), CONFIG, AccountState(equity=0.0))
    assert rules(result, AdjustmentKind.VETO) == [RiskRule.NO_EQUITY]


def test_wait_passes_unchanged() -> None:
    wait = Decision(Action.WAIT, SYMBOL, 0.0)
    assert guard(wait, CONFIG, ACCOUNT) == Guarded(wait, ())


def test_leverage_is_also_capped_by_the_exchange_maximum() -> None:
    market = rules_for(max_leverage=2.0)
    result = guard(long(leverage=3.0), CONFIG, ACCOUNT, market)
    assert result.decision.leverage == 2.0
    assert RiskRule.LEVERAGE_CAP in rules(result, AdjustmentKind.CLAMP)
