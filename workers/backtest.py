"""`quorum backtest`: replay recorded candles through the agents, the rules brain and simulated fills.

The core is `run_backtest(candles_5m, config) -> BacktestResult`, a pure function (no I/O) so tests
call it directly; `add_arguments` / `run` are the CLI around it.

Simulation rules
----------------
* The trading timeframe is the first of `config.timeframes`; the others are resampled from the input
  once. The agents' series are computed once over all of it (`SymbolAnalysis`) and read at every
  candle t, each series causal and each higher timeframe read at its last bucket closed by then, so
  a decision taken at the close of candle t never sees candle t+1 or an unfinished higher bucket
  (tests/backtest/test_backtest.py scrambles the future and compares every decision).
* A decision is taken at the close of every trading candle after `warmup` candles; the order it makes
  fills at the NEXT candle's open (the signal's own close is already gone when the order reaches the
  exchange). Fills, stops, targets, fees, slippage, PnL and margin are the paper exchange's own model
  (`workers.market.fills`): moved against us by `slippage_bps`, paying `fee_bps` of the notional.
* Spot markets (`BASE/QUOTE`) are long-only; shorts need a derivatives market (`BASE/QUOTE:SETTLE`)
  or `derivatives=True`.
* Stops and take-profits are checked on the high/low of every candle in the position, the entry
  candle included. A candle that opens through the stop or the target fills at its open; if one
  candle touches both, the stop is assumed to have been hit first (conservative). Slippage and fees
  apply to these exits too.
* The live cycle's risk guard (`workers.brain.risk.guard`) sizes each entry against its fill price:
  `risk_pct` of the current equity between entry and stop, the notional capped at `max_leverage` x
  equity less `cost_reserve_pct` (kept for the fill's costs, as live). The guard refuses an entry whose
  fill lands beyond its own stop and drops a take-profit already behind it; an entry whose margin and
  fee do not fit the cash is not taken (the paper exchange would refuse it). A position still open at
  the end is closed at the last close.

Figures
-------
Total return, CAGR, Sharpe and Sortino come from the equity marked at every trading candle's close; max
drawdown from the equity at each candle's worst extreme (a long marked at the low, a short at the high)
against the running peak. Sharpe is the mean over the standard deviation of per-candle returns (risk-free
rate 0) times sqrt(candles per year), Sortino the same over the downside deviation; crypto trades around
the clock, so a year is 365 x 24 h (105,120 five-minute candles). Missing candles (gaps) are simply absent.
Buy-and-hold buys at the first decision candle's close and sells at the last close, with the same fees and
slippage; doing nothing keeps the starting equity. Exposure is the share of candles spent in a position.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import msgspec
import numpy as np

from workers.agents.insight import AgentName, Headline, Insight, OpenPosition, PositionSide
from workers.brain.decision import Action, Decision
from workers.brain.gpt import cutoff_of
from workers.brain.recording import GptReplay, ModelRecording, RecordingMiss
from workers.brain.risk import COST_RESERVE_PCT, AccountState, RiskConfig, guard
from workers.brain.rules import RulesBrain, RulesParams
from workers.brain.rules_args import add_rules_arguments, rules_from_args
from workers.brain.validation import BotConstraints
from workers.exchanges.base import Side
from workers.market import fills
from workers.market.candles import TIMEFRAME_MS, Candles

YEAR_MS = 365 * 24 * 3_600_000



class Analyst(Protocol):
    """What the backtest asks at every trading candle t (SymbolAnalysis is the real one)."""

    def at(
        self, t: int, headlines: Sequence[Headline] = (), positions: Sequence[OpenPosition] = (),
        now_ms: int | None = None,
    ) -> list[Insight]: ...


# Prepares the analyst of one symbol over all its candles by timeframe (trading timeframe first).
Prepare = Callable[[str, Mapping[str, Candles]], Analyst]


class BacktestSetupError(ValueError):
    """The candles and the configuration cannot make a backtest (unknown timeframe, too few candles)."""


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What a backtest simulates; the defaults are the `quorum backtest` defaults."""

    symbol: str | None = None  # default: the candles' own symbol
    timeframes: tuple[str, ...] = ("5m", "15m", "1h")  # the first is the trading timeframe
    fee_bps: float = 10.0  # per fill, on the notional (Binance spot taker: 10 bps)
    slippage_bps: float = 5.0  # per fill, against us
    equity: float = 10_000.0  # starting equity in quote currency
    risk_pct: float = 1.0  # equity risked between entry and stop, in percent
    max_leverage: float = 1.0  # notional cap as a multiple of equity (1 = spot)
    cost_reserve_pct: float = COST_RESERVE_PCT  # of the notional cap, kept for fees and slippage, as live
    warmup: int = 300  # trading candles before the first decision
    weights: dict[AgentName, float] | None = None  # per-agent weights for the rules brain
    rules: RulesParams = RulesParams()
    derivatives: bool | None = None  # may it short? None: only on a derivatives symbol (BASE/QUOTE:SETTLE)


