"""Fit the GPT brain's proposal to the bot: whatever the model says, the decision stays within config.

Pure (no I/O). A proposal that cannot be trusted — another symbol, a side the bot may not take, a
stop or target on the wrong side, an entry far from the price, an open while already in a position
— is rejected and the rules brain decides. A proposal that is only out of bounds — leverage above
the cap, confidence outside [0, 1], a missing entry, WAIT while holding — is repaired. Every
rejection and repair is returned as a `ValidationIssue`.
"""

from __future__ import annotations

import enum
import math
from typing import Annotated

import msgspec

from workers.agents.insight import OpenPosition, PositionSide
from workers.brain.decision import Action, Decision

MAX_REASONS = 8
MAX_REASON_CHARS = 300


class GptProposal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The model's answer; its JSON schema (made OpenAI-strict) is the response format."""

    action: Annotated[Action, msgspec.Meta(description="one of the bot's allowed actions")]
    symbol: Annotated[str, msgspec.Meta(description="the symbol decided for; one of the bot's symbols")]
    entry: Annotated[float | None, msgspec.Meta(description="entry price for OPEN_*, else null")]
    stop_loss: Annotated[float | None, msgspec.Meta(description="below entry for a long, above for a short")]
    take_profit: Annotated[float | None, msgspec.Meta(description="above entry for a long, below for a short")]
    leverage: Annotated[float, msgspec.Meta(description="1 for none; at most the bot's max_leverage")]
    confidence: Annotated[float, msgspec.Meta(description="from 0 to 1")]
    reasons: Annotated[list[str], msgspec.Meta(description="short phrases naming the evidence")]


class BotConstraints(msgspec.Struct, frozen=True, kw_only=True):
    """What a bot may do, as the model is told and as its answer is checked."""

    symbols: tuple[str, ...]
    allow_short: bool = True
    max_leverage: float = 1.0
    entry_band_pct: float = 1.0  # an OPEN's entry must lie within this % of the current price


def allowed_actions(constraints: BotConstraints) -> list[Action]:
    return [a for a in Action if constraints.allow_short or a != Action.OPEN_SHORT]


class IssueOutcome(enum.StrEnum):
    REJECTED = "rejected"
    REPAIRED = "repaired"


class IssueKind(enum.StrEnum):
    SYMBOL = "symbol"
    SIDE = "side"
    ACTION = "action"
    LEVERAGE = "leverage"
    CONFIDENCE = "confidence"
    ENTRY = "entry"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class ValidationIssue(msgspec.Struct, frozen=True):
    kind: IssueKind
    outcome: IssueOutcome
    detail: str


