"""Recorded candles from CSV files, served like a live exchange would serve them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from workers.market.cache import UnknownMarket
from workers.market.candles import TIMEFRAME_MS
from workers.market.replay import ReplaySource, file_name, parse_file_name, read_candles
from workers.market.resample import resample

HOUR = TIMEFRAME_MS["1h"]


@pytest.mark.parametrize(
    ("name", "symbol", "timeframe"),
    [
        ("ETH_BTC-5m.csv", "ETH/BTC", "5m"),
        ("ADA_BTC-5m.csv", "ADA/BTC", "5m"),
        ("XRP_USDT_USDT-1h.csv", "XRP/USDT:USDT", "1h"),
    ],
)
def test_file_name_says_symbol_and_timeframe(name: str, symbol: str, timeframe: str):
    assert parse_file_name(name) == (symbol, timeframe)
    assert file_name(symbol, timeframe) == name


@pytest.mark.parametrize("name", ["ETHBTC-5m.csv", "ETH_BTC-7m.csv", "ETH_BTC.csv", "A_B_C_D-1h.csv", "_BTC-5m.csv"])
def test_file_names_that_do_not_name_a_market_are_rejected(name: str):
    with pytest.raises(ValueError):
        parse_file_name(name)


def test_csv_is_read_into_numpy_arrays_equal_to_the_file(ohlcv_dir: Path):
    path = ohlcv_dir / "ETH_BTC-5m.csv"
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    candles = read_candles(path)

    assert (candles.symbol, candles.timeframe, len(candles)) == ("ETH/BTC", "5m", 5760)
    assert candles.timestamp.dtype == np.int64 and candles.close.dtype == np.float64
    assert candles.timestamp.tolist() == [int(r[0]) for r in rows]
    np.testing.assert_array_equal(candles.high, [float(r[2]) for r in rows])
    np.testing.assert_array_equal(candles.volume, [float(r[5]) for r in rows])


def test_csv_rows_out_of_order_or_repeated_are_sorted_and_deduplicated(tmp_path: Path):
    path = tmp_path / "BTC_USDT-1h.csv"
    path.write_text(
        f"timestamp,open,high,low,close,volume\n{2 * HOUR},3,3,3,3,3\n{HOUR},1,1,1,1,1\n{2 * HOUR},4,4,4,4,4\n"
    )
    candles = read_candles(path)
    assert candles.timestamp.tolist() == [HOUR, 2 * HOUR]
    assert candles.close.tolist() == [1.0, 4.0]  # the later row for a repeated candle wins


def test_replay_lists_the_recorded_markets(replay: ReplaySource):
    assert replay.markets() == {"ADA/BTC": ["5m"], "ETH/BTC": ["5m"], "XRP/USDT:USDT": ["1h"]}


async def test_replay_returns_only_candles_closed_by_the_decision_time(replay: ReplaySource):
    eth = replay.series("ETH/BTC", "5m")
    decision = int(eth.timestamp[100]) + 2 * 60_000  # two minutes into candle 100

    got = await replay.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=50, until_ms=decision)

    assert len(got) == 50
    assert got.timestamp[-1] == eth.timestamp[99]
    assert np.all(got.timestamp + TIMEFRAME_MS["5m"] <= decision)
    np.testing.assert_array_equal(got.close, eth.close[50:100])


async def test_replay_serves_longer_timeframes_by_resampling_the_recorded_ones(replay: ReplaySource):
    ada_5m = replay.series("ADA/BTC", "5m")
    decision = int(ada_5m.timestamp[0]) - int(ada_5m.timestamp[0]) % HOUR + 30 * HOUR + 1

    hourly = await replay.fetch_ohlcv("binance", "ADA/BTC", "1h", limit=10, until_ms=decision)
    expected = resample(ada_5m, "1h").upto(decision).tail(10)

    assert hourly.timeframe == "1h" and len(hourly) == 10
    np.testing.assert_array_equal(hourly.timestamp, expected.timestamp)
    np.testing.assert_array_equal(hourly.close, expected.close)
    assert hourly.timestamp[-1] + HOUR <= decision


async def test_replay_without_decision_time_serves_up_to_the_end_of_the_recording(replay: ReplaySource):
    xrp = await replay.fetch_ohlcv("binance", "XRP/USDT:USDT", "1h", limit=1000)
    assert len(xrp) == 100
    assert xrp.symbol == "XRP/USDT:USDT"


async def test_replay_cannot_invent_a_shorter_timeframe_or_an_unrecorded_symbol(replay: ReplaySource):
    with pytest.raises(UnknownMarket):
        await replay.fetch_ohlcv("binance", "XRP/USDT:USDT", "5m")
    with pytest.raises(UnknownMarket):
        await replay.fetch_ohlcv("binance", "DOGE/USDT", "1h")
    with pytest.raises(UnknownMarket):
        await replay.fetch_ohlcv("binance", "ETH/BTC", "7m")


async def test_replay_of_a_missing_folder_knows_no_markets(tmp_path: Path):
    source = ReplaySource(tmp_path / "nowhere")
    assert source.markets() == {}
    with pytest.raises(UnknownMarket):
        await source.fetch_ohlcv("binance", "ETH/BTC", "5m")


async def test_replayed_candles_are_shared_read_only_so_no_reader_can_alter_the_recording(replay: ReplaySource):
    first = await replay.fetch_ohlcv("binance", "ETH/BTC", "1h", limit=5)
    with pytest.raises(ValueError, match="read-only"):
        first.close[0] = 0.0
    again = await replay.fetch_ohlcv("binance", "ETH/BTC", "1h", limit=5)
    np.testing.assert_array_equal(again.close, first.close)
