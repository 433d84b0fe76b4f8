"""`quorum walk-forward`: choose the rules brain's parameters on a window of the past, score them on the window
that follows, roll forward, and report only what the chosen parameters did on windows they had not seen.

The trading candles (the first timeframe of the configuration) are cut into consecutive test windows of
`test` candles; before each, the `train` candles just ahead of it are the training window. Every candidate
of the parameter search is backtested on the training window; the one with the best score there (annualised
Sharpe after costs; a candidate that never trades scores 0, so on a market where trading loses the search
learns not to) is backtested on the test window. Each backtest is `run_backtest` itself, with `warmup`
candles before its window for the indicators and no decision taken in them, so a test window's figures
come from candles its choice never saw. The out-of-sample figures chain the test windows' equity curves;
buy-and-hold and doing nothing are measured over the same candles.

The search is a seeded random sample of `samples` points from `DEFAULT_GRID` (all of it when `samples`
covers the grid), run on every CPU; the same seed gives the same choices. Figures printed are out of
sample; the parameters chosen are printed per window, so a reader sees which of them survived.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import msgspec
import numpy as np

from workers.backtest import (
    YEAR_MS,
    BacktestConfig,
    BacktestSetupError,
    Performance,
    default_timeframes,
    performance,
    run_backtest,
)
from workers.brain.rules import RulesParams
from workers.market.candles import TIMEFRAME_MS, Candles

# The rules brain's parameters the search may move, and the values it tries. Few on purpose: each one
# searched is a chance to fit noise.
DEFAULT_GRID: dict[str, tuple[object, ...]] = {
    "follow_regime": (False, True),  # enter on the agents' consensus, or with the slowest timeframe's trend
    "regime_trend": (None, 0.2, 0.4),  # the trend filter (None: none)
    "min_edge": (0.0, 2.0, 3.0),  # ATR in round trips of costs needed to enter
    "min_stop_atr": (1.5, 3.0),  # the stop's nearest distance, in ATR
    "min_reward_risk": (1.5, 3.0),  # the target's nearest distance, in R
    "max_reward_risk": (4.0, 8.0),  # and its farthest
}
DEFAULT_SAMPLES = 32


class WalkForwardError(ValueError):
    """The candles are too short for one training and one test window."""


@dataclass(frozen=True, slots=True)
class Window:
    train_start_ms: int  # close of the first training candle
    test_start_ms: int  # close of the first test candle
    test_end_ms: int  # close of the last test candle
    params: dict[str, object]  # the candidate chosen on the training window
    train_sharpe: float
    test: Performance
    test_trades: int


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    symbol: str
    timeframe: str
    windows: tuple[Window, ...]
    strategy: Performance  # the test windows chained
    buy_and_hold: Performance  # over the same candles
    do_nothing: Performance
    trades: int
    candidates: int


def candidates(grid: Mapping[str, Sequence[object]], samples: int, seed: int) -> list[dict[str, object]]:
    """`samples` distinct points of `grid`, drawn with `seed` (every point when the grid is no larger)."""
    names = list(grid)
    points = [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]
    if samples >= len(points):
        return points
    return random.Random(seed).sample(points, samples)  # noqa: S311 - a reproducible sample, not a secret


def _slice(candles: Candles, start_ms: int, end_ms: int) -> Candles:
    """The input candles whose open lies in [start_ms, end_ms)."""
    lo, hi = np.searchsorted(candles.timestamp, [start_ms, end_ms], side="left")
    return Candles(
        candles.symbol, candles.timeframe, candles.timestamp[lo:hi], candles.open[lo:hi], candles.high[lo:hi],
        candles.low[lo:hi], candles.close[lo:hi], candles.volume[lo:hi],
    )


def _backtest(args: tuple[Candles, BacktestConfig]) -> tuple[float, Performance, int, np.ndarray, np.ndarray]:
    candles, config = args
    result = run_backtest(candles, config)
    return result.strategy.sharpe, result.strategy, result.n_trades, result.equity_curve, result.worst_curve


def walk_forward(
    candles: Candles,
    base: BacktestConfig,
    *,
    train: int,
    test: int,
    grid: Mapping[str, Sequence[object]] = DEFAULT_GRID,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    processes: int | None = None,
) -> WalkForwardResult:
    """Roll a training window of `train` trading candles and a test window of `test` after it over `candles`."""
    from workers.market.resample import resample

    tf = base.timeframes[0]
    tf_ms = TIMEFRAME_MS[tf]
    try:
        bars = resample(candles, tf)
    except ValueError as exc:
        raise WalkForwardError(str(exc)) from exc
    n, warmup = len(bars), base.warmup
    if train <= 1 or test <= 1 or n < warmup + train + test:
        raise WalkForwardError(
            f"{n} {tf} candles: a walk-forward needs warmup {warmup} + train {train} + test {test} at least"
        )
    points = candidates(grid, samples, seed)
    configs = [msgspec.structs.replace(base, rules=msgspec.structs.replace(base.rules, **p)) for p in points]
    ts = bars.timestamp
    windows: list[Window] = []
    oos_curves: list[np.ndarray] = []
    oos_worst: list[np.ndarray] = []
    trades = 0
    first_test = warmup + train
    with ProcessPoolExecutor(processes or os.cpu_count() or 1) as pool:
        for test_start in range(first_test, n - test + 1, test):
            train_start = test_start - train

            def span(first: int, last: int) -> Candles:  # trading candles first..last-1, after their warmup
                return _slice(candles, int(ts[first - warmup]), int(ts[last - 1]) + tf_ms)

            train_candles = span(train_start, test_start)
            scores = list(pool.map(_backtest, [(train_candles, c) for c in configs]))
            best = max(range(len(points)), key=lambda k: (_score(scores[k][0]), -scores[k][2], -k))
            sharpe, test_perf, test_trades, curve, worst = _backtest((span(test_start, test_start + test),
                                                                      configs[best]))
            trades += test_trades
            oos_curves.append(curve / curve[0])
            oos_worst.append(worst / curve[0])
            windows.append(
                Window(
                    train_start_ms=int(ts[train_start]) + tf_ms,
                    test_start_ms=int(ts[test_start]) + tf_ms,
                    test_end_ms=int(ts[test_start + test - 1]) + tf_ms,
                    params=points[best],
                    train_sharpe=scores[best][0],
                    test=test_perf,
                    test_trades=test_trades,
                )
            )
    equity, worst = _chain(oos_curves, oos_worst)
    bars_per_year = YEAR_MS / tf_ms
    last = first_test + len(windows) * test
    closes, lows = bars.close[first_test - 1 : last], bars.low[first_test - 1 : last]
    hold = _hold(closes, lows, base)
    return WalkForwardResult(
        symbol=base.symbol or candles.symbol,
        timeframe=tf,
        windows=tuple(windows),
        strategy=performance(equity, bars_per_year, worst),
        buy_and_hold=performance(hold[0], bars_per_year, hold[1]),
        do_nothing=performance(np.ones(len(equity)), bars_per_year),
        trades=trades,
        candidates=len(points),
    )


def _score(sharpe: float) -> float:
    return sharpe if math.isfinite(sharpe) else -math.inf


def _chain(curves: list[np.ndarray], worst: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The test windows' equity curves (each starting at 1) end to end, each starting where the last ended."""
    level = 1.0
    out, out_worst = [np.ones(1)], [np.ones(1)]
    for curve, low in zip(curves, worst, strict=True):
        out.append(level * curve[1:])
        out_worst.append(level * low[1:])
        level *= float(curve[-1])
    return np.concatenate(out), np.concatenate(out_worst)


