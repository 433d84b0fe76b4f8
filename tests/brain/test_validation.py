"""Fitting the model's proposal to the bot: rejected when untrustworthy, repaired when only out of bounds."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.brain.builders import OTHER_SYMBOL, PRICE, SYMBOL, answer
from workers.agents.insight import OpenPosition, PositionSide
from workers.brain.decision import Action
from workers.brain.validation import BotConstraints, GptProposal, IssueKind, IssueOutcome, Validated, validate_proposal

CONSTRAINTS = BotConstraints(symbols=(SYMBOL, OTHER_SYMBOL), allow_short=True, max_leverage=3.0, entry_band_pct=1.0)
LONG_POSITION = OpenPosition(SYMBOL, PositionSide.LONG, 95.0, 2.0, 0, stop_loss=92.0, take_profit=110.0)


def check(position: OpenPosition | None = None, constraints: BotConstraints = CONSTRAINTS, **fields: Any) -> Validated:
    proposal = msgspec.convert(answer(**fields), GptProposal)
    return validate_proposal(proposal, constraints, SYMBOL, PRICE, position)


def issues(result: Validated) -> list[tuple[IssueKind, IssueOutcome]]:
    return [(i.kind, i.outcome) for i in result.issues]


def test_sound_proposal_passes_unchanged() -> None:
    result = check()
    assert result.decision is not None and not result.issues
    assert (result.decision.entry, result.decision.stop_loss, result.decision.take_profit) == (PRICE, 96.0, 108.0)


def test_unknown_symbol_is_rejected() -> None:
    assert issues(check(symbol="DOGE/USDT")) == [(IssueKind.SYMBOL, IssueOutcome.REJECTED)]


def test_short_on_a_long_only_bot_is_rejected() -> None:
    long_only = msgspec.structs.replace(CONSTRAINTS, allow_short=False)
    result = check(constraints=long_only, action="OPEN_SHORT", stop_loss=104.0, take_profit=92.0)
    assert result.rejected and issues(result) == [(IssueKind.SIDE, IssueOutcome.REJECTED)]


def test_leverage_above_the_cap_is_clamped() -> None:
    result = check(leverage=50)
    assert result.decision is not None and result.decision.leverage == 3.0
    assert issues(result) == [(IssueKind.LEVERAGE, IssueOutcome.REPAIRED)]


def test_stop_above_a_long_entry_is_rejected() -> None:
    assert issues(check(stop_loss=101.0)) == [(IssueKind.STOP_LOSS, IssueOutcome.REJECTED)]


def test_take_profit_below_a_long_entry_is_rejected() -> None:
    assert issues(check(take_profit=99.0)) == [(IssueKind.TAKE_PROFIT, IssueOutcome.REJECTED)]


def test_entry_far_from_the_price_is_rejected() -> None:
    assert issues(check(entry=90.0, stop_loss=85.0)) == [(IssueKind.ENTRY, IssueOutcome.REJECTED)]


def test_missing_entry_becomes_the_current_price() -> None:
    result = check(entry=None)
    assert result.decision is not None and result.decision.entry == PRICE
    assert issues(result) == [(IssueKind.ENTRY, IssueOutcome.REPAIRED)]


def test_close_without_a_position_becomes_wait() -> None:
    result = check(action="CLOSE", entry=None, stop_loss=None, take_profit=None)
    assert result.decision is not None and result.decision.action == Action.WAIT


def test_opening_while_in_a_position_is_rejected() -> None:
    assert issues(check(position=LONG_POSITION)) == [(IssueKind.ACTION, IssueOutcome.REJECTED)]


def test_hold_cannot_move_the_stop_through_the_price() -> None:
    result = check(position=LONG_POSITION, action="HOLD", entry=None, stop_loss=101.0, take_profit=None)
    assert result.decision is not None
    assert result.decision.action == Action.HOLD and result.decision.stop_loss == 92.0
    assert issues(result) == [(IssueKind.STOP_LOSS, IssueOutcome.REPAIRED)]


def test_confidence_outside_zero_to_one_is_clamped() -> None:
    result = check(confidence=7)
    assert result.decision is not None and result.decision.confidence == 1.0