class Validated(msgspec.Struct, frozen=True):
    """The decision to hand to the risk guard, or None when the proposal was rejected."""

    decision: Decision | None
    issues: tuple[ValidationIssue, ...]

    @property
    def rejected(self) -> bool:
        return self.decision is None


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def validate_proposal(
    proposal: GptProposal,
    constraints: BotConstraints,
    symbol: str,
    price: float | None,
    position: OpenPosition | None = None,
) -> Validated:
    """Check `proposal` for `symbol` against `constraints`; reject it or repair it, saying why."""
    issues: list[ValidationIssue] = []

    def reject(kind: IssueKind, detail: str) -> Validated:
        issues.append(ValidationIssue(kind, IssueOutcome.REJECTED, detail))
        return Validated(None, tuple(issues))

    def repair(kind: IssueKind, detail: str) -> None:
        issues.append(ValidationIssue(kind, IssueOutcome.REPAIRED, detail))

    if proposal.symbol not in constraints.symbols:
        return reject(IssueKind.SYMBOL, f"{proposal.symbol!r} is not one of the bot's symbols")
    if proposal.symbol != symbol:
        return reject(IssueKind.SYMBOL, f"asked about {symbol}, answered for {proposal.symbol}")

    action = proposal.action
    held = position if position is not None and position.symbol == symbol else None
    if action == Action.OPEN_SHORT and not constraints.allow_short:
        return reject(IssueKind.SIDE, "the bot does not allow shorts")
    if held is not None and action in (Action.OPEN_LONG, Action.OPEN_SHORT):
        return reject(IssueKind.ACTION, f"{action.value} while a {held.side.value} position is open")
    if held is None and action in (Action.HOLD, Action.CLOSE):
        repair(IssueKind.ACTION, f"{action.value} without an open position; WAIT instead")
        action = Action.WAIT
    if held is not None and action == Action.WAIT:
        repair(IssueKind.ACTION, "WAIT while a position is open; HOLD instead")
        action = Action.HOLD

    leverage = proposal.leverage
    if not math.isfinite(leverage) or leverage < 1:
        repair(IssueKind.LEVERAGE, f"leverage {leverage:g} set to 1")
        leverage = 1.0
    if leverage > constraints.max_leverage:
        repair(IssueKind.LEVERAGE, f"leverage {leverage:g} clamped to the cap {constraints.max_leverage:g}")
        leverage = constraints.max_leverage

    confidence = proposal.confidence
    if not math.isfinite(confidence):
        return reject(IssueKind.CONFIDENCE, "confidence is not a number")
    if not 0.0 <= confidence <= 1.0:
        repair(IssueKind.CONFIDENCE, f"confidence {confidence:g} clamped to [0, 1]")
        confidence = min(1.0, max(0.0, confidence))

    reasons = tuple(r[:MAX_REASON_CHARS] for r in proposal.reasons[:MAX_REASONS])
    entry, stop, target = proposal.entry, proposal.stop_loss, proposal.take_profit

    if action in (Action.OPEN_LONG, Action.OPEN_SHORT):
        long = action == Action.OPEN_LONG
        if not _finite(price) or price <= 0:
            return reject(IssueKind.ENTRY, "no current price to check the entry against")
        if entry is None:
            repair(IssueKind.ENTRY, f"no entry given; the current price {price:.8g}")
            entry = price
        if not _finite(entry) or entry <= 0:
            return reject(IssueKind.ENTRY, f"entry {entry!r} is not a positive price")
        band = constraints.entry_band_pct / 100 * price
        if abs(entry - price) > band:
            return reject(
                IssueKind.ENTRY,
                f"entry {entry:.8g} is more than {constraints.entry_band_pct:g}% from the price {price:.8g}",
            )
        if not _finite(stop) or stop <= 0:
            return reject(IssueKind.STOP_LOSS, "an open needs a stop-loss")
        if (stop >= entry) if long else (stop <= entry):
            side = "below" if long else "above"
            return reject(IssueKind.STOP_LOSS, f"stop {stop:.8g} must be {side} the entry {entry:.8g}")
        wrong_target = target is not None and (
            not _finite(target) or target <= 0 or ((target <= entry) if long else (target >= entry))
        )
        if wrong_target:
            side = "above" if long else "below"
            return reject(IssueKind.TAKE_PROFIT, f"take-profit {target!r} must be {side} the entry {entry:.8g}")
        return Validated(
            Decision(action, symbol, confidence, entry, stop, target, leverage, reasons=reasons), tuple(issues)
        )

    if action == Action.HOLD and held is not None:
        # The model may move the stop or target of the held position, but only to the right side of the price.
        long = held.side == PositionSide.LONG
        known = _finite(price)
        if stop is not None and known and (not _finite(stop) or ((stop >= price) if long else (stop <= price))):
            repair(IssueKind.STOP_LOSS, f"stop {stop!r} on the wrong side of the price; the position's stop kept")
            stop = held.stop_loss
        if target is not None and known and (not _finite(target) or ((target <= price) if long else (target >= price))):
            repair(IssueKind.TAKE_PROFIT, f"take-profit {target!r} on the wrong side; the position's kept")
            target = held.take_profit
        return Validated(
            Decision(
                Action.HOLD,
                symbol,
                confidence,
                held.entry_price,
                stop if stop is not None else held.stop_loss,
                target if target is not None else held.take_profit,
                leverage,
                reasons=reasons,
            ),
            tuple(issues),
        )

    # WAIT or CLOSE: no prices of the model's are used.
    close_at = price if action == Action.CLOSE else None
    return Validated(Decision(action, symbol, confidence, entry=close_at, reasons=reasons), tuple(issues))