def _hold(closes: np.ndarray, lows: np.ndarray, config: BacktestConfig) -> tuple[np.ndarray, np.ndarray]:
    """Buy at the close before the first test candle, sell at the last close, with one round trip of costs."""
    fee, slip = config.fee_bps / 10_000, config.slippage_bps / 10_000
    size = 1.0 / (closes[0] * (1 + slip) * (1 + fee))
    curve = size * closes
    curve[0] = 1.0
    curve[-1] = size * closes[-1] * (1 - slip) * (1 - fee)
    worst = np.minimum(size * lows, curve)
    worst[0] = 1.0
    return curve, worst


# ---- CLI ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="CSV of candles: timestamp,open,high,low,close,volume")
    parser.add_argument("--symbol", help="symbol, e.g. ETH/BTC (default: from the file name)")
    parser.add_argument("--timeframes", help="comma-separated, the first is the trading timeframe "
                        "(default: from the file)")
    parser.add_argument("--train", type=int, help="training candles per window "
                        "(default: half a year, or 2/5 of the file)")
    parser.add_argument("--test", type=int, help="test candles per window (default: a quarter, or 1/5 of the file)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="parameter sets tried per window")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameter sample")
    parser.add_argument("--fee-bps", type=float, default=10.0, help="fee per fill in basis points")
    parser.add_argument("--slippage-bps", type=float, default=5.0, help="slippage per fill in basis points")
    parser.add_argument("--warmup", type=int, default=300, help="candles before each window for the indicators")


