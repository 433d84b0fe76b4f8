"""The shared OHLCV cache on a real Redis: one fetch per series and candle close, for every tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from redis.asyncio import Redis

from workers.market.cache import (
    MarketDataUnavailable,
    SharedOhlcvCache,
    UnknownMarket,
    decode_candles,
    encode_candles,
)
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.replay import ReplaySource

FIVE_MIN = TIMEFRAME_MS["5m"]


class CountingSource:
    """Recorded candles behind a slow, counting fetch: what the exchange would see."""

    def __init__(self, replay: ReplaySource, delay_s: float = 0.05, error: Exception | None = None) -> None:
        self.replay = replay
        self.delay_s = delay_s
        self.error = error
        self.calls: list[tuple[str, str, str, int | None]] = []

    async def fetch_ohlcv(
        self, exchange: str, symbol: str, timeframe: str, *, limit: int = 500, until_ms: int | None = None
    ) -> Candles:
        self.calls.append((exchange, symbol, timeframe, until_ms))
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.replay.read(symbol, timeframe, limit=limit, until_ms=until_ms)


class FakeClock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
async def redis_clients(market_redis_url: str) -> AsyncIterator[list[Redis]]:
    """Two separate connection pools: what two worker processes would have."""
    clients = [Redis.from_url(market_redis_url), Redis.from_url(market_redis_url)]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
def eth_close_ms(replay: ReplaySource) -> int:
    """A moment inside the recording, 30 s after a 5m candle closed."""
    eth = replay.series("ETH/BTC", "5m")
    return int(eth.timestamp[3000]) + 30_000


def make_cache(redis: Redis, source: CountingSource, prefix: str, clock: FakeClock, **options) -> SharedOhlcvCache:
    return SharedOhlcvCache(redis, source, key_prefix=prefix, clock=clock, grace_ms=5_000, **options)


async def test_fifty_concurrent_requests_for_one_series_cause_one_fetch(
    replay, redis_clients, redis_prefix, eth_close_ms
):
    source = CountingSource(replay)
    cache = make_cache(redis_clients[0], source, redis_prefix, FakeClock(eth_close_ms))

    results = await asyncio.gather(*(cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=100) for _ in range(50)))

    assert len(source.calls) == 1
    expected = replay.read("ETH/BTC", "5m", limit=100, until_ms=eth_close_ms - 30_000)
    for candles in results:
        np.testing.assert_array_equal(candles.timestamp, expected.timestamp)
        np.testing.assert_array_equal(candles.close, expected.close)


async def test_two_processes_with_separate_redis_connections_share_one_fetch(
    replay, redis_clients, redis_prefix, eth_close_ms
):
    source = CountingSource(replay, delay_s=0.2)
    clock = FakeClock(eth_close_ms)
    first, second = (make_cache(client, source, redis_prefix, clock) for client in redis_clients)

    requests = [
        cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=200) for _ in range(25) for cache in (first, second)
    ]
    results = await asyncio.gather(*requests)

    assert len(source.calls) == 1
    assert {int(c.timestamp[-1]) for c in results} == {eth_close_ms - 30_000 - FIVE_MIN}
    assert all(len(c) == 200 for c in results)


async def test_each_exchange_symbol_and_timeframe_is_fetched_separately(
    replay, redis_clients, redis_prefix, eth_close_ms
):
    source = CountingSource(replay)
    cache = make_cache(redis_clients[0], source, redis_prefix, FakeClock(eth_close_ms))
    series = [
        ("binance", "ETH/BTC", "5m"),
        ("binance", "ADA/BTC", "5m"),
        ("binance", "ETH/BTC", "1h"),
        ("bybit", "ETH/BTC", "5m"),
    ]

    await asyncio.gather(*(cache.fetch_ohlcv(*s, limit=50) for s in series for _ in range(10)))

    assert sorted(call[:3] for call in source.calls) == sorted(series)


async def test_next_candle_close_makes_the_cache_fetch_again(replay, redis_clients, redis_prefix, eth_close_ms):
    source = CountingSource(replay, delay_s=0)
    clock = FakeClock(eth_close_ms)
    cache = make_cache(redis_clients[0], source, redis_prefix, clock)

    before = await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)
    clock.now_ms += 60_000  # same candle period: still cached
    assert (await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)).timestamp[-1] == before.timestamp[-1]
    assert len(source.calls) == 1

    clock.now_ms += FIVE_MIN  # the next candle has closed
    after = await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)

    assert len(source.calls) == 2
    assert after.timestamp[-1] == before.timestamp[-1] + FIVE_MIN


async def test_candle_that_just_closed_waits_for_the_grace_period(replay, redis_clients, redis_prefix, eth_close_ms):
    source = CountingSource(replay, delay_s=0)
    close = eth_close_ms - 30_000
    clock = FakeClock(close + 2_000)  # 2 s after the close, inside the 5 s grace period
    cache = make_cache(redis_clients[0], source, redis_prefix, clock)

    early = await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=1)
    clock.now_ms = close + 6_000
    late = await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=1)

    assert early.timestamp[-1] + FIVE_MIN == close - FIVE_MIN
    assert late.timestamp[-1] + FIVE_MIN == close


async def test_cached_series_expires_in_redis_at_the_next_close_plus_grace(
    replay, redis_clients, redis_prefix, eth_close_ms
):
    source = CountingSource(replay, delay_s=0)
    cache = make_cache(redis_clients[0], source, redis_prefix, FakeClock(eth_close_ms))
    await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)

    keys = [k async for k in redis_clients[0].scan_iter(match=f"{redis_prefix}:*")]
    assert len(keys) == 1  # the series only: no lock or error left behind
    ttl_ms = await redis_clients[0].pttl(keys[0])
    next_close_plus_grace = (eth_close_ms - 30_000) + FIVE_MIN + 5_000
    assert next_close_plus_grace - eth_close_ms - 100 <= ttl_ms <= next_close_plus_grace - eth_close_ms


async def test_series_expired_in_redis_is_fetched_again(replay, redis_clients, redis_prefix, eth_close_ms):
    source = CountingSource(replay, delay_s=0)
    # 300 ms before the next close, no grace: the series lives for the 1 s minimum.
    clock = FakeClock(eth_close_ms - 30_000 + FIVE_MIN - 300)
    cache = SharedOhlcvCache(redis_clients[0], source, key_prefix=redis_prefix, clock=clock, grace_ms=0)

    await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)
    await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)
    assert len(source.calls) == 1
    await asyncio.sleep(1.1)
    # Another process (this one holds the series it read: a close's candles never change).
    other = SharedOhlcvCache(redis_clients[1], source, key_prefix=redis_prefix, clock=clock, grace_ms=0)
    await other.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)
    assert len(source.calls) == 2


async def test_a_process_reads_a_series_from_redis_once_per_close(
    replay, redis_clients, redis_prefix, eth_close_ms
):
    source = CountingSource(replay, delay_s=0)
    clock = FakeClock(eth_close_ms)
    first = make_cache(redis_clients[0], source, redis_prefix, clock)
    await first.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)
    reader = make_cache(redis_clients[1], source, redis_prefix, clock)
    got = await reader.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)
    async for key in redis_clients[0].scan_iter(match=f"{redis_prefix}:*"):
        await redis_clients[0].delete(key)  # gone from Redis: only what the process holds can answer
    again = await reader.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=20)
    np.testing.assert_array_equal(again.timestamp[-10:], got.timestamp)
    assert len(source.calls) == 1
    clock.now_ms += FIVE_MIN  # the next close: a new series
    await reader.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=10)
    assert len(source.calls) == 2


async def test_explicit_decision_time_gets_candles_closed_by_then(replay, redis_clients, redis_prefix, eth_close_ms):
    source = CountingSource(replay, delay_s=0)
    cache = make_cache(redis_clients[0], source, redis_prefix, FakeClock(eth_close_ms))
    decision = eth_close_ms - 3 * 3_600_000 + 1

    got = await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=20, until_ms=decision)
    expected = replay.read("ETH/BTC", "5m", limit=20, until_ms=decision)

    np.testing.assert_array_equal(got.timestamp, expected.timestamp)
    assert got.timestamp[-1] + FIVE_MIN <= decision


async def test_failed_fetch_is_reported_to_every_waiter_without_each_retrying(
    replay, redis_clients, redis_prefix, eth_close_ms
):
    source = CountingSource(replay, error=MarketDataUnavailable("binance: ExchangeNotAvailable", retry_after_s=3.0))
    clock = FakeClock(eth_close_ms)
    first, second = (make_cache(client, source, redis_prefix, clock) for client in redis_clients)

    requests = [cache.fetch_ohlcv("binance", "ETH/BTC", "5m") for _ in range(25) for cache in (first, second)]
    results = await asyncio.gather(*requests, return_exceptions=True)

    assert len(source.calls) == 1
    assert all(isinstance(r, MarketDataUnavailable) for r in results)
    assert {r.retry_after_s for r in results} == {3.0}

    await asyncio.sleep(2.1)  # the failure is remembered for 2 s only
    source.error = None
    assert len(await first.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5)) == 5
    assert len(source.calls) == 2


async def test_lock_left_by_a_crashed_process_expires_and_another_process_fetches(
    replay, redis_clients, redis_prefix, eth_close_ms
):
    source = CountingSource(replay, delay_s=0)
    cache = make_cache(redis_clients[0], source, redis_prefix, FakeClock(eth_close_ms))
    close = eth_close_ms - 30_000 - 5_000
    close -= close % FIVE_MIN
    await redis_clients[1].set(f"{redis_prefix}:binance:ETH/BTC:5m:{close}:lock", "crashed", px=300)

    got = await asyncio.gather(*(cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=5) for _ in range(10)))

    assert len(source.calls) == 1
    assert all(len(c) == 5 for c in got)


async def test_cache_refuses_a_limit_deeper_than_it_keeps(replay, redis_clients, redis_prefix, eth_close_ms):
    cache = make_cache(redis_clients[0], CountingSource(replay), redis_prefix, FakeClock(eth_close_ms), depth=300)
    with pytest.raises(ValueError, match="depth"):
        await cache.fetch_ohlcv("binance", "ETH/BTC", "5m", limit=301)
    with pytest.raises(UnknownMarket):
        await cache.fetch_ohlcv("binance", "ETH/BTC", "3m")


async def test_cache_refuses_a_redis_client_that_decodes_to_text(replay, market_redis_url):
    client = Redis.from_url(market_redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            SharedOhlcvCache(client, CountingSource(replay))
    finally:
        await client.aclose()


def test_candles_round_trip_through_their_compact_encoding_exactly(replay):
    ada = replay.series("ADA/BTC", "5m")
    raw = encode_candles(ada)
    back = decode_candles(raw)

    assert len(raw) < len(ada) * 6 * 8 + 100  # raw arrays plus a small header
    assert (back.symbol, back.timeframe) == ("ADA/BTC", "5m")
    for name in ("timestamp", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ada, name))
    assert back.timestamp.dtype == np.int64
