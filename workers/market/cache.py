"""The OHLCV cache every tenant shares: one fetch per (exchange, symbol, timeframe) and candle close.

This module also holds the interface every OHLCV source meets (`OhlcvSource`) and the errors sources
raise, so trading code depends on this front door and not on a particular source.

How one fetch is guaranteed: concurrent requests in one process share an asyncio task; across
processes the first to take a Redis lock (SET NX PX) fetches and stores the series, the others poll
Redis for it. A series is keyed by the candle close it was taken at and expires at the next close
plus a grace period, so nobody ever reads candles from a previous period as if they were fresh.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
import numpy as np
from redis.asyncio import Redis

from workers.market.candles import TIMEFRAME_MS, Candles


class MarketDataError(Exception):
    """Market data could not be obtained; the subclass says whether to retry."""


class MarketDataUnavailable(MarketDataError):
    """Temporary (network, timeout, exchange down, overloaded): retry later, after `retry_after_s` if set."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(MarketDataUnavailable):
    """The exchange asked us to slow down: back off before the next request to it."""


class UnknownMarket(MarketDataError, LookupError):
    """The exchange, symbol or timeframe is not offered: a configuration problem, retrying will not help."""


class OhlcvSource(Protocol):
    """What every OHLCV source answers: the last `limit` candles closed by `until_ms` (default: now)."""

    async def fetch_ohlcv(
        self, exchange: str, symbol: str, timeframe: str, *, limit: int = 500, until_ms: int | None = None
    ) -> Candles: ...


MAX_HELD_SERIES = 512  # decoded series one process keeps (500 candles: about 24 KB each)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _CachedCandles(msgspec.Struct, array_like=True):
    symbol: str
    timeframe: str
    timestamp: bytes  # little-endian int64
    prices: bytes  # little-endian float64, rows open, high, low, close, volume


class _CachedError(msgspec.Struct, array_like=True):
    kind: str
    message: str
    retry_after_s: float | None = None


_ERROR_KINDS: dict[str, type[MarketDataError]] = {
    cls.__name__: cls for cls in (MarketDataError, MarketDataUnavailable, RateLimited, UnknownMarket)
}

# Delete the lock only if we still own it: an expired lock may already belong to another process.
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def encode_candles(candles: Candles) -> bytes:
    """Compact bytes for Redis: msgpack around the raw little-endian arrays."""
    prices = np.stack([candles.open, candles.high, candles.low, candles.close, candles.volume])
    return msgspec.msgpack.encode(
        _CachedCandles(
            candles.symbol,
            candles.timeframe,
            candles.timestamp.astype("<i8", copy=False).tobytes(),
            prices.astype("<f8", copy=False).tobytes(),
        )
    )


def decode_candles(raw: bytes) -> Candles:
    """The inverse of `encode_candles`; the arrays are read-only views, shared by every reader."""
    cached = msgspec.msgpack.decode(raw, type=_CachedCandles)
    ts = np.frombuffer(cached.timestamp, dtype="<i8")
    prices = np.frombuffer(cached.prices, dtype="<f8").reshape(5, ts.shape[0])
    return Candles(cached.symbol, cached.timeframe, ts, *prices)