@dataclass(frozen=True, slots=True)
class Trade:
    side: PositionSide
    entry_time: int  # ms, close of the candle the entry filled at
    entry_price: float  # fill, after slippage
    exit_time: int
    exit_price: float
    size: float  # base units
    fees: float  # quote currency, both fills
    slippage: float  # quote currency, both fills: what the fills cost against the raw prices
    pnl: float  # quote currency, after fees
    exit_reason: str  # "stop", "take_profit", "close" (brain), "end"


@dataclass(frozen=True, slots=True)
class Performance:
    total_return: float  # fraction, 0.05 = +5 %
    max_drawdown: float  # fraction of the peak, 0.1 = -10 %, from candle extremes
    sharpe: float  # annualised, see module docstring
    sortino: float = 0.0  # annualised, downside deviation
    cagr: float = 0.0  # compound annual growth rate, fraction


@dataclass(frozen=True, slots=True)
class BacktestResult:
    symbol: str
    timeframe: str
    start_ms: int  # close of the first decision candle
    end_ms: int  # close of the last candle
    bars: int  # trading candles after warmup
    bars_per_year: float
    strategy: Performance
    buy_and_hold: Performance
    do_nothing: Performance
    exposure: float  # share of trading candles spent in a position
    trades: tuple[Trade, ...]
    decisions: tuple[tuple[int, Decision], ...]  # (decision time in ms, decision), one per candle
    equity_curve: np.ndarray = field(repr=False)  # marked at each trading candle's close
    worst_curve: np.ndarray = field(repr=False)  # the same candles marked at their worst extreme

    @property
    def n_trades(self) -> int:
        return len(self.trades)

    @property
    def win_rate(self) -> float:
        return sum(t.pnl > 0 for t in self.trades) / len(self.trades) if self.trades else 0.0

    @property
    def profit_factor(self) -> float:
        """Gross profit over gross loss of the closed trades (inf without a loss, 0 without a trade)."""
        won = sum(t.pnl for t in self.trades if t.pnl > 0)
        lost = -sum(t.pnl for t in self.trades if t.pnl < 0)
        return won / lost if lost > 0 else (math.inf if won > 0 else 0.0)

    @property
    def fees(self) -> float:
        return sum(t.fees for t in self.trades)

    @property
    def slippage(self) -> float:
        return sum(t.slippage for t in self.trades)


def performance(equity: np.ndarray, bars_per_year: float, worst: np.ndarray | None = None) -> Performance:
    """Return, max drawdown, Sharpe, Sortino and CAGR of an equity curve marked at closes; `worst` (the same
    length) is the equity at each candle's worst extreme, for the drawdown (default: the closes)."""
    if len(equity) < 2:
        return Performance(0.0, 0.0, 0.0)
    total = float(equity[-1] / equity[0] - 1.0)
    peaks = np.maximum.accumulate(equity)
    troughs = equity if worst is None else np.minimum(worst, equity)
    # A candle's trough comes before its close could make a new peak: compare it with the peak before it.
    drawdown = max(0.0, float(np.max(1.0 - troughs / np.r_[equity[0], peaks[:-1]])),
                   float(np.max(1.0 - equity / peaks)))
    returns = np.diff(equity) / equity[:-1]
    std = float(np.std(returns, ddof=1))
    sharpe = float(np.mean(returns)) / std * math.sqrt(bars_per_year) if std > 0 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    sortino = float(np.mean(returns)) / downside * math.sqrt(bars_per_year) if downside > 0 else 0.0
    years = (len(equity) - 1) / bars_per_year
    cagr = float((equity[-1] / equity[0]) ** (1 / years) - 1.0) if years > 0 and equity[-1] > 0 else -1.0
    return Performance(total, drawdown, sharpe, sortino, cagr)


