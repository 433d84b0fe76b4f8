"""Position manager: unrealised PnL and stop suggestions (break-even, ATR trailing stop, time stop).

Pure: a tenant's open positions, the price and the ATR in, one Insight per symbol out. The score
is the direction of the trade the manager recommends: closing a long reads negative (sell),
closing a short positive (buy back); letting a winner run reads with the position's side.

Positions of one symbol on the same side are merged (amount-weighted entry, earliest opening,
tightest stop). If a symbol is held on both sides, the larger side is managed and the other named.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from workers.agents.insight import AgentName, Insight, Level, OpenPosition, PositionSide


@dataclass(frozen=True, slots=True)
class PositionRules:
    # Risk of a position without a stop-loss, in ATR: what one "R" is worth then.
    initial_stop_atr: float = 2.0
    # Move the stop to break-even once the trade is this many R in profit.
    break_even_at_r: float = 1.0
    # Round-trip fees and slippage the break-even price covers, as a fraction of the entry.
    fee_buffer: float = 0.001
    # Chandelier trailing stop: this many ATR behind the best price since entry...
    trail_atr: float = 2.5
    # ...suggested once the trade is this many R in profit.
    trail_from_r: float = 1.5
    # Time stop: after this many bars, a trade that has not made this many R is freeing capital.
    max_bars: int = 96
    time_stop_min_r: float = 0.5


@dataclass(frozen=True, slots=True)
class _Book:
    side: PositionSide
    entry: float
    amount: float
    opened_at: int
    stop_loss: float | None
    take_profit: float | None
    count: int


def _merge(positions: Sequence[OpenPosition], side: PositionSide) -> _Book:
    same = [p for p in positions if p.side is side]
    amount = sum(p.amount for p in same)
    entry = sum(p.entry_price * p.amount for p in same) / amount
    stops = [p.stop_loss for p in same if p.stop_loss is not None]
    targets = [p.take_profit for p in same if p.take_profit is not None]
    long = side is PositionSide.LONG
    stop = (max(stops) if long else min(stops)) if stops else None
    target = (min(targets) if long else max(targets)) if targets else None
    return _Book(side, entry, amount, min(p.opened_at for p in same), stop, target, len(same))


def managed_side(positions: Sequence[OpenPosition]) -> PositionSide:
    """The side the manager looks after: the one with the larger total amount (long on a tie)."""
    long_amount = sum(p.amount for p in positions if p.side is PositionSide.LONG)
    short_amount = sum(p.amount for p in positions if p.side is PositionSide.SHORT)
    return PositionSide.LONG if long_amount >= short_amount else PositionSide.SHORT


def positions_insight(
    symbol: str,
    positions: Sequence[OpenPosition],
    price: float,
    atr: float,
    now_ms: int,
    bar_ms: int,
    best_price: float | None = None,
    rules: PositionRules = PositionRules(),
) -> Insight | None:
    """Suggestions for `symbol`'s open positions; None when it has none.

    `best_price` is the most favourable price since entry (highest high for a long, lowest low
    for a short); without it the trailing stop hangs from the current price.
    """
    mine = [p for p in positions if p.symbol == symbol and p.amount > 0]
    if not mine:
        return None
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"positions_insight needs a positive price, got {price!r}")
    reasons: list[str] = []
    side = managed_side(mine)
    if len({p.side for p in mine}) == 2:
        other = PositionSide.SHORT if side is PositionSide.LONG else PositionSide.LONG
        reasons.append(f"held on both sides: managing the larger {side} side, {other} side left alone")
    book = _merge(mine, side)
    sign = 1.0 if side is PositionSide.LONG else -1.0

    if not (math.isfinite(atr) and atr > 0):
        atr = price * 0.01
        reasons.append("ATR unavailable: using 1% of price as the volatility unit")

    move = sign * (price - book.entry)
    pnl = move * book.amount
    pnl_pct = move / book.entry
    risk = abs(book.entry - book.stop_loss) if book.stop_loss is not None else rules.initial_stop_atr * atr
    risk = risk if risk > 0 else rules.initial_stop_atr * atr
    r_multiple = move / risk
    bars_held = max(0, (now_ms - book.opened_at) // bar_ms) if bar_ms > 0 else 0
    best = best_price if best_price is not None and math.isfinite(best_price) else price
    best = max(best, price) if sign > 0 else min(best, price)

    break_even = book.entry * (1.0 + sign * rules.fee_buffer)
    trailing_stop = best - sign * rules.trail_atr * atr
    label = f"{side} {book.amount:g} @ {book.entry:.8g}" + (f" ({book.count} positions)" if book.count > 1 else "")
    reasons.append(f"{label}: unrealised PnL {pnl:+.8g} ({pnl_pct:+.2%}, {r_multiple:+.2f} R)")

    def tighter(level: float) -> bool:
        """Whether a stop at `level` is tighter than the current one and still on the safe side of price."""
        on_safe_side = level < price if sign > 0 else level > price
        if book.stop_loss is None:
            return on_safe_side
        return on_safe_side and (level > book.stop_loss if sign > 0 else level < book.stop_loss)

    # hold: +1 let it run ... -1 close now, in the position's own direction.
    hold, confidence = 0.1, 0.4
    stop_hit = book.stop_loss is not None and sign * (price - book.stop_loss) <= 0
    target_hit = book.take_profit is not None and sign * (price - book.take_profit) >= 0
    if stop_hit:
        hold, confidence = -1.0, 1.0
        reasons.append(f"price is through the stop-loss {book.stop_loss:.8g}: close")
    elif target_hit:
        hold, confidence = -0.6, 0.8
        reasons.append(f"take-profit {book.take_profit:.8g} reached: take profit or trail tightly")
    else:
        if r_multiple >= rules.trail_from_r and tighter(trailing_stop):
            hold, confidence = 0.4, 0.6
            reasons.append(
                f"move the stop to the trailing stop {trailing_stop:.8g} "
                f"({rules.trail_atr:g} ATR behind the best price {best:.8g})"
            )
        elif r_multiple >= rules.break_even_at_r and tighter(break_even):
            hold, confidence = 0.3, 0.6
            reasons.append(f"{r_multiple:.1f} R in profit: move the stop to break-even {break_even:.8g}")
        elif r_multiple > 0:
            reasons.append("in profit, stop already at or beyond the suggestions: hold")
        if bars_held >= rules.max_bars and r_multiple < rules.time_stop_min_r:
            hold, confidence = -0.6, 0.6
            reasons.append(
                f"time stop: held {bars_held} bars without reaching {rules.time_stop_min_r:g} R: consider closing"
            )
        if book.stop_loss is None:
            reasons.append("no stop-loss set: a position without one risks more than planned")
            confidence = min(confidence, 0.5)

    levels = [Level("trailing_stop", trailing_stop), Level("break_even", break_even)]
    if book.stop_loss is not None:
        levels.append(Level("stop_loss", book.stop_loss))
    if book.take_profit is not None:
        levels.append(Level("take_profit", book.take_profit))
    values = {
        "price": price,
        "entry_price": book.entry,
        "amount": book.amount,
        "side": sign,
        "unrealised_pnl": pnl,
        "unrealised_pnl_pct": pnl_pct,
        "r_multiple": r_multiple,
        "bars_held": float(bars_held),
        "best_price": best,
        "atr": atr,
    }
    return Insight(
        agent=AgentName.POSITIONS,
        symbol=symbol,
        score=max(-1.0, min(1.0, sign * hold)),
        confidence=max(0.0, min(1.0, confidence)),
        reasons=tuple(reasons),
        levels=tuple(levels),
        values=values,
    )
