"""How the default strategy is chosen, and how it does on candles the choice never saw.

Each market is split in two, by time: a development part and a held-out part after it.
- BTC/USDT 2h (`$QUORUM_DATA_DIR/history/BTC_USDT-2h.csv`): development 2017-08 → 2020-12, held out 2021.
- ETH/BTC and ADA/BTC 5m (the repository's `data/ohlcv`): the first 60 % and the last 40 % of each file.

1. On each development part, `walk_forward` (workers/walk_forward.py, its grid and seed) chooses the rules
   brain's parameters on each training window and scores them on the next; its chained test windows are
   printed (out of sample, but within the development part).
2. Two rules pick one fixed parameter set from every training window of every market:
   - "mean rank": the best mean rank (ranked within each window by Sharpe after costs, so the 5m and 2h
     scales do not matter), the rule chosen first;
   - "safest": the best worst training window (maximin of the return after costs), the rule for when nothing
     clears the bar. The default of `RulesParams` is this one: see README, "The default strategy".
3. Each is then backtested on each held-out part (with the warmup candles just before it) next to
   buy-and-hold: these are the figures that count. (The "safest" rule was added after the "mean rank"
   choice had failed on the held-out parts, so its held-out figures are less clean than the first's.)
Run: `uv run python bench/strategy_choice.py` (about three minutes on two cores). It prints; it is not a test.
"""

from __future__ import annotations

import datetime
import sys
from collections import defaultdict

import msgspec
import numpy as np

from quorum.settings import data_dir
from workers.backtest import BacktestConfig, default_timeframes, run_backtest
from workers.brain.rules import RulesParams
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.replay import read_candles
from workers.market.resample import resample
from workers.walk_forward import (
    DEFAULT_GRID,
    DEFAULT_SAMPLES,
    _backtest,
    _slice,
    candidates,
    default_windows,
    format_report,
    walk_forward,
)

HELD_OUT_FROM = int(datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC).timestamp() * 1000)


def markets() -> dict[str, tuple[Candles, int]]:
    """name -> (candles, the first held-out timestamp)."""
    out: dict[str, tuple[Candles, int]] = {}
    shared = data_dir().parent.parent / "shared" / "data" / "history" / "BTC_USDT-2h.csv"
    for path in (data_dir() / "history" / "BTC_USDT-2h.csv", shared):
        if path.exists():
            out["BTC/USDT 2h"] = (read_candles(path), HELD_OUT_FROM)
            break
    for name in ("ETH_BTC-5m", "ADA_BTC-5m"):
        c = read_candles(data_dir() / "ohlcv" / f"{name}.csv")
        out[f"{name.replace('_', '/')}"] = (c, int(c.timestamp[int(len(c) * 0.6)]))
    return out


def held_out(held: list[tuple[str, Candles, int, BacktestConfig]], chosen: dict[str, object]) -> None:
    print(f"{'held out':16}{'span':26}{'return':>9}{'sharpe':>8}{'max DD':>8}{'trades':>7}"
          f"{'B&H ret':>10}{'B&H sh':>8}{'B&H DD':>8}")
    for name, candles, split, config in held:
        tf_ms = TIMEFRAME_MS[config.timeframes[0]]
        bars = resample(candles, config.timeframes[0])
        first = int(np.searchsorted(bars.timestamp, split))
        start = int(bars.timestamp[max(0, first - config.warmup)])
        part = _slice(candles, start, int(bars.timestamp[-1]) + tf_ms)
        fixed = msgspec.structs.replace(config, rules=msgspec.structs.replace(RulesParams(), **chosen))
        r = run_backtest(part, fixed)
        s, b = r.strategy, r.buy_and_hold
        print(f"{name:16}{_day(r.start_ms) + ' → ' + _day(r.end_ms):26}{s.total_return * 100:+8.2f}%{s.sharpe:8.2f}"
              f"{s.max_drawdown * 100:7.1f}%{r.n_trades:7d}{b.total_return * 100:+9.2f}%{b.sharpe:8.2f}"
              f"{b.max_drawdown * 100:7.1f}%")


def _day(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d")


def main() -> None:
    points = candidates(DEFAULT_GRID, DEFAULT_SAMPLES, 0)
    ranks: dict[int, list[float]] = defaultdict(list)
    returns: dict[int, list[float]] = defaultdict(list)
    held: list[tuple[str, Candles, int, BacktestConfig]] = []
    for name, (candles, split) in markets().items():
        config = BacktestConfig(timeframes=default_timeframes(candles.timeframe))
        dev = _slice(candles, 0, split)
        count = len(resample(dev, config.timeframes[0]))
        train, test = default_windows(count, config.timeframes[0], config.warmup)
        result = walk_forward(dev, config, train=train, test=test)
        print(f"== {name}: development part, walk-forward (train {train}, test {test} candles)")
        print(format_report(result))
        print()
        # every training window again, every candidate, for the ranks
        bars = resample(dev, config.timeframes[0])
        tf_ms = TIMEFRAME_MS[config.timeframes[0]]
        configs = [msgspec.structs.replace(config, rules=msgspec.structs.replace(config.rules, **p)) for p in points]
        for w in result.windows:
            first = int(np.searchsorted(bars.timestamp + tf_ms, w.train_start_ms))
            window = _slice(dev, int(bars.timestamp[first - config.warmup]), w.test_start_ms - tf_ms)
            runs = [_backtest((window, c)) for c in configs]
            order = np.argsort(np.argsort([-run[0] for run in runs], kind="stable"), kind="stable")
            for k, r in enumerate(order):
                ranks[k].append(float(r))
                returns[k].append(runs[k][1].total_return)
        held.append((name, candles, split, config))

    by_rank = min(ranks, key=lambda k: (float(np.mean(ranks[k])), k))
    safest = max(returns, key=lambda k: (min(returns[k]), float(np.mean(returns[k])), -k))
    for label, k in (("mean rank", by_rank), ("safest", safest)):
        chosen = points[k]
        print(f"== {label}: {', '.join(f'{name}={v}' for name, v in chosen.items())}")
        print(f"   mean rank {np.mean(ranks[k]):.1f} of {len(points)}, worst training window "
              f"{min(returns[k]) * 100:+.2f}%, over {len(ranks[k])} windows")
        held_out(held, chosen)
        print()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
