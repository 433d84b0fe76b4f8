"""`quorum backtest`: replay recorded candles through the agents, the rules brain and simulated fills.

The core is `run_backtest(candles_5m, config) -> BacktestResult`, a pure function (no I/O) so tests
call it directly; `add_arguments` / `run` are the CLI around it.

Simulation rules
----------------
* The trading timeframe is the first of `config.timeframes`; the others are resampled from the input
  once, and at every decision time only their buckets closed by then are shown (`Candles.upto`), so
  a decision taken at the close of candle t never sees candle t+1 or an unfinished higher bucket.
* A decision is taken at the close of every trading candle after `warmup` candles; orders fill at
  that candle's close, moved against us by `slippage_bps`, and pay `fee_bps` of the notional.
* Stops and take-profits are checked on the high/low of the following candles. A candle that opens
  through the stop fills at its open; if one candle touches both the stop and the take-profit, the
  stop is assumed to have been hit first (conservative). Slippage and fees apply to these exits too.
* Size risks `risk_pct` of the current equity between entry and stop, capped so the notional stays
  within `max_leverage` x equity. A position still open at the end is closed at the last close.

Figures
-------
Total return and max drawdown come from the equity marked at every trading candle's close. Sharpe is
the mean over the standard deviation of those per-candle returns (risk-free rate 0) times
sqrt(candles per year); crypto trades around the clock, so a year is 365 x 24 h (105,120 five-minute
candles). Missing candles (gaps) are simply absent, not counted as flat returns. Buy-and-hold buys at
the first decision candle's close and sells at the last close, with the same fees and slippage.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np

from workers.agents.insight import AgentName, Headline, Insight, OpenPosition, PositionSide
from workers.brain.decision import Action, Decision
from workers.brain.rules import RulesBrain, RulesParams
from workers.market.candles import TIMEFRAME_MS, Candles

YEAR_MS = 365 * 24 * 3_600_000

# analyse_symbol's signature: (symbol, candles by timeframe, headlines, positions, now_ms) -> insights.
Analyse = Callable[..., list[Insight]]


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
    warmup: int = 300  # trading candles before the first decision
    lookback: int = 300  # candles per timeframe handed to the agents
    weights: dict[AgentName, float] | None = None  # per-agent weights for the rules brain
    rules: RulesParams = RulesParams()


@dataclass(frozen=True, slots=True)
class Trade:
    side: PositionSide
    entry_time: int  # ms, close of the candle the entry filled at
    entry_price: float  # fill, after slippage
    exit_time: int
    exit_price: float
    size: float  # base units
    fees: float  # quote currency, both fills
    pnl: float  # quote currency, after fees
    exit_reason: str  # "stop", "take_profit", "close" (brain), "end"


@dataclass(frozen=True, slots=True)
class Performance:
    total_return: float  # fraction, 0.05 = +5 %
    max_drawdown: float  # fraction of the peak, 0.1 = -10 %
    sharpe: float  # annualised, see module docstring


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
    trades: tuple[Trade, ...]
    decisions: tuple[tuple[int, Decision], ...]  # (decision time in ms, decision), one per candle
    equity_curve: np.ndarray = field(repr=False)  # marked at each trading candle's close

    @property
    def n_trades(self) -> int:
        return len(self.trades)

    @property
    def win_rate(self) -> float:
        return sum(t.pnl > 0 for t in self.trades) / len(self.trades) if self.trades else 0.0


def performance(equity: np.ndarray, bars_per_year: float) -> Performance:
    """Total return, max drawdown and annualised Sharpe of an equity curve."""
    if len(equity) < 2:
        return Performance(0.0, 0.0, 0.0)
    total = float(equity[-1] / equity[0] - 1.0)
    peaks = np.maximum.accumulate(equity)
    drawdown = float(np.max(1.0 - equity / peaks))
    returns = np.diff(equity) / equity[:-1]
    std = float(np.std(returns, ddof=1))
    sharpe = float(np.mean(returns)) / std * math.sqrt(bars_per_year) if std > 0 else 0.0
    return Performance(total, drawdown, sharpe)


@dataclass(slots=True)
class _Position:
    side: PositionSide
    entry_time: int
    entry_price: float
    size: float
    entry_fee: float
    stop: float
    take_profit: float | None

    @property
    def sign(self) -> float:
        return 1.0 if self.side == PositionSide.LONG else -1.0


class _Account:
    """Cash plus at most one position; every fill pays slippage and fees."""

    def __init__(self, equity: float, fee_bps: float, slippage_bps: float) -> None:
        self.cash = equity
        self.fee = fee_bps / 10_000
        self.slip = slippage_bps / 10_000
        self.position: _Position | None = None
        self.trades: list[Trade] = []

    def equity(self, price: float) -> float:
        p = self.position
        return self.cash if p is None else self.cash + p.sign * p.size * price

    def fill_price(self, price: float, buying: bool) -> float:
        return price * (1 + self.slip) if buying else price * (1 - self.slip)

    def open(self, side: PositionSide, time: int, price: float, size: float, stop: float, tp: float | None):
        sign = 1.0 if side == PositionSide.LONG else -1.0
        fill = self.fill_price(price, buying=sign > 0)
        fee = size * fill * self.fee
        self.cash -= sign * size * fill + fee
        self.position = _Position(side, time, fill, size, fee, stop, tp)

    def close(self, time: int, price: float, reason: str) -> None:
        p = self.position
        assert p is not None
        fill = self.fill_price(price, buying=p.sign < 0)
        fee = p.size * fill * self.fee
        self.cash += p.sign * p.size * fill - fee
        pnl = p.sign * p.size * (fill - p.entry_price) - p.entry_fee - fee
        fees = p.entry_fee + fee
        self.trades.append(Trade(p.side, p.entry_time, p.entry_price, time, fill, p.size, fees, pnl, reason))
        self.position = None


def _exit_within(p: _Position, open_: float, high: float, low: float) -> tuple[float, str] | None:
    """Where a candle takes the position out, if it does; the stop wins when both are touched."""
    if p.side == PositionSide.LONG:
        if low <= p.stop:
            return min(open_, p.stop), "stop"
        if p.take_profit is not None and high >= p.take_profit:
            return p.take_profit, "take_profit"
    else:
        if high >= p.stop:
            return max(open_, p.stop), "stop"
        if p.take_profit is not None and low <= p.take_profit:
            return p.take_profit, "take_profit"
    return None


def _tighten_stop(p: _Position, stop: float, price: float) -> None:
    """Move the stop to `stop` if that is tighter and still on the right side of `price`; never loosen it."""
    if (p.stop < stop < price) if p.sign > 0 else (price < stop < p.stop):
        p.stop = stop


def _size(equity: float, entry: float, stop: float, risk_pct: float, max_leverage: float) -> float:
    risk_per_unit = abs(entry - stop)
    if risk_per_unit <= 0 or entry <= 0 or equity <= 0:
        return 0.0
    return min(equity * risk_pct / 100 / risk_per_unit, equity * max_leverage / entry)


def _default_analyse() -> Analyse:
    from workers.agents.analysis import analyse_symbol

    return analyse_symbol


def run_backtest(
    candles_5m: Candles,
    config: BacktestConfig = BacktestConfig(),
    *,
    analyse: Analyse | None = None,
    headlines: Sequence[Headline] = (),
) -> BacktestResult:
    """Replay `candles_5m` through the agents (default: analyse_symbol), the rules brain and fills."""
    from workers.market.resample import resample

    analyse = analyse or _default_analyse()
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

    brain = RulesBrain(config.weights, config.rules)
    account = _Account(config.equity, config.fee_bps, config.slippage_bps)
    ts, op, hi, lo, cl = bars.timestamp, bars.open, bars.high, bars.low, bars.close
    decisions: list[tuple[int, Decision]] = []
    equity_curve = np.empty(n - config.warmup)

    for i in range(config.warmup, n):
        now = int(ts[i]) + tf_ms  # the close of candle i: the decision's moment
        price = float(cl[i])

        p = account.position
        if p is not None:
            hit = _exit_within(p, float(op[i]), float(hi[i]), float(lo[i]))
            if hit is not None:
                account.close(now, hit[0], hit[1])

        views = {tf: s.upto(now).tail(config.lookback) for tf, s in series.items()}
        p = account.position
        held = (
            OpenPosition(symbol, p.side, p.entry_price, p.size, p.entry_time, p.stop, p.take_profit)
            if p is not None
            else None
        )
        insights = analyse(symbol, views, headlines=headlines, positions=(held,) if held else (), now_ms=now)
        decision = brain.decide(symbol, insights, position=held, price=price)
        decisions.append((now, decision))

        if p is not None:
            if decision.action == Action.CLOSE:
                account.close(now, price, "close")
            elif decision.action == Action.HOLD and decision.stop_loss is not None:
                _tighten_stop(p, decision.stop_loss, price)
        elif decision.action in (Action.OPEN_LONG, Action.OPEN_SHORT) and decision.stop_loss is not None:
            side = PositionSide.LONG if decision.action == Action.OPEN_LONG else PositionSide.SHORT
            fill = account.fill_price(price, buying=side == PositionSide.LONG)
            right_side = decision.stop_loss < fill if side == PositionSide.LONG else decision.stop_loss > fill
            size = _size(account.equity(price), fill, decision.stop_loss, config.risk_pct, config.max_leverage)
            if right_side and size > 0:
                account.open(side, now, price, size, decision.stop_loss, decision.take_profit)

        equity_curve[i - config.warmup] = account.equity(price)

    end = int(ts[-1]) + tf_ms
    if account.position is not None:
        account.close(end, float(cl[-1]), "end")
        equity_curve[-1] = account.cash

    bars_per_year = YEAR_MS / tf_ms
    start_equity = np.r_[config.equity, equity_curve]
    return BacktestResult(
        symbol=symbol,
        timeframe=trading_tf,
        start_ms=int(ts[config.warmup]) + tf_ms,
        end_ms=end,
        bars=n - config.warmup,
        bars_per_year=bars_per_year,
        strategy=performance(start_equity, bars_per_year),
        buy_and_hold=performance(_buy_and_hold(cl[config.warmup :], config), bars_per_year),
        trades=tuple(account.trades),
        decisions=tuple(decisions),
        equity_curve=start_equity,
    )


def _buy_and_hold(closes: np.ndarray, config: BacktestConfig) -> np.ndarray:
    """Equity of buying at the first close and selling at the last, with the same fees and slippage."""
    fee, slip = config.fee_bps / 10_000, config.slippage_bps / 10_000
    entry = closes[0] * (1 + slip)
    size = config.equity / (entry * (1 + fee))
    curve = np.r_[config.equity, size * closes]
    curve[-1] = size * closes[-1] * (1 - slip) * (1 - fee)
    return curve


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
    parser.add_argument("--timeframes", default="5m,15m,1h", help="comma-separated; the first is the trading timeframe")
    parser.add_argument("--fee-bps", type=float, default=10.0, help="fee per fill in basis points")
    parser.add_argument("--slippage-bps", type=float, default=5.0, help="slippage per fill in basis points")
    parser.add_argument("--equity", type=float, default=10_000.0, help="starting equity in quote currency")
    parser.add_argument("--risk-pct", type=float, default=1.0, help="percent of equity risked per trade")
    parser.add_argument("--warmup", type=int, default=300, help="trading candles before the first decision")
    parser.add_argument("--lookback", type=int, default=300, help="candles per timeframe given to the agents")
    parser.add_argument("--max-leverage", type=float, default=1.0, help="notional cap as a multiple of equity")
    parser.add_argument("--weights", type=_weights, help="agent weights, e.g. technical=0.5,fibonacci=0.3")
    parser.add_argument("--no-short", action="store_true", help="long only (spot)")
    parser.add_argument("--trades", action="store_true", help="also list every trade")


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}%"


def format_report(result: BacktestResult, config: BacktestConfig) -> str:
    """The printout of `quorum backtest`: strategy next to buy-and-hold on the same candles."""
    from datetime import UTC, datetime

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")

    s, b = result.strategy, result.buy_and_hold
    lines = [
        f"{result.symbol} {','.join(config.timeframes)}  {when(result.start_ms)} → {when(result.end_ms)} UTC"
        f"  ({result.bars} {result.timeframe} candles after {config.warmup} warmup)",
        f"fees {config.fee_bps:g} bps, slippage {config.slippage_bps:g} bps per fill; "
        f"risk {config.risk_pct:g}% of equity per trade; equity {config.equity:g}",
        "",
        f"{'':16}{'rules brain':>14}{'buy & hold':>14}",
        f"{'total return':16}{_pct(s.total_return):>14}{_pct(b.total_return):>14}",
        f"{'max drawdown':16}{_pct(-s.max_drawdown):>14}{_pct(-b.max_drawdown):>14}",
        f"{'sharpe (ann.)':16}{s.sharpe:>14.2f}{b.sharpe:>14.2f}",
        f"{'win rate':16}{result.win_rate * 100:>13.1f}%{'':>14}",
        f"{'trades':16}{result.n_trades:>14d}{1:>14d}",
    ]
    if result.trades:
        by_reason: dict[str, int] = {}
        for t in result.trades:
            by_reason[t.exit_reason] = by_reason.get(t.exit_reason, 0) + 1
        lines.append("exits: " + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from workers.market.replay import read_candles

    timeframes = tuple(tf.strip() for tf in args.timeframes.split(",") if tf.strip())
    config = BacktestConfig(
        symbol=args.symbol,
        timeframes=timeframes,
        fee_bps=args.fee_bps,
        slippage_bps=args.slippage_bps,
        equity=args.equity,
        risk_pct=args.risk_pct,
        max_leverage=args.max_leverage,
        warmup=args.warmup,
        lookback=args.lookback,
        weights=args.weights,
        rules=RulesParams(allow_short=not args.no_short),
    )
    try:
        candles = read_candles(args.data, symbol=args.symbol)
    except (OSError, ValueError) as exc:  # missing file, unparsable name or rows
        print(f"quorum backtest: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_backtest(candles, config)
    except BacktestSetupError as exc:
        print(f"quorum backtest: {exc}", file=sys.stderr)
        return 2
    print(format_report(result, config))
    if args.trades:
        for t in result.trades:
            print(
                f"{t.side.value:5} {t.entry_time} @ {t.entry_price:.8g} → {t.exit_time} @ {t.exit_price:.8g}"
                f"  pnl {t.pnl:+.2f}  ({t.exit_reason})"
            )
    return 0
