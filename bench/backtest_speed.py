"""How long a year of 5m candles takes through the whole backtest, next to a bare TA-Lib pass over them.

The year: the two recorded 5m files (ETH/BTC, then ADA/BTC, with ADA's gaps kept) laid end to end
and repeated until there are 105,120 candles (365 days of 5m). Each piece is rescaled so its first
open meets the previous piece's last close and its timestamps are shifted to follow on, so the
series is one continuous market with no price jump at the joins; it is real price movement
replayed, not invented candles.

Both timings run in the same process, one after the other, on one core:
- the backtest: `run_backtest` with its defaults (5m trading, 15m and 1h for trend), so every
  candle goes through the full analysis (technical, fibonacci, gann, sentiment, positions), the
  rules brain and the fill simulation;
- bare TA-Lib: the indicators that analysis reads (RSI, MACD, EMA 20/50, Bollinger, ATR on 5m; EMA
  20/50 and ATR on 15m and 1h), each computed once over the same candles.
The ratio of the two is the figure to watch. Run: `uv run python bench/backtest_speed.py`
(`--candles N` for a shorter series). It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import talib
from analysis_speed import indicator_set

from workers.backtest import BacktestConfig, run_backtest
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.replay import default_ohlcv_dir, read_candles
from workers.market.resample import resample

YEAR_OF_5M = 365 * 24 * 12


def year_of_5m(count: int = YEAR_OF_5M) -> Candles:
    """ETH/BTC and ADA/BTC 5m candles end to end, rescaled and re-timed into one series of `count` candles."""
    folder = default_ohlcv_dir()
    pieces = [read_candles(folder / "ETH_BTC-5m.csv"), read_candles(folder / "ADA_BTC-5m.csv")]
    step = TIMEFRAME_MS["5m"]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("timestamp", "open", "high", "low", "close", "volume")}
    total, last_close, next_ts, k = 0, None, int(pieces[0].timestamp[0]), 0
    while total < count:
        p = pieces[k % len(pieces)]
        k += 1
        scale = 1.0 if last_close is None else last_close / float(p.open[0])
        cols["timestamp"].append(p.timestamp - p.timestamp[0] + next_ts)
        for name in ("open", "high", "low", "close"):
            cols[name].append(getattr(p, name) * scale)
        cols["volume"].append(p.volume)
        total += len(p)
        last_close = float(p.close[-1]) * scale
        next_ts = int(cols["timestamp"][-1][-1]) + step
    joined = {name: np.concatenate(parts)[:count] for name, parts in cols.items()}
    return Candles("ETH/BTC+ADA/BTC", "5m", **joined)


def talib_pass(candles: Candles, timeframes: tuple[str, ...]) -> None:
    """The indicators the analysis reads, once over each timeframe of `candles` (resampling included)."""
    series = {tf: candles if tf == candles.timeframe else resample(candles, tf) for tf in timeframes}
    indicator_set(series)()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=YEAR_OF_5M, help="5m candles to replay (default: a year)")
    args = parser.parse_args()
    candles = year_of_5m(args.candles)
    config = BacktestConfig()
    days = (int(candles.timestamp[-1]) - int(candles.timestamp[0])) / 86_400_000

    start = time.perf_counter()
    result = run_backtest(candles, config)
    backtest_s = time.perf_counter() - start

    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        talib_pass(candles, config.timeframes)
    talib_s = (time.perf_counter() - start) / runs

    print(f"python {platform.python_version()}, numpy {np.__version__}, TA-Lib {talib.__ta_version__.decode()}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (the run uses one)")
    print(
        f"candles: {len(candles)} of 5m ({days:.0f} days): ETH/BTC and ADA/BTC 5m end to end, rescaled, repeated;"
        f" timeframes {','.join(config.timeframes)}"
    )
    print(f"decisions: {len(result.decisions)}, trades: {result.n_trades}")
    print()
    print(f"{'full backtest (analysis, rules brain, fills)':<48}{backtest_s:10.3f} s")
    print(f"{'bare TA-Lib pass, same candles (mean of 20)':<48}{talib_s * 1e3:10.3f} ms")
    print(f"{'backtest / TA-Lib':<48}{backtest_s / talib_s:10.0f} x")
    print(f"{'candles per second':<48}{len(candles) / backtest_s:10.0f}")
    print(f"{'microseconds per decision':<48}{backtest_s / len(result.decisions) * 1e6:10.1f}")


if __name__ == "__main__":
    main()
