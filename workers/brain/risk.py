"""The risk guard: the last word on every decision, whichever brain made it. Pure: no I/O, no clock.

For an OPEN_LONG / OPEN_SHORT, in this order (the first veto turns the decision into WAIT):
1. Kill switch: today's loss (realised + unrealised) at or beyond `daily_loss_limit_pct` of the
   day's starting equity vetoes opening. CLOSE and HOLD always pass: a paused bot can still get out.
2. Shorts the bot does not allow, and `max_open_positions` already reached, veto opening.
3. Entry: the decision's, else the current price. A stop-loss is required and must lie on the losing
   side of the entry; a take-profit on the wrong side is dropped.
4. Leverage is clamped to [1, the bot's `max_leverage`], and to the exchange's maximum when known.
5. Prices are rounded to the price tick (the stop away from the entry, so the risk is never understated).
6. Size = equity x `risk_per_trade_pct` / stop distance, capped by equity x leverage / entry (less the
   `cost_reserve_pct` kept for fees and slippage), rounded
   DOWN to the amount step; vetoed when below the minimum amount or the minimum notional.
Every clamp and veto comes back as an `Adjustment` with its reason.
"""

from __future__ import annotations

import enum
import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import msgspec

from workers.brain.decision import Action, Decision
from workers.exchanges.base import MarketRules

OPENING = (Action.OPEN_LONG, Action.OPEN_SHORT)


# Kept back from the notional cap for the taker fee and slippage of the fill (about 0.1% + 0.05% on
# most venues and on paper), with room to spare, so a position sized to the cap does not bounce.
# Live cycles and backtests use it alike.
COST_RESERVE_PCT = 1.0


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A bot's hard limits."""

    max_leverage: float = 1.0  # 1 = spot: the notional never exceeds the equity
    risk_per_trade_pct: float = 1.0  # equity lost if the stop is hit
    max_open_positions: int = 1
    daily_loss_limit_pct: float = 3.0  # 0 disables the kill switch
    allow_short: bool = True
    # Part of the notional cap kept back for the fee and slippage of the fill, so a position sized to the
    # cap still fits the margin the exchange will ask for.
    cost_reserve_pct: float = 0.0


class AccountState(msgspec.Struct, frozen=True, kw_only=True):
    """The account as of this decision, in quote currency."""

    equity: float
    open_positions: int = 0
    pnl_today: float = 0.0  # realised + unrealised since 00:00 UTC; negative is a loss


class RiskRule(enum.StrEnum):
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    SHORTS_DISALLOWED = "shorts_disallowed"
    MAX_OPEN_POSITIONS = "max_open_positions"
    NO_PRICE = "no_price"
    NO_EQUITY = "no_equity"
    STOP_LOSS_REQUIRED = "stop_loss_required"
    STOP_LOSS_SIDE = "stop_loss_side"
    TAKE_PROFIT_SIDE = "take_profit_side"
    LEVERAGE_CAP = "leverage_cap"
    PRICE_TICK = "price_tick"
    RISK_PER_TRADE = "risk_per_trade"
    NOTIONAL_CAP = "notional_cap"
    AMOUNT_STEP = "amount_step"
    MIN_AMOUNT = "min_amount"
    MIN_NOTIONAL = "min_notional"


class AdjustmentKind(enum.StrEnum):
    CLAMP = "clamp"  # the decision was changed to fit
    VETO = "veto"  # the decision was refused
    SIZED = "sized"  # the guard set the position size


class Adjustment(msgspec.Struct, frozen=True):
    kind: AdjustmentKind
    rule: RiskRule
    detail: str


class Guarded(msgspec.Struct, frozen=True):
    """The final decision and every change the guard made to get there."""

    decision: Decision
    adjustments: tuple[Adjustment, ...]

    @property
    def vetoed(self) -> bool:
        return any(a.kind == AdjustmentKind.VETO for a in self.adjustments)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _to_step(value: float, step: float, rounding: str) -> float:
    if step <= 0:
        return value
    d_step = Decimal(repr(step))
    return float((Decimal(repr(value)) / d_step).to_integral_value(rounding=rounding) * d_step)


def daily_loss_pct(account: AccountState) -> float:
    """Today's loss as a percentage of the day's starting equity (0 when in profit)."""
    start = account.equity - account.pnl_today
    if account.pnl_today >= 0:
        return 0.0
    return math.inf if start <= 0 else -account.pnl_today / start * 100


