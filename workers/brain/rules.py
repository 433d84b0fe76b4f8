"""The deterministic rules brain: a weighted consensus of the agents' insights turned into a `Decision`.

It is the default brain and the fallback when the GPT brain fails, so it is pure (no I/O, no clock,
no randomness): the same insights always give the same decision, in live cycles and in backtests.

How it decides
--------------
Each directional insight votes `weight x confidence x score`, where `weight` comes from the bot's
configuration (`AgentName -> weight`, defaults in `DEFAULT_WEIGHTS`). The consensus score is the sum
of votes divided by the total weight of the agents that spoke (confidence > 0), so an agent with
nothing to say (e.g. sentiment without headlines) abstains instead of diluting the others.
`agreement` is the share of the absolute vote that points the same way as the consensus, and the
decision's confidence is `strength x agreement`, with `strength = min(1, |score| / strong_score)`.

Flat: OPEN_LONG / OPEN_SHORT when |score| >= `open_threshold` and agreement >= `min_agreement`,
otherwise WAIT. The entry is the current price; the stop goes beyond the nearest Fibonacci level on
the losing side (plus a small ATR buffer) but at least `min_stop_atr` ATRs and at most `max_stop_atr`
ATRs away; the take-profit is the next Fibonacci level on the winning side when it pays at least
`min_reward_risk`, otherwise exactly `min_reward_risk` times the risk, and never more than
`max_reward_risk` times the risk.

In a position: CLOSE when the positions agent recommends the opposite trade by at least
`positions_exit_score` (its stop hit, target reached or time stop), when the price is already through
the stop, or when the consensus turns against the position by `close_threshold` with
`min_agreement`; HOLD otherwise, carrying a tightened stop: the agent's break-even stop once the
trade has made `break_even_at_r` R, its trailing stop from `trail_from_r` R.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from tenants.bot_limits import DEFAULT_AGENT_WEIGHTS
from workers.agents.insight import AgentName, Insight, OpenPosition, PositionSide
from workers.brain.decision import Action, Decision

# The weights a bot gets unless it sets its own: one table, `tenants.bot_limits.DEFAULT_AGENT_WEIGHTS`, which the
# API shows and validates against (technical 0.40, sentiment 0.25, fibonacci 0.20, gann 0.15, positions 0). A
# cycle or backtest without headlines has the sentiment agent abstain (confidence 0), and `weigh` renormalises
# over the agents that speak, so the others then weigh 0.40 / 0.20 / 0.15 out of 0.75.
DEFAULT_WEIGHTS: dict[AgentName, float] = {AgentName(k): v for k, v in DEFAULT_AGENT_WEIGHTS.items()}

# Names of the values/levels the brain reads from the agents' insights.
PRICE_KEY = "close"
ATR_KEY = "atr"
SUPPORT_LEVEL = "support"
RESISTANCE_LEVEL = "resistance"
TRAILING_STOP_LEVEL = "trailing_stop"
BREAK_EVEN_LEVEL = "break_even"
R_MULTIPLE_KEY = "r_multiple"  # the positions agent's unrealised profit in units of the initial risk
REGIME_KEY = "regime_trend"  # the technical agent's trend of the slowest timeframe it read


class RulesParams(msgspec.Struct, frozen=True, kw_only=True):
    """Thresholds of the rules brain; every field is documented in the module docstring."""

    open_threshold: float = 0.25  # |consensus score| needed to open a position
    close_threshold: float = 0.25  # consensus score against an open position that closes it
    min_agreement: float = 0.6  # share of the absolute vote that must agree with the consensus
    strong_score: float = 0.6  # |score| at which the consensus counts as full strength
    min_stop_atr: float = 1.5  # the stop is at least this many ATRs from the entry
    max_stop_atr: float = 4.0  # ... and at most this many (a farther level is not used)
    stop_buffer_atr: float = 0.25  # how far beyond the Fibonacci level the stop sits
    min_reward_risk: float = 3.0  # the take-profit pays at least this multiple of the risk
    max_reward_risk: float = 4.0  # ... and a farther Fibonacci target is capped here
    allow_short: bool = True  # spot-only bots set this to False
    # The positions agent scores the trade it recommends (closing a long reads negative); this much
    # against the position is an exit request (its stop hit reads -1, target reached or time stop -0.6).
    positions_exit_score: float = 0.5
    break_even_at_r: float = 1.0  # adopt the agent's break-even stop from this profit, in R
    trail_from_r: float = 1.5  # adopt the agent's trailing stop from this profit, in R
    # Regime filter: open a long only while the slowest timeframe's trend (the technical agent's
    # `regime_trend`, in [-1, 1]) is at least this, a short only while it is at most minus this, and close
    # a position once it has turned against it by as much. None: no filter.
    regime_trend: float | None = 0.4
    # Cost-aware entry: open only when a candle's typical move (the ATR) is worth at least `min_edge` round
    # trips of costs (`round_trip_cost`: fees and slippage of an entry and its exit, as a fraction of price),
    # so a timeframe whose moves the costs eat is not traded.
    round_trip_cost: float = 0.003
    min_edge: float = 3.0
    # Trend following: enter in the direction of the regime whenever it is at least `regime_trend` strong,
    # whatever the consensus (which then only closes a position that it turns against).
    follow_regime: bool = False


@dataclass(frozen=True, slots=True)
class Vote:
    """One insight's part in the consensus; `contribution` is its share of the consensus score."""

    agent: AgentName
    weight: float
    score: float
    confidence: float
    contribution: float