@dataclass(frozen=True, slots=True)
class _Position:
    """The open position as the agents and the loop see it, in floats; the account holds the exact one."""

    side: PositionSide
    entry_time: int
    entry_price: float  # fill, after slippage
    size: float
    stop: float
    take_profit: float | None


_REASONS = {fills.STOP_LOSS: "stop", fills.TAKE_PROFIT: "take_profit"}


class _Account:
    """Cash plus at most one position, filled by the one fill model."""

    def __init__(self, symbol: str, equity: float, model: fills.FillModel) -> None:
        self.symbol = symbol
        self.cash = fills.decimal(equity)
        self.model = model
        self.holding: fills.Holding | None = None
        self.position: _Position | None = None
        self.trades: list[Trade] = []
        self._entry: tuple[int, fills.Fill] | None = None

    def equity(self, price: float) -> float:
        h = self.holding
        return float(self.cash if h is None else self.cash + h.pnl(fills.decimal(price)))

    def open(self, time: int, reference: float, decision: Decision) -> None:
        """Fill the guarded `decision` against `reference`, unless its margin and fee do not fit the cash."""
        assert decision.size is not None and decision.stop_loss is not None
        side = Side.BUY if decision.action == Action.OPEN_LONG else Side.SELL
        fill = self.model.market(side, fills.decimal(decision.size), fills.decimal(reference))
        target = fills.decimal(decision.take_profit) if decision.take_profit is not None else None
        netted = fills.net(None, fill, symbol=self.symbol, leverage=fills.decimal(decision.leverage),
                           stop_loss=fills.decimal(decision.stop_loss), take_profit=target)
        if fill.amount <= 0 or netted.required > self.cash:
            return
        self.cash += netted.cash
        self._entry = (time, fill)
        self._hold(netted.holding)

    def trigger(self, open_: float, high: float, low: float) -> fills.Trigger | None:
        assert self.holding is not None
        d = fills.decimal
        return fills.trigger(self.holding, d(open_), d(high), d(low))

    def tighten_stop(self, stop: float, price: float) -> None:
        assert self.holding is not None
        self._hold(self.holding.tightened(fills.decimal(stop), fills.decimal(price)))

    def close(self, time: int, reference: Decimal, reason: str) -> None:
        h, entry = self.holding, self._entry
        assert h is not None and entry is not None
        entry_time, opened = entry
        fill = self.model.market(fills.closing_side(h.side), h.amount, reference)
        netted = fills.net(h, fill, symbol=self.symbol)
        self.cash += netted.cash
        fees = h.fees + fill.fee
        self.trades.append(Trade(
            PositionSide(h.side.value), entry_time, float(opened.price), time, float(fill.price), float(h.amount),
            float(fees), float(opened.slippage + fill.slippage), float(netted.realised - fees), reason,
        ))
        self.holding = self.position = self._entry = None

    def _hold(self, h: fills.Holding | None) -> None:
        self.holding = h
        if h is None or self._entry is None:
            self.position = None
            return
        self.position = _Position(
            PositionSide(h.side.value), self._entry[0], float(h.entry_price), float(h.amount),
            float(h.stop_loss) if h.stop_loss is not None else math.nan,
            float(h.take_profit) if h.take_profit is not None else None,
        )


