"""Resampling 5m candles to longer timeframes, with missing candles handled honestly."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.resample import resample

FIVE_MIN = TIMEFRAME_MS["5m"]
HOUR = TIMEFRAME_MS["1h"]
T0 = 1_515_542_400_000  # 2018-01-10 00:00 UTC, a 4h and 1d boundary


def straightforward_resample(rows: list[tuple[int, float, float, float, float, float]], tf_ms: int, end_ms: int):
    """An independent reference: a dict of buckets filled row by row, then complete buckets kept."""
    buckets: dict[int, list[float]] = {}
    for ts, o, h, lo, c, v in rows:
        start = ts - ts % tf_ms
        if start not in buckets:
            buckets[start] = [o, h, lo, c, v]
        else:
            bucket = buckets[start]
            bucket[1] = max(bucket[1], h)
            bucket[2] = min(bucket[2], lo)
            bucket[3] = c
            bucket[4] += v
    return [(start, *values) for start, values in sorted(buckets.items()) if start + tf_ms <= end_ms]


def csv_rows(path: Path) -> list[tuple[int, float, float, float, float, float]]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return [(int(r[0]), *map(float, r[1:])) for r in reader]


def make_candles(timestamps: list[int], timeframe: str = "5m") -> Candles:
    """Candles whose prices encode their index, so every aggregate is easy to predict by hand."""
    ts = np.array(timestamps, dtype=np.int64)
    i = np.arange(len(ts), dtype=np.float64)
    return Candles("TEST/USDT", timeframe, ts, 100 + i, 200 + i, 50 - i, 150 + i, 1 + i)


@pytest.mark.parametrize("timeframe", ["15m", "30m", "1h", "2h", "4h", "1d"])
def test_ada_with_gaps_resamples_like_a_straightforward_bucket_loop(replay, ohlcv_dir: Path, timeframe: str):
    ada = replay.series("ADA/BTC", "5m")
    gaps = np.diff(ada.timestamp) > FIVE_MIN
    assert gaps.sum() > 0, "ADA_BTC-5m.csv is expected to contain missing candles"

    tf_ms = TIMEFRAME_MS[timeframe]
    got = resample(ada, timeframe)
    want = straightforward_resample(csv_rows(ohlcv_dir / "ADA_BTC-5m.csv"), tf_ms, int(ada.timestamp[-1]) + FIVE_MIN)

    assert got.timeframe == timeframe
    assert len(got) == len(want)
    table = np.column_stack([got.timestamp, got.open, got.high, got.low, got.close, got.volume])
    np.testing.assert_array_equal(table[:, 0], [w[0] for w in want])
    np.testing.assert_allclose(table[:, 1:], np.array([w[1:] for w in want]), rtol=1e-12)


def test_eth_five_minute_candles_make_480_hourly_candles(replay):
    hourly = resample(replay.series("ETH/BTC", "5m"), "1h")
    assert len(hourly) == 480
    assert np.all(hourly.timestamp % HOUR == 0)


def test_bucket_with_missing_candles_opens_at_first_present_and_closes_at_last_present():
    # 10:00 hour has candles at :05, :10 and :40 only; 11:00 hour is full.
    hour = T0 + 10 * HOUR
    stamps = [hour + 5 * 60_000, hour + 10 * 60_000, hour + 40 * 60_000] + [
        hour + HOUR + k * FIVE_MIN for k in range(12)
    ]
    got = resample(make_candles(stamps), "1h")

    assert got.timestamp.tolist() == [hour, hour + HOUR]
    assert got.open[0] == 100  # first present candle (index 0)
    assert got.close[0] == 152  # last present candle (index 2)
    assert got.high[0] == 202
    assert got.low[0] == 48
    assert got.volume[0] == 1 + 2 + 3
    assert got.open[1] == 103 and got.close[1] == 150 + 14 and got.volume[1] == sum(range(4, 16))


def test_hour_without_any_candle_is_absent_not_invented():
    stamps = [T0 + k * FIVE_MIN for k in range(12)] + [T0 + 2 * HOUR + k * FIVE_MIN for k in range(12)]
    got = resample(make_candles(stamps), "1h")
    assert got.timestamp.tolist() == [T0, T0 + 2 * HOUR]


def test_trailing_bucket_still_in_progress_is_dropped_unless_asked():
    stamps = [T0 + k * FIVE_MIN for k in range(12 + 7)]  # one full hour, then 35 minutes of the next
    assert resample(make_candles(stamps), "1h").timestamp.tolist() == [T0]

    partial = resample(make_candles(stamps), "1h", keep_partial=True)
    assert partial.timestamp.tolist() == [T0, T0 + HOUR]
    assert partial.close[-1] == 150 + 18


def test_trailing_bucket_with_missing_last_candles_is_complete_once_its_hour_has_passed():
    stamps = [T0 + k * FIVE_MIN for k in range(12)] + [T0 + HOUR + k * FIVE_MIN for k in range(10)]
    candles = make_candles(stamps)
    assert resample(candles, "1h").timestamp.tolist() == [T0]
    assert resample(candles, "1h", until_ms=T0 + 2 * HOUR).timestamp.tolist() == [T0, T0 + HOUR]
    assert resample(candles, "1h", until_ms=T0 + 2 * HOUR - 1).timestamp.tolist() == [T0]


def test_four_hour_buckets_align_to_utc_midnight_multiples():
    stamps = [T0 + HOUR + k * FIVE_MIN for k in range(12 * 8)]  # 01:00 → 08:55
    got = resample(make_candles(stamps), "4h")
    assert got.timestamp.tolist() == [T0, T0 + 4 * HOUR]  # 08:00 bucket is incomplete


def test_resampling_to_a_timeframe_that_is_not_a_multiple_is_refused():
    with pytest.raises(ValueError, match="not a multiple"):
        resample(make_candles([T0], "1h"), "15m")


def test_unsorted_candles_are_refused_rather_than_silently_misaggregated():
    with pytest.raises(ValueError, match="increasing"):
        resample(make_candles([T0 + FIVE_MIN, T0]), "1h")


def test_empty_series_resamples_to_empty_series_of_the_new_timeframe():
    got = resample(make_candles([]), "1h")
    assert len(got) == 0 and got.timeframe == "1h"
