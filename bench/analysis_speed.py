"""How long the full analysis of one symbol takes, next to TA-Lib computing the same indicators.

Real ETH/BTC candles, the last 1000 of each of three timeframes (5m as recorded, 15m and 30m
resampled; the 5760 recorded 5m candles make only 960 of 30m), 20 real headlines and one open
position, so every agent runs: technical, fibonacci, gann, sentiment, positions.

Figures are medians (and minimums) of many interleaved runs, so compared figures share the same
machine load; the load average is printed with them.
Run: `uv run python bench/analysis_speed.py`. It prints figures; it is not a test.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import talib

from workers.agents.analysis import analyse_symbol
from workers.agents.fibonacci import fibonacci_insight
from workers.agents.gann import gann_insight
from workers.agents.insight import Headline, OpenPosition, PositionSide
from workers.agents.positions import positions_insight
from workers.agents.sentiment import sentiment_insight
from workers.agents.technical import technical_insight
from workers.market.candles import Candles
from workers.market.replay import default_ohlcv_dir, read_candles
from workers.market.resample import resample

RUNS = 400
WARMUP = 30
BARS = 1000


def load_inputs() -> tuple[dict[str, Candles], list[Headline], list[OpenPosition]]:
    five = read_candles(default_ohlcv_dir() / "ETH_BTC-5m.csv")
    candles = {tf: resample(five, tf).tail(BARS) for tf in ("5m", "15m", "30m")}
    now = int(five.timestamp[-1]) + 300_000
    news_file = Path(default_ohlcv_dir()).parent / "news" / "headlines_dev.json"
    rows = json.loads(news_file.read_text())[:20]
    headlines = [Headline(row["title"], published_at=now - i * 1_800_000) for i, row in enumerate(rows)]
    entry = candles["5m"].tail(120)
    position = OpenPosition(
        "ETH/BTC",
        PositionSide.LONG,
        float(entry.close[0]),
        1.5,
        int(entry.timestamp[0]),
        stop_loss=float(entry.close[0]) * 0.98,
    )
    return candles, headlines, [position]


def indicator_set(candles: dict[str, Candles]) -> Callable[[], None]:
    """The indicators the analysis reads, bare: the full set on the trading timeframe, trend inputs on the others."""
    trading, *others = candles.values()

    def run() -> None:
        c = trading
        talib.RSI(c.close, 14)
        talib.MACD(c.close, 12, 26, 9)
        talib.EMA(c.close, 20)
        talib.EMA(c.close, 50)
        talib.BBANDS(c.close, 20, 2.0, 2.0, 0)
        talib.ATR(c.high, c.low, c.close, 14)
        for o in others:
            talib.EMA(o.close, 20)
            talib.EMA(o.close, 50)
            talib.ATR(o.high, o.low, o.close, 14)

    return run


def interleaved(calls: dict[str, Callable[[], object]], runs: int = RUNS) -> dict[str, tuple[float, float]]:
    """(median, minimum) milliseconds of each call, alternating between them so load changes hit all alike."""
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    samples: dict[str, list[int]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter_ns()
            call()
            samples[name].append(time.perf_counter_ns() - start)
    return {name: (statistics.median(s) / 1e6, min(s) / 1e6) for name, s in samples.items()}


def main() -> None:
    candles, headlines, positions = load_inputs()
    sizes = ", ".join(f"{tf}: {len(c)}" for tf, c in candles.items())
    insights = analyse_symbol("ETH/BTC", candles, headlines, positions)
    agents = ", ".join(i.agent.value for i in insights)

    trading = candles["5m"]
    now = int(trading.timestamp[-1]) + 300_000
    atr = technical_insight("ETH/BTC", candles).values["atr"]
    price = float(trading.close[-1])
    # Everything in one interleaved loop, so the figures compared share the same machine load.
    t = interleaved(
        {
            "full analysis of one symbol (every agent)": lambda: analyse_symbol(
                "ETH/BTC", candles, headlines, positions
            ),
            "  the indicators it reads, bare TA-Lib": indicator_set(candles),
            "technical (3 timeframes)": lambda: technical_insight("ETH/BTC", candles),
            "fibonacci": lambda: fibonacci_insight("ETH/BTC", trading, atr=atr),
            "gann": lambda: gann_insight("ETH/BTC", trading, atr=atr),
            f"sentiment ({len(headlines)} headlines)": lambda: sentiment_insight("ETH/BTC", headlines, now),
            "positions": lambda: positions_insight("ETH/BTC", positions, price, atr, now, 300_000),
        }
    )
    names = list(t)
    full, theirs = (t[name][0] for name in names[:2])
    print(f"python {platform.python_version()}, numpy {np.__version__}, TA-Lib {talib.__ta_version__.decode()}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {RUNS} interleaved runs")
    print(f"candles: ETH/BTC {sizes}; agents run: {agents}")
    print()
    print(f"{'':<46}{'median ms':>10}{'min ms':>10}")
    for name in names[:2]:
        print(f"{name:<46}{t[name][0]:10.3f}{t[name][1]:10.3f}")
    print(f"{'  full analysis / TA-Lib indicators (medians)':<46}{full / theirs:9.1f}x")
    print("per agent")
    for name in names[2:]:
        print(f"  {name:<44}{t[name][0]:10.3f}{t[name][1]:10.3f}")


if __name__ == "__main__":
    main()