def run_backtest(
    candles_5m: Candles,
    config: BacktestConfig = BacktestConfig(),
    *,
    analysis: Prepare | None = None,
    headlines: Sequence[Headline] = (),
    gpt: GptReplay | None = None,
) -> BacktestResult:
    """Replay `candles_5m` through the agents (default: SymbolAnalysis, computed once over the whole series and
    read candle by candle), the rules brain (or `gpt`, a recorded GPT brain falling back to it) and fills."""
    from workers.agents.analysis import SymbolAnalysis
    from workers.market.resample import resample

    symbol = config.symbol or candles_5m.symbol
    if not config.timeframes:
        raise BacktestSetupError("at least one timeframe is needed")
    trading_tf = config.timeframes[0]
    try:
        series = {tf: resample(candles_5m, tf) for tf in config.timeframes}
    except ValueError as exc:
        raise BacktestSetupError(str(exc)) from exc
    tf_ms = TIMEFRAME_MS[trading_tf]
    bars = series[trading_tf]
    n = len(bars)
    if n <= config.warmup + 1:
        raise BacktestSetupError(f"{n} {trading_tf} candles: need more than warmup={config.warmup} + 1")

    analyst = (analysis or SymbolAnalysis)(symbol, series)
    derivatives = ":" in symbol if config.derivatives is None else config.derivatives
    # The brain's cost-aware entry weighs the same fees and slippage the fills charge.
    rules = msgspec.structs.replace(
        config.rules,
        allow_short=config.rules.allow_short and derivatives,
        round_trip_cost=2 * (config.fee_bps + config.slippage_bps) / 10_000,
    )
    brain = RulesBrain(config.weights, rules)
    def propose(symbol: str, insights: list[Insight], *, position: OpenPosition | None, price: float,
                now_ms: int) -> Decision:
        return brain.decide(symbol, insights, position=position, price=price)

    if gpt is not None:
        gpt.bind(brain, BotConstraints(symbols=(symbol,), allow_short=rules.allow_short,
                                       max_leverage=config.max_leverage))
        propose = gpt.decide
    account = _Account(symbol, config.equity, fills.FillModel.from_bps(config.fee_bps, config.slippage_bps))
    ts, op, hi, lo, cl = bars.timestamp, bars.open, bars.high, bars.low, bars.close
    decisions: list[tuple[int, Decision]] = []
    m = n - config.warmup
    equity_curve, worst_curve = np.empty(m), np.empty(m)
    in_position = 0
    pending: Decision | None = None  # decided at the previous close, filled at this candle's open

    for i in range(config.warmup, n):
        start, now = int(ts[i]), int(ts[i]) + tf_ms  # this candle's open, and its close: the decision's moment
        open_, high, low, price = float(op[i]), float(hi[i]), float(lo[i]), float(cl[i])

        if pending is not None:
            _execute(account, pending, start, open_, config)
            pending = None
        p = account.position
        if p is not None:
            in_position += 1
            hit = account.trigger(open_, high, low)
            adverse = low if p.side == PositionSide.LONG else high  # a stop caps the candle's worst at its own price
            stopped = hit is not None and hit.reason == fills.STOP_LOSS
            worst_curve[i - config.warmup] = account.equity(float(hit.price) if stopped else adverse)
            if hit is not None:
                account.close(now, hit.price, _REASONS[hit.reason])
        else:
            worst_curve[i - config.warmup] = account.cash

        p = account.position
        held = (
            OpenPosition(symbol, p.side, p.entry_price, p.size, p.entry_time, p.stop, p.take_profit)
            if p is not None
            else None
        )
        insights = analyst.at(i, headlines, (held,) if held else (), now)
        decision = propose(symbol, insights, position=held, price=price, now_ms=now)
        decisions.append((now, decision))

        if p is not None:
            if decision.action == Action.CLOSE:
                pending = decision
            elif decision.action == Action.HOLD and decision.stop_loss is not None:
                account.tighten_stop(decision.stop_loss, price)  # the amended stop order rests from now on
        elif decision.action in (Action.OPEN_LONG, Action.OPEN_SHORT) and decision.stop_loss is not None:
            pending = decision

        equity_curve[i - config.warmup] = account.equity(price)

    end = int(ts[-1]) + tf_ms
    if account.position is not None:
        account.close(end, fills.decimal(cl[-1]), "end")
        equity_curve[-1] = account.cash
        worst_curve[-1] = min(worst_curve[-1], account.cash)

    bars_per_year = YEAR_MS / tf_ms
    start_equity = np.r_[config.equity, equity_curve]
    start_worst = np.r_[config.equity, worst_curve]
    hold_curve, hold_worst = _buy_and_hold(cl[config.warmup:], lo[config.warmup:], config)
    return BacktestResult(
        symbol=symbol,
        timeframe=trading_tf,
        start_ms=int(ts[config.warmup]) + tf_ms,
        end_ms=end,
        bars=m,
        bars_per_year=bars_per_year,
        strategy=performance(start_equity, bars_per_year, start_worst),
        buy_and_hold=performance(hold_curve, bars_per_year, hold_worst),
        do_nothing=performance(np.full(m + 1, config.equity), bars_per_year),
        exposure=in_position / m,
        trades=tuple(account.trades),
        decisions=tuple(decisions),
        equity_curve=start_equity,
        worst_curve=start_worst,
    )