def default_windows(candles: int, timeframe: str, warmup: int) -> tuple[int, int]:
    """(train, test): half a year and a quarter of trading candles when the file holds at least two years,
    else 2/5 and 1/5 of what follows the warmup (three test windows)."""
    per_year = YEAR_MS // TIMEFRAME_MS[timeframe]
    if candles - warmup >= 2 * per_year:
        return per_year // 2, per_year // 4
    usable = candles - warmup
    return usable * 2 // 5, usable // 5


def format_report(result: WalkForwardResult) -> str:
    from datetime import UTC, datetime

    def day(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")

    def pct(x: float) -> str:
        return f"{x * 100:+.2f}%"

    lines = [
        f"{result.symbol} {result.timeframe}: walk-forward over {len(result.windows)} test windows, "
        f"{result.candidates} parameter sets tried on each training window (best annualised Sharpe after costs)",
        "",
        f"{'test window':24}{'return':>10}{'sharpe':>8}{'trades':>8}  chosen on the window before",
    ]
    for w in result.windows:
        chosen = ", ".join(f"{k}={v}" for k, v in w.params.items())
        lines.append(
            f"{day(w.test_start_ms)} → {day(w.test_end_ms)}  {pct(w.test.total_return):>10}{w.test.sharpe:8.2f}"
            f"{w.test_trades:8d}  {chosen} (train Sharpe {w.train_sharpe:.2f})"
        )
    s, b, z = result.strategy, result.buy_and_hold, result.do_nothing
    lines += [
        "",
        "out of sample (the test windows chained):",
        f"{'':16}{'walk-forward':>14}{'buy & hold':>14}{'do nothing':>14}",
        f"{'total return':16}{pct(s.total_return):>14}{pct(b.total_return):>14}{pct(z.total_return):>14}",
        f"{'CAGR':16}{pct(s.cagr):>14}{pct(b.cagr):>14}{pct(z.cagr):>14}",
        f"{'max drawdown':16}{pct(-s.max_drawdown):>14}{pct(-b.max_drawdown):>14}{pct(0.0):>14}",
        f"{'sharpe (ann.)':16}{s.sharpe:14.2f}{b.sharpe:14.2f}{z.sharpe:14.2f}",
        f"{'trades':16}{result.trades:14d}{1:14d}{0:14d}",
    ]
    if s.total_return <= 0:
        lines.append(f"Verdict: out of sample the chosen parameters lost {abs(s.total_return) * 100:.2f} % where doing "
                     "nothing kept 0 %.")
    else:
        lines.append(f"Verdict: out of sample it made {pct(s.total_return)} against {pct(b.total_return)} for buying "
                     f"and holding, Sharpe {s.sharpe:.2f} against {b.sharpe:.2f}.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from workers.market.replay import read_candles
    from workers.market.resample import resample

    try:
        candles = read_candles(args.data, symbol=args.symbol)
    except (OSError, ValueError) as exc:
        print(f"quorum walk-forward: {exc}", file=sys.stderr)
        return 2
    timeframes = (tuple(tf.strip() for tf in args.timeframes.split(",") if tf.strip()) if args.timeframes
                  else default_timeframes(candles.timeframe))
    config = BacktestConfig(symbol=args.symbol, timeframes=timeframes, fee_bps=args.fee_bps,
                            slippage_bps=args.slippage_bps, warmup=args.warmup, rules=RulesParams())
    try:
        count = len(resample(candles, timeframes[0]))
        train, test = default_windows(count, timeframes[0], args.warmup)
        result = walk_forward(candles, config, train=args.train or train, test=args.test or test,
                              samples=args.samples, seed=args.seed)
    except (WalkForwardError, BacktestSetupError, ValueError) as exc:
        print(f"quorum walk-forward: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    return 0