class SharedOhlcvCache:
    """An `OhlcvSource` in front of another that fetches each series once per candle close for everyone.

    Each fetch asks the source for `depth` candles; requests take the last `limit` of them. `redis`
    must return bytes (decode_responses=False).
    """

    def __init__(
        self,
        redis: Redis,
        source: OhlcvSource,
        *,
        key_prefix: str = "quorum:ohlcv",
        depth: int = 500,
        grace_ms: int = 5_000,
        lock_ttl_ms: int = 30_000,
        error_ttl_ms: int = 2_000,
        wait_timeout_s: float = 45.0,
        min_ttl_ms: int = 1_000,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the OHLCV cache stores bytes: give it a Redis client with decode_responses=False")
        self._redis = redis
        self._source = source
        self._prefix = key_prefix
        self._depth = depth
        self._grace_ms = grace_ms
        self._lock_ttl_ms = lock_ttl_ms
        self._error_ttl_ms = error_ttl_ms
        self._wait_timeout_s = wait_timeout_s
        self._min_ttl_ms = min_ttl_ms
        self._clock = clock
        self._release_lock = redis.register_script(_RELEASE_LOCK)
        self._inflight: dict[str, asyncio.Task[Candles]] = {}
        # Series already read, by key: a key names one candle close, so what it holds never changes.
        # Every bot on a market reads the same few series; this spares each cycle a Redis read and decode.
        self._held: dict[str, Candles] = {}

    async def fetch_ohlcv(
        self, exchange: str, symbol: str, timeframe: str, *, limit: int = 500, until_ms: int | None = None
    ) -> Candles:
        """The last `limit` candles closed by `until_ms` (default: now minus the grace period)."""
        if timeframe not in TIMEFRAME_MS:
            raise UnknownMarket(f"unknown timeframe {timeframe!r}")
        if limit > self._depth:
            raise ValueError(f"limit {limit} exceeds the cache depth {self._depth}")
        tf_ms = TIMEFRAME_MS[timeframe]
        now = self._clock()
        # The grace period lets the exchange finish the candle that just closed before we take it;
        # a decision time in the future can only see what has closed by now.
        decided_at = now - self._grace_ms if until_ms is None else min(until_ms, now)
        close_ms = decided_at // tf_ms * tf_ms
        key = f"{self._prefix}:{exchange}:{symbol}:{timeframe}:{close_ms}"
        held = self._held.get(key)
        if held is not None:
            return held.tail(limit)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, exchange, symbol, timeframe, close_ms))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller giving up must not cancel the fetch the other callers are waiting on.
        series = await asyncio.shield(task)
        return series.tail(limit)

    def _forget(self, key: str, task: asyncio.Task[Candles]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled() and task.exception() is None:  # retrieved, so a failure is not logged as lost
            if len(self._held) >= MAX_HELD_SERIES:
                self._held.clear()  # older closes nobody asks for again, or more markets than this holds
            self._held[key] = task.result()

    async def _load(self, key: str, exchange: str, symbol: str, timeframe: str, close_ms: int) -> Candles:
        error_key, lock_key = f"{key}:error", f"{key}:lock"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_timeout_s
        delay = 0.005
        while True:
            found = await self._cached(key, error_key)
            if found is not None:
                return found
            token = secrets.token_hex(16)
            if await self._redis.set(lock_key, token, nx=True, px=self._lock_ttl_ms):
                try:
                    # The previous holder may have stored the series between our read and our lock.
                    found = await self._cached(key, error_key)
                    if found is not None:
                        return found
                    return await self._fetch_and_store(key, error_key, exchange, symbol, timeframe, close_ms)
                finally:
                    await self._release_lock(keys=[lock_key], args=[token])
            if loop.time() > deadline:
                raise MarketDataUnavailable(f"timed out waiting for another worker to fetch {key}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _cached(self, key: str, error_key: str) -> Candles | None:
        raw, raw_error = await self._redis.mget(key, error_key)
        if raw is not None:
            return decode_candles(raw)
        if raw_error is not None:
            error = msgspec.msgpack.decode(raw_error, type=_CachedError)
            cls = _ERROR_KINDS.get(error.kind, MarketDataError)
            if issubclass(cls, MarketDataUnavailable):
                raise cls(error.message, error.retry_after_s)
            raise cls(error.message)
        return None

    async def _fetch_and_store(
        self, key: str, error_key: str, exchange: str, symbol: str, timeframe: str, close_ms: int
    ) -> Candles:
        try:
            candles = await self._source.fetch_ohlcv(exchange, symbol, timeframe, limit=self._depth, until_ms=close_ms)
        except MarketDataError as exc:
            # Waiters elsewhere get the same answer instead of each retrying the exchange at once.
            error = _CachedError(type(exc).__name__, str(exc), getattr(exc, "retry_after_s", None))
            await self._redis.set(error_key, msgspec.msgpack.encode(error), px=self._error_ttl_ms)
            raise
        expires_at = close_ms + TIMEFRAME_MS[timeframe] + self._grace_ms
        # A series from a past period never changes; keep it briefly so concurrent waiters still find it.
        ttl_ms = max(expires_at - self._clock(), self._min_ttl_ms)
        await self._redis.set(key, encode_candles(candles), px=ttl_ms)
        return candles