def _execute(account: _Account, decision: Decision, time: int, open_: float, config: BacktestConfig) -> None:
    """Fill the order `decision` made at the last close, at this candle's open, sized by the risk guard."""
    if decision.action == Action.CLOSE:
        if account.holding is not None:
            account.close(time, fills.decimal(open_), "close")
        return
    if account.holding is not None or decision.stop_loss is None:
        return
    side = Side.BUY if decision.action == Action.OPEN_LONG else Side.SELL
    fill_price = float(account.model.fill_price(side, fills.decimal(open_)))
    # The guard sizes against the fill; the leverage asked for is the cap, as `max_leverage` means.
    asked = msgspec.structs.replace(decision, entry=fill_price, leverage=config.max_leverage, size=None)
    risk = RiskConfig(max_leverage=config.max_leverage, risk_per_trade_pct=config.risk_pct,
                      daily_loss_limit_pct=0.0, cost_reserve_pct=config.cost_reserve_pct)
    guarded = guard(asked, risk, AccountState(equity=account.equity(open_)), price=fill_price)
    if not guarded.vetoed:  # vetoed: a gap past the stop before the fill, or nothing left to risk
        account.open(time, open_, guarded.decision)


def _buy_and_hold(closes: np.ndarray, lows: np.ndarray, config: BacktestConfig) -> tuple[np.ndarray, np.ndarray]:
    """Equity of buying at the first close and selling at the last, through the same fill model, marked at
    the closes and at the lows."""
    model = fills.FillModel.from_bps(config.fee_bps, config.slippage_bps)
    equity, first, last = fills.decimal(config.equity), fills.decimal(closes[0]), fills.decimal(closes[-1])
    bought = model.market(Side.BUY, equity / (model.fill_price(Side.BUY, first) * (1 + model.fee_rate)), first)
    left = equity + bought.cash_flow - bought.fee  # what the rounding of the amount left in cash
    sold = model.market(Side.SELL, bought.amount, last)
    size, cash = float(bought.amount), float(left)
    curve = np.r_[config.equity, cash + size * closes]
    curve[-1] = float(left + sold.cash_flow - sold.fee)
    worst = np.r_[config.equity, cash + size * lows]
    worst[1] = config.equity  # bought at the first candle's close: its low came before
    return curve, np.minimum(worst, curve)


# ---- CLI ---------------------------------------------------------------------------------------


