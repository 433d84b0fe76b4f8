"""Live OHLCV through the real ccxt async client, pointed at a local stand-in for Binance."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from tests.fakes.binance_public import FakeBinancePublic
from workers.market.cache import MarketDataUnavailable, RateLimited, UnknownMarket
from workers.market.candles import TIMEFRAME_MS
from workers.market.ccxt_source import CcxtOhlcvSource
from workers.market.replay import ReplaySource

FIVE_MIN = TIMEFRAME_MS["5m"]
HOUR = TIMEFRAME_MS["1h"]


@pytest.fixture(scope="module")
def binance(replay: ReplaySource) -> Iterator[FakeBinancePublic]:
    series = [replay.series("ETH/BTC", "5m"), replay.series("ADA/BTC", "5m"), replay.series("XRP/USDT:USDT", "1h")]
    with FakeBinancePublic(series) as fake:
        yield fake


@pytest.fixture
def recording_end(replay: ReplaySource) -> int:
    """Binance's "now" in the recording: 2 min into the last ETH candle, which is still forming."""
    return int(replay.series("ETH/BTC", "5m").timestamp[-1]) + 2 * 60_000


@pytest.fixture
async def source(binance: FakeBinancePublic, recording_end: int) -> AsyncIterator[CcxtOhlcvSource]:
    binance.requests.clear()
    async with CcxtOhlcvSource(api_origins={"binance": binance.origin}, clock=lambda: recording_end) as src:
        yield src


async def test_spot_candles_arrive_through_ccxt_equal_to_what_the_exchange_served(source, replay, recording_end):
    got = await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=300)
    eth = replay.series("ETH/BTC", "5m")

    assert (got.symbol, got.timeframe, len(got)) == ("ETH/BTC", "5m", 300)
    # The candle still forming at "now" is left out: only closed candles reach a decision.
    np.testing.assert_array_equal(got.timestamp, eth.timestamp[-301:-1])
    np.testing.assert_array_equal(got.open, eth.open[-301:-1])
    np.testing.assert_array_equal(got.close, eth.close[-301:-1])
    np.testing.assert_array_equal(got.volume, eth.volume[-301:-1])
    assert got.timestamp.dtype == np.int64
    assert got.timestamp[-1] + FIVE_MIN <= recording_end


async def test_more_candles_than_binance_serves_per_request_are_paged(source, binance, replay):
    got = await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=1500)

    assert len(got) == 1500
    assert np.all(np.diff(got.timestamp) == FIVE_MIN)
    assert binance.paths().count("/api/v3/klines") == 2
    np.testing.assert_array_equal(got.timestamp, replay.series("ETH/BTC", "5m").timestamp[-1501:-1])


async def test_candles_with_gaps_come_back_without_invented_ones(source, replay):
    ada = replay.series("ADA/BTC", "5m")
    got = await source.fetch_ohlcv("binance", "ADA/BTC", "5m", limit=1000)

    window = ada.timestamp[ada.timestamp >= got.timestamp[0]]
    np.testing.assert_array_equal(got.timestamp, window[window + FIVE_MIN <= int(got.timestamp[-1]) + FIVE_MIN])
    assert len(got) <= 1000


async def test_decision_time_in_the_past_gets_candles_closed_by_then(source, replay):
    xrp = replay.series("XRP/USDT:USDT", "1h")
    decision = int(xrp.timestamp[40]) + 30 * 60_000

    got = await source.fetch_ohlcv("binance", "XRP/USDT:USDT", "1h", limit=24, until_ms=decision)

    np.testing.assert_array_equal(got.timestamp, xrp.timestamp[16:40])
    np.testing.assert_array_equal(got.high, xrp.high[16:40])


async def test_perpetual_swap_candles_come_from_the_futures_api(source, binance):
    await source.fetch_ohlcv("binance", "XRP/USDT:USDT", "1h", limit=10, until_ms=1_637_200_000_000)
    assert "/fapi/v1/klines" in binance.paths()
    assert "/api/v3/klines" not in binance.paths()


async def test_one_client_per_exchange_loads_markets_once_and_is_reused(source, binance):
    for symbol in ("ETH/BTC", "ADA/BTC", "ETH/BTC"):
        await source.fetch_ohlcv("binance", symbol, "5m", limit=5)

    assert binance.paths().count("/api/v3/exchangeInfo") == 1
    assert binance.paths().count("/api/v3/klines") == 3


async def test_closed_source_can_be_used_again_without_reloading_markets(binance, recording_end):
    binance.requests.clear()
    source = CcxtOhlcvSource(api_origins={"binance": binance.origin}, clock=lambda: recording_end)
    await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)
    await source.close()
    try:
        assert len(await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)) == 5
    finally:
        await source.close()
    assert binance.paths().count("/api/v3/exchangeInfo") == 1  # markets are kept across clients


async def test_unknown_symbol_is_reported_as_unknown_market_without_asking_for_candles(source, binance):
    with pytest.raises(UnknownMarket):
        await source.fetch_ohlcv("binance", "DOGE/BTC", "5m")
    assert "/api/v3/klines" not in binance.paths()


async def test_unknown_exchange_or_timeframe_is_reported_as_unknown_market(source):
    with pytest.raises(UnknownMarket):
        await source.fetch_ohlcv("no-such-exchange", "ETH/BTC", "5m")
    with pytest.raises(UnknownMarket):
        await source.fetch_ohlcv("binance", "ETH/BTC", "7m")


async def test_rate_limit_answer_becomes_rate_limited_with_the_exchanges_retry_after(source, binance):
    await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)  # markets loaded: the fault hits klines
    binance.fail_next(429, {"code": -1003, "msg": "Too many requests."}, Retry_After="7")

    with pytest.raises(RateLimited) as caught:
        await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)
    assert caught.value.retry_after_s == 7.0


async def test_exchange_down_becomes_temporarily_unavailable(source, binance):
    await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)
    binance.fail_next(503, {"code": -1001, "msg": "Service unavailable."})

    with pytest.raises(MarketDataUnavailable) as caught:
        await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)
    assert not isinstance(caught.value, RateLimited)
    # The next request succeeds: nothing was left broken in the reused client.
    assert len(await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)) == 5


async def test_unreachable_exchange_becomes_temporarily_unavailable(recording_end):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with CcxtOhlcvSource(
        api_origins={"binance": f"http://127.0.0.1:{closed_port}"}, clock=lambda: recording_end, timeout_ms=2_000
    ) as source:
        with pytest.raises(MarketDataUnavailable):
            await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)


def test_source_used_from_one_event_loop_per_task_works_and_loads_markets_once(binance, recording_end):
    binance.requests.clear()
    source = CcxtOhlcvSource(api_origins={"binance": binance.origin}, clock=lambda: recording_end)

    async def task() -> int:
        try:
            return len(await source.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5))
        finally:
            await source.close()

    assert [asyncio.run(task()) for _ in range(3)] == [5, 5, 5]
    assert binance.paths().count("/api/v3/exchangeInfo") == 1
    assert binance.paths().count("/api/v3/klines") == 3