def guard(
    decision: Decision,
    config: RiskConfig,
    account: AccountState,
    market: MarketRules | None = None,
    price: float | None = None,
) -> Guarded:
    """Apply `config`, the account and the exchange's rules for the market (if known) to `decision`."""
    adjustments: list[Adjustment] = []
    tick = (market.price_tick if market else None) or 0.0
    amount_step = (market.amount_step if market else None) or 0.0
    min_amount = (market.min_amount if market else None) or 0.0
    min_notional = (market.min_notional if market else None) or 0.0
    exchange_max_leverage = (market.max_leverage if market else None) or math.inf

    def clamp(rule: RiskRule, detail: str) -> None:
        adjustments.append(Adjustment(AdjustmentKind.CLAMP, rule, detail))

    def veto(rule: RiskRule, detail: str) -> Guarded:
        adjustments.append(Adjustment(AdjustmentKind.VETO, rule, detail))
        reasons = (*decision.reasons, f"risk guard vetoed {decision.action.value}: {detail}")
        wait = Decision(Action.WAIT, decision.symbol, confidence=0.0, reasons=reasons)
        return Guarded(wait, tuple(adjustments))

    if decision.action == Action.HOLD:
        if _finite(decision.stop_loss) and tick > 0:
            stop = _to_step(decision.stop_loss, tick, ROUND_HALF_EVEN)
            if stop != decision.stop_loss:
                clamp(RiskRule.PRICE_TICK, f"stop {decision.stop_loss:.10g} → {stop:.10g} (tick {tick:g})")
                decision = msgspec.structs.replace(decision, stop_loss=stop)
        return Guarded(decision, tuple(adjustments))
    if decision.action not in OPENING:
        return Guarded(decision, tuple(adjustments))

    long = decision.action == Action.OPEN_LONG
    lost = daily_loss_pct(account)
    if config.daily_loss_limit_pct > 0 and lost >= config.daily_loss_limit_pct:
        return veto(
            RiskRule.DAILY_LOSS_LIMIT,
            f"today's loss {lost:.2f}% reached the daily limit {config.daily_loss_limit_pct:g}%; opening paused",
        )
    if not long and not config.allow_short:
        return veto(RiskRule.SHORTS_DISALLOWED, "the bot does not allow shorts")
    if account.open_positions >= config.max_open_positions:
        return veto(
            RiskRule.MAX_OPEN_POSITIONS,
            f"{account.open_positions} position(s) open, the limit is {config.max_open_positions}",
        )
    if not _finite(account.equity) or account.equity <= 0:
        return veto(RiskRule.NO_EQUITY, f"equity {account.equity:g} leaves nothing to risk")

    entry = decision.entry if _finite(decision.entry) and decision.entry > 0 else price
    if not _finite(entry) or entry <= 0:
        return veto(RiskRule.NO_PRICE, "no entry and no current price")
    stop = decision.stop_loss
    if not _finite(stop) or stop <= 0:
        return veto(RiskRule.STOP_LOSS_REQUIRED, "an open needs a stop-loss")
    if (stop >= entry) if long else (stop <= entry):
        side = "below" if long else "above"
        return veto(RiskRule.STOP_LOSS_SIDE, f"stop {stop:.10g} must be {side} the entry {entry:.10g}")
    target = decision.take_profit
    if target is not None and (not _finite(target) or ((target <= entry) if long else (target >= entry))):
        clamp(RiskRule.TAKE_PROFIT_SIDE, f"take-profit {target!r} on the wrong side of the entry; dropped")
        target = None

    leverage = decision.leverage if _finite(decision.leverage) else 1.0
    cap = max(min(config.max_leverage, exchange_max_leverage), 1.0)
    capped = min(max(leverage, 1.0), cap)
    if capped != decision.leverage:
        clamp(RiskRule.LEVERAGE_CAP, f"leverage {decision.leverage:g} → {capped:g} (cap {cap:g})")
    leverage = capped

    if tick > 0:
        rounded_entry = _to_step(entry, tick, ROUND_HALF_EVEN)
        rounded_stop = _to_step(stop, tick, ROUND_FLOOR if long else ROUND_CEILING)
        rounded_target = _to_step(target, tick, ROUND_HALF_EVEN) if target is not None else None
        if (rounded_entry, rounded_stop, rounded_target) != (entry, stop, target):
            clamp(RiskRule.PRICE_TICK, f"prices rounded to the tick {tick:g}")
        entry, stop, target = rounded_entry, rounded_stop, rounded_target
        if entry <= 0 or ((stop >= entry) if long else (stop <= entry)) or stop <= 0:
            return veto(RiskRule.STOP_LOSS_SIDE, f"stop and entry collapse at the tick {tick:g}")

    risk_amount = account.equity * config.risk_per_trade_pct / 100
    distance = abs(entry - stop)
    size = risk_amount / distance
    detail = f"{config.risk_per_trade_pct:g}% of equity {account.equity:g} over a stop distance {distance:.10g}"
    max_size = account.equity * leverage * (1 - config.cost_reserve_pct / 100) / entry
    if decision.size is not None and _finite(decision.size) and 0 < decision.size < min(size, max_size):
        size = decision.size
        detail = f"the brain's size {size:.10g}, below the risk and leverage limits"
    if size > max_size:
        clamp(RiskRule.NOTIONAL_CAP, f"size {size:.10g} → {max_size:.10g}: notional capped at {leverage:g}x equity")
        size = max_size
    else:
        adjustments.append(Adjustment(AdjustmentKind.SIZED, RiskRule.RISK_PER_TRADE, f"size {size:.10g}: {detail}"))

    if amount_step > 0:
        stepped = _to_step(size, amount_step, ROUND_FLOOR)
        if stepped != size:
            clamp(RiskRule.AMOUNT_STEP, f"size {size:.10g} → {stepped:.10g} (rounded down to {amount_step:g})")
        size = stepped
    if size <= 0 or size < min_amount:
        return veto(RiskRule.MIN_AMOUNT, f"size {size:.10g} is below the minimum amount {min_amount:g}")
    notional = size * entry
    if notional < min_notional:
        return veto(RiskRule.MIN_NOTIONAL, f"notional {notional:.10g} is below the exchange minimum {min_notional:g}")

    final = msgspec.structs.replace(
        decision, entry=entry, stop_loss=stop, take_profit=target, leverage=leverage, size=size
    )
    return Guarded(final, tuple(adjustments))