def _weights(text: str) -> dict[AgentName, float]:
    weights: dict[AgentName, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        weights[AgentName(name.strip())] = float(value)
    return weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="CSV of candles: timestamp,open,high,low,close,volume")
    parser.add_argument("--symbol", help="symbol, e.g. ETH/BTC (default: from the file name)")
    parser.add_argument("--timeframes", help="comma-separated; the first is the trading timeframe "
                        "(default: the file's own, and up to two higher ones, e.g. 5m,15m,1h)")
    parser.add_argument("--fee-bps", type=float, default=10.0, help="fee per fill in basis points")
    parser.add_argument("--slippage-bps", type=float, default=5.0, help="slippage per fill in basis points")
    parser.add_argument("--equity", type=float, default=10_000.0, help="starting equity in quote currency")
    parser.add_argument("--risk-pct", type=float, default=1.0, help="percent of equity risked per trade")
    parser.add_argument("--warmup", type=int, default=300, help="trading candles before the first decision")
    parser.add_argument("--max-leverage", type=float, default=1.0, help="notional cap as a multiple of equity")
    parser.add_argument("--weights", type=_weights, help="agent weights, e.g. technical=0.5,fibonacci=0.3")
    parser.add_argument("--no-short", action="store_true", help="long only, even on a derivatives market")
    parser.add_argument("--derivatives", action="store_true",
                        help="may short although the symbol is spot (default: only BASE/QUOTE:SETTLE shorts)")
    parser.add_argument("--trades", action="store_true", help="also list every trade")
    gpt = parser.add_argument_group("the GPT brain (a backtest never calls a model silently)")
    gpt.add_argument("--brain", choices=("rules", "gpt"), default="rules", help="who proposes (default: rules)")
    gpt.add_argument("--replay", type=Path, help="replay the model's answers from this recording, calling nothing")
    gpt.add_argument("--record", type=Path, help="call the model at --base-url and record its answers here")
    gpt.add_argument("--base-url", help="the model's OpenAI-compatible base URL, for --record")
    gpt.add_argument("--model", default="gpt-4o-mini", help="model name, for --record (default gpt-4o-mini)")
    gpt.add_argument("--api-key", default="", help="the model's API key, for --record")
    gpt.add_argument("--model-cutoff", help="the model's training cutoff, YYYY-MM-DD (default: the known one)")
    add_rules_arguments(parser)


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}%"


def _ratio(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def verdict(result: BacktestResult) -> str:
    """One plain sentence: does the strategy beat doing nothing, after costs, on these candles?"""
    s, b = result.strategy, result.buy_and_hold
    if not result.trades:
        return ("Verdict: it never traded on these candles (its filters found no entry worth the costs), so it "
                "kept 0 % as doing nothing does.")
    if s.total_return <= 0:
        return (f"Verdict: after costs this strategy lost {abs(s.total_return) * 100:.2f} % where doing nothing kept "
                f"0 %: do not run it live.")
    versus = "beat" if s.total_return > b.total_return else "trailed"
    return (f"Verdict: after costs it made {_pct(s.total_return)}, {versus} buying and holding "
            f"({_pct(b.total_return)}), "
            f"with a max drawdown of {s.max_drawdown * 100:.1f} % against {b.max_drawdown * 100:.1f} %; "
            "a past figure on candles that chose the settings is in-sample.")


def format_report(result: BacktestResult, config: BacktestConfig) -> str:
    """The printout of `quorum backtest`: the strategy next to buy-and-hold and doing nothing, then a verdict."""
    from datetime import UTC, datetime

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")

    s, b, z = result.strategy, result.buy_and_hold, result.do_nothing

    def row(name: str, cells: tuple[str, str, str]) -> str:
        return f"{name:16}" + "".join(f"{c:>14}" for c in cells)

    quote = result.symbol.split("/")[-1].split(":")[0]
    lines = [
        f"{result.symbol} {','.join(config.timeframes)}  {when(result.start_ms)} → {when(result.end_ms)} UTC"
        f"  ({result.bars} {result.timeframe} candles after {config.warmup} warmup)",
        f"fees {config.fee_bps:g} bps, slippage {config.slippage_bps:g} bps per fill; orders fill at the next "
        f"candle's open; risk {config.risk_pct:g}% of equity per trade; equity {config.equity:g} {quote}",
        "",
        row("", ("rules brain", "buy & hold", "do nothing")),
        row("total return", (_pct(s.total_return), _pct(b.total_return), _pct(z.total_return))),
        row("CAGR", (_pct(s.cagr), _pct(b.cagr), _pct(z.cagr))),
        row("max drawdown", tuple(_pct(-x.max_drawdown) if x.max_drawdown else _pct(0.0) for x in (s, b, z))),
        row("sharpe (ann.)", (f"{s.sharpe:.2f}", f"{b.sharpe:.2f}", f"{z.sharpe:.2f}")),
        row("sortino (ann.)", (f"{s.sortino:.2f}", f"{b.sortino:.2f}", f"{z.sortino:.2f}")),
        row("exposure", (f"{result.exposure * 100:.1f}%", "100.0%", "0.0%")),
        row("trades", (str(result.n_trades), "1", "0")),
        row("win rate", (f"{result.win_rate * 100:.1f}%", "", "")),
        row("profit factor", (_ratio(result.profit_factor), "", "")),
        row("fees paid", (f"{result.fees:.6g}", "", "0")),
        row("slippage paid", (f"{result.slippage:.6g}", "", "0")),
    ]
    if result.trades:
        by_reason: dict[str, int] = {}
        for t in result.trades:
            by_reason[t.exit_reason] = by_reason.get(t.exit_reason, 0) + 1
        lines.append("exits: " + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())))
    lines += ["", verdict(result)]
    return "\n".join(lines)