@dataclass(frozen=True, slots=True)
class Consensus:
    score: float  # in [-1, 1], positive is bullish
    agreement: float  # in [0, 1]
    confidence: float  # in [0, 1]
    votes: tuple[Vote, ...]

    def carried_by(self, direction: float) -> list[str]:
        """The votes pointing in `direction`, strongest first, as 'agent +0.123' strings."""
        same = [v for v in self.votes if v.contribution * direction > 0]
        same.sort(key=lambda v: -abs(v.contribution))
        return [f"{v.agent.value} {v.contribution:+.3f}" for v in same]


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def weigh(insights: Iterable[Insight], weights: Mapping[AgentName, float], strong_score: float) -> Consensus:
    """The weighted consensus of `insights`; agents missing from `weights` get weight 0."""
    insights = [i for i in insights if weights.get(i.agent, 0.0) > 0]
    # Several insights from one agent share that agent's weight rather than multiplying it.
    per_agent: dict[AgentName, int] = {}
    for i in insights:
        per_agent[i.agent] = per_agent.get(i.agent, 0) + 1
    raw: list[tuple[AgentName, float, float, float]] = []
    for i in insights:
        w = weights[i.agent] / per_agent[i.agent]
        score = _clamp(i.score, -1.0, 1.0) if math.isfinite(i.score) else 0.0
        conf = _clamp(i.confidence, 0.0, 1.0) if math.isfinite(i.confidence) else 0.0
        raw.append((i.agent, w, score, conf))
    speaking = sum(w for _, w, _, c in raw if c > 0)
    if speaking <= 0:
        votes = tuple(Vote(a, w, s, c, 0.0) for a, w, s, c in raw)
        return Consensus(0.0, 0.0, 0.0, votes)
    votes = tuple(Vote(a, w, s, c, w * c * s / speaking) for a, w, s, c in raw)
    score = _clamp(sum(v.contribution for v in votes), -1.0, 1.0)
    total = sum(abs(v.contribution) for v in votes)
    agreeing = sum(abs(v.contribution) for v in votes if v.contribution * score > 0)
    agreement = agreeing / total if total > 0 else 0.0
    strength = min(1.0, abs(score) / strong_score) if strong_score > 0 else 1.0
    return Consensus(score, agreement, strength * agreement, votes)


def _first(insights: Sequence[Insight], agent: AgentName) -> Insight | None:
    return next((i for i in insights if i.agent == agent), None)


def _levels(insight: Insight | None) -> dict[str, float]:
    if insight is None:
        return {}
    return {lv.name: lv.price for lv in insight.levels if _finite(lv.price) and lv.price > 0}


def _nearest_level(fib: Insight | None, entry: float, named: str, below: bool) -> tuple[str, float] | None:
    """The level called `named` if it lies on the wanted side of `entry`, else the nearest fib level there."""
    levels = _levels(fib)
    if named in levels and (levels[named] < entry if below else levels[named] > entry):
        return named, levels[named]
    side = [(n, p) for n, p in levels.items() if (p < entry if below else p > entry)]
    if not side:
        return None
    return max(side, key=lambda np_: np_[1]) if below else min(side, key=lambda np_: np_[1])


def _regime(insights: Sequence[Insight]) -> float:
    technical = _first(insights, AgentName.TECHNICAL)
    value = technical.values.get(REGIME_KEY, 0.0) if technical is not None else 0.0
    return value if math.isfinite(value) else 0.0