def default_timeframes(timeframe: str) -> tuple[str, ...]:
    """The trading timeframe of a file and up to two higher ones to read with it: the first at least 3x it,
    the next at least 4x that (5m -> 5m,15m,1h; 1h -> 1h,4h,1d; 2h -> 2h,1d)."""
    chosen = [timeframe]
    for name, ms in sorted(TIMEFRAME_MS.items(), key=lambda kv: kv[1]):
        last = TIMEFRAME_MS[chosen[-1]]
        if len(chosen) < 3 and ms % last == 0 and ms >= (3 if len(chosen) == 1 else 4) * last:
            chosen.append(name)
    return tuple(chosen)


def _gpt_replay(args: argparse.Namespace) -> GptReplay | None:
    """The recorded GPT brain the options ask for; None for the rules brain."""
    if args.brain != "gpt":
        if args.replay or args.record:
            raise BacktestSetupError("--replay and --record are for --brain gpt")
        return None
    if bool(args.replay) == bool(args.record):
        raise BacktestSetupError("--brain gpt needs a recording: --replay FILE, or --record FILE --base-url URL "
                                 "to make one (a backtest never calls a model silently)")
    if args.replay:
        return GptReplay(ModelRecording.load(args.replay))
    if not args.base_url:
        raise BacktestSetupError("--record needs the model's --base-url")
    recording = ModelRecording(model=args.model, cutoff=args.model_cutoff or cutoff_of(args.model))
    return GptReplay(recording, record_from=args.base_url, api_key=args.api_key)


def run(args: argparse.Namespace) -> int:
    from workers.market.replay import read_candles

    try:
        candles = read_candles(args.data, symbol=args.symbol)
    except (OSError, ValueError) as exc:  # missing file, unparsable name or rows
        print(f"quorum backtest: {exc}", file=sys.stderr)
        return 2
    timeframes = (tuple(tf.strip() for tf in args.timeframes.split(",") if tf.strip()) if args.timeframes
                  else default_timeframes(candles.timeframe))
    config = BacktestConfig(
        symbol=args.symbol,
        timeframes=timeframes,
        fee_bps=args.fee_bps,
        slippage_bps=args.slippage_bps,
        equity=args.equity,
        risk_pct=args.risk_pct,
        max_leverage=args.max_leverage,
        warmup=args.warmup,
        weights=args.weights,
        rules=rules_from_args(args, allow_short=not args.no_short),
        derivatives=True if args.derivatives else None,
    )
    try:
        gpt = _gpt_replay(args)
        result = run_backtest(candles, config, gpt=gpt)
    except (BacktestSetupError, RecordingMiss, OSError, msgspec.DecodeError) as exc:
        print(f"quorum backtest: {exc}", file=sys.stderr)
        return 2
    print(format_report(result, config))
    if gpt is not None:
        gpt.close()
        if args.record:
            gpt.recording.save(args.record)
        print("\n".join(gpt.summary(result.start_ms)))
    if args.trades:
        for t in result.trades:
            print(
                f"{t.side.value:5} {t.entry_time} @ {t.entry_price:.8g} → {t.exit_time} @ {t.exit_price:.8g}"
                f"  pnl {t.pnl:+.2f}  ({t.exit_reason})"
            )
    return 0