def _exit_requested(positions: Insight | None, direction: float, threshold: float) -> bool:
    """Whether the positions agent recommends trading against the position by at least `threshold`."""
    return positions is not None and math.isfinite(positions.score) and -direction * positions.score >= threshold


@dataclass(frozen=True, slots=True)
class RulesBrain:
    """The deterministic brain; `weights` come from the bot's configuration (AgentName -> weight).

    Agents the configuration leaves out keep their `DEFAULT_WEIGHTS`; weight 0 silences an agent.
    """

    weights: Mapping[AgentName, float] | None = None
    params: RulesParams = RulesParams()

    def __post_init__(self) -> None:
        for agent, weight in (self.weights or {}).items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"weight of {agent} must be a finite number >= 0, got {weight!r}")

    def decide(
        self,
        symbol: str,
        insights: Sequence[Insight],
        position: OpenPosition | None = None,
        price: float | None = None,
    ) -> Decision:
        """Decide for `symbol`; `price` defaults to the technical insight's `close` value."""
        weights = dict(DEFAULT_WEIGHTS)
        if self.weights is not None:
            weights.update({AgentName(k): float(v) for k, v in self.weights.items()})
        insights = [i for i in insights if i.symbol == symbol]
        technical = _first(insights, AgentName.TECHNICAL)
        if price is None and technical is not None:
            price = technical.values.get(PRICE_KEY)
        atr = technical.values.get(ATR_KEY) if technical is not None else None
        consensus = weigh(insights, weights, self.params.strong_score)
        summary = f"consensus {consensus.score:+.3f}, agreement {consensus.agreement:.2f}"
        if position is not None and position.symbol == symbol:
            return self._manage(symbol, insights, position, price, consensus, summary)
        return self._enter(symbol, insights, price, atr, consensus, summary)

    def _enter(
        self,
        symbol: str,
        insights: Sequence[Insight],
        price: float | None,
        atr: float | None,
        consensus: Consensus,
        summary: str,
    ) -> Decision:
        p = self.params
        direction = 1.0 if consensus.score > 0 else -1.0

        def wait(why: str) -> Decision:
            return Decision(Action.WAIT, symbol, confidence=0.0, reasons=(why, summary))

        regime = _regime(insights)
        if p.follow_regime:
            direction = 1.0 if regime > 0 else -1.0
        elif abs(consensus.score) < p.open_threshold:
            return wait(f"consensus weaker than {p.open_threshold}")
        if p.regime_trend is not None and direction * regime < p.regime_trend:
            side = "up" if direction > 0 else "down"
            return wait(f"the slowest timeframe's trend {regime:+.2f} is not {side} by {p.regime_trend}")
        if consensus.agreement < p.min_agreement and not p.follow_regime:
            return wait(f"agents agree less than {p.min_agreement}")
        if direction < 0 and not p.allow_short:
            return wait("bearish consensus but shorting is not allowed")
        if not _finite(price) or price <= 0:
            return wait("no current price to enter at")
        if not _finite(atr) or atr <= 0:
            return wait("no ATR to place the stop with")
        entry = float(price)
        atr = float(atr)
        if atr / entry < p.min_edge * p.round_trip_cost:
            return wait(
                f"a candle's typical move (ATR {atr / entry:.2%}) pays less than {p.min_edge:g} round trips of costs "
                f"({p.round_trip_cost:.2%} each)"
            )
        fib = _first(insights, AgentName.FIBONACCI)
        long = direction > 0
        reasons = [summary, "carried by " + ", ".join(consensus.carried_by(direction))]

        # Stop: beyond the nearest level on the losing side, within [min_stop_atr, max_stop_atr] ATRs.
        min_dist, max_dist = p.min_stop_atr * atr, p.max_stop_atr * atr
        guard = _nearest_level(fib, entry, SUPPORT_LEVEL if long else RESISTANCE_LEVEL, below=long)
        if guard is None:
            dist = min_dist
            reasons.append(f"stop {p.min_stop_atr} ATR away (no Fibonacci level on that side)")
        else:
            name, level = guard
            dist = abs(entry - level) + p.stop_buffer_atr * atr
            if dist > max_dist:
                dist = max_dist
                reasons.append(f"stop capped at {p.max_stop_atr} ATR ({name} {level:.8g} too far)")
            elif dist < min_dist:
                dist = min_dist
                reasons.append(f"stop {p.min_stop_atr} ATR away, beyond {name} {level:.8g}")
            else:
                reasons.append(f"stop beyond {name} {level:.8g}")
        stop = entry - dist if long else entry + dist
        if stop <= 0:
            return wait("stop would be at or below zero")

        # Take-profit: the next level on the winning side if it pays enough, else the minimum ratio.
        target = _nearest_level(fib, entry, RESISTANCE_LEVEL if long else SUPPORT_LEVEL, below=not long)
        reward = p.min_reward_risk * dist
        if target is not None:
            name, level = target
            level_reward = abs(level - entry)
            if level_reward >= reward:
                reward = min(level_reward, p.max_reward_risk * dist)
                reasons.append(f"target {name} {level:.8g}")
            else:
                reasons.append(f"{name} {level:.8g} too close; target {p.min_reward_risk}R")
        take_profit = entry + reward if long else entry - reward
        if take_profit <= 0:
            take_profit = entry * 0.01  # a short's target can't go below zero; keep it on the right side
        return Decision(
            Action.OPEN_LONG if long else Action.OPEN_SHORT,
            symbol,
            confidence=consensus.confidence,
            entry=entry,
            stop_loss=stop,
            take_profit=take_profit,
            reasons=tuple(reasons),
        )

    def _manage(
        self,
        symbol: str,
        insights: Sequence[Insight],
        position: OpenPosition,
        price: float | None,
        consensus: Consensus,
        summary: str,
    ) -> Decision:
        p = self.params
        long = position.side == PositionSide.LONG
        direction = 1.0 if long else -1.0
        against = -direction * consensus.score
        positions = _first(insights, AgentName.POSITIONS)

        def close(why: str, confidence: float) -> Decision:
            return Decision(Action.CLOSE, symbol, confidence=confidence, entry=price, reasons=(why, summary))

        if _exit_requested(positions, direction, p.positions_exit_score):
            why = "; ".join(positions.reasons) if positions.reasons else f"score {positions.score:+.2f}"
            return close(f"positions agent asks to exit: {why}", _clamp(positions.confidence, 0.0, 1.0))
        stop_hit = (
            _finite(price)
            and _finite(position.stop_loss)
            and (price <= position.stop_loss if long else price >= position.stop_loss)
        )
        if stop_hit:
            return close(f"price {price:.8g} is through the stop {position.stop_loss:.8g}", 1.0)
        regime = _regime(insights)
        if p.regime_trend is not None and -direction * regime >= p.regime_trend:
            return close(f"the slowest timeframe's trend turned against the position ({regime:+.2f})", 1.0)
        if against >= p.close_threshold and consensus.agreement >= p.min_agreement:
            return Decision(
                Action.CLOSE,
                symbol,
                confidence=consensus.confidence,
                entry=price,
                reasons=(
                    f"consensus turned against the {position.side.value} position",
                    summary,
                    "carried by " + ", ".join(consensus.carried_by(-direction)),
                ),
            )

        # Hold, tightening the stop to the positions agent's break-even / trailing stop once the trade
        # is far enough in profit, when that is better than the current stop and still on the right
        # side of the price. The agent always reports both levels; the R thresholds say when to use them.
        stop = position.stop_loss
        reasons = [f"hold the {position.side.value} position", summary]
        r_multiple = positions.values.get(R_MULTIPLE_KEY, 0.0) if positions is not None else 0.0
        r_multiple = r_multiple if math.isfinite(r_multiple) else 0.0
        earned = {BREAK_EVEN_LEVEL: p.break_even_at_r, TRAILING_STOP_LEVEL: p.trail_from_r}
        for name, level in _levels(positions).items():
            if name not in earned or r_multiple < earned[name]:
                continue
            if _finite(price) and ((level >= price) if long else (level <= price)):
                continue
            if stop is None or (level > stop if long else level < stop):
                stop = level
                reasons.append(f"stop tightened to {name} {level:.8g}")
        pressure = _clamp(against / p.close_threshold, 0.0, 1.0) if p.close_threshold > 0 else 0.0
        hold_confidence = 1.0 - pressure
        return Decision(
            Action.HOLD,
            symbol,
            confidence=hold_confidence,
            entry=position.entry_price,
            stop_loss=stop,
            take_profit=position.take_profit,
            reasons=tuple(reasons),
        )


def decide_by_rules(
    symbol: str,
    insights: Sequence[Insight],
    position: OpenPosition | None = None,
    price: float | None = None,
    weights: Mapping[AgentName, float] | None = None,
    params: RulesParams | None = None,
) -> Decision:
    """Function form of `RulesBrain(weights, params).decide(...)`."""
    brain = RulesBrain(weights, params if params is not None else RulesParams())
    return brain.decide(symbol, insights, position, price)
