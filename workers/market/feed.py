"""The market data a worker's cycles read: one shared cache over the configured source, and its clock.

`MARKET_DATA=ccxt` reads the exchanges' public APIs on the wall clock. `MARKET_DATA=replay` replays
the recorded candles (workers/market/replay.py) on a clock that runs `REPLAY_SPEED` times faster
than real time and wraps around at the end of the recording, so an offline machine trades on real
prices; every process computes the same replay time from the wall clock, so all workers agree.
`auto` takes ccxt when the paper exchange's market-data venue answers within a few seconds, else replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from workers.exchanges.factory import parse_overrides
from workers.market.cache import OhlcvSource, SharedOhlcvCache, wall_clock_ms
from workers.market.ccxt_source import CcxtOhlcvSource
from workers.market.replay import ReplaySource

log = logging.getLogger(__name__)
REPLAY = "replay"
# Where paper bots read prices when the market data is live: a venue with deep public data.
PAPER_MARKET_EXCHANGE = "binance"
WARMUP_CANDLES = 300  # replay time starts late enough for every agent to have its history


class ReplayClock:
    """Replay time in ms: the recording's span (after a warm-up) replayed at `speed`, wrapping around."""

    def __init__(self, start_ms: int, end_ms: int, speed: float, wall: Callable[[], int] = wall_clock_ms) -> None:
        if end_ms <= start_ms:
            raise ValueError("the recording is empty")
        self.start_ms, self.end_ms, self.speed, self._wall = start_ms, end_ms, speed, wall

    def __call__(self) -> int:
        span = self.end_ms - self.start_ms
        return self.start_ms + int(self._wall() * self.speed) % span


def replay_clock(source: ReplaySource, speed: float) -> ReplayClock:
    """The clock over what every recorded market has in common, after the warm-up of its slowest series."""
    starts, ends = [], []
    for symbol, timeframes in source.markets().items():
        series = source.series(symbol, timeframes[0])
        if len(series) <= WARMUP_CANDLES:
            continue
        step = int(series.timestamp[1] - series.timestamp[0])
        starts.append(int(series.timestamp[WARMUP_CANDLES]))
        ends.append(int(series.timestamp[-1]) + step)
    if not starts:
        raise RuntimeError("no recorded candles to replay: set QUORUM_DATA_DIR to a folder with ohlcv/*.csv")
    return ReplayClock(max(starts), max(ends), speed)


class MarketFeed:
    """What a cycle needs from the market: cached candles, the venue name for cache keys, and `now`."""

    def __init__(self, cache: SharedOhlcvCache, clock: Callable[[], int], venue: str | None, closer: object) -> None:
        self.cache = cache
        self.clock = clock
        self.venue = venue  # None: each bot's own exchange (live data); "replay": the recording
        self._closer = closer

    def exchange_for(self, exchange: str) -> str:
        """The market-data venue for a bot on `exchange` (paper bots read a real venue's prices)."""
        if self.venue is not None:
            return self.venue
        return PAPER_MARKET_EXCHANGE if exchange == "paper" else exchange

    async def close(self) -> None:
        close = getattr(self._closer, "close", None)
        if close is not None:
            await close()


async def _venue_answers(source: CcxtOhlcvSource) -> bool:
    try:
        await asyncio.wait_for(source.fetch_ohlcv(PAPER_MARKET_EXCHANGE, "BTC/USDT", "1h", limit=2), 5)
    except Exception as exc:
        log.info("live market data unavailable, replaying recorded candles", extra={"error": str(exc)})
        return False
    return True


async def open_market_feed(settings: object, redis: Redis) -> MarketFeed:
    """The feed `settings.market_data` names; `redis` must return bytes."""
    mode = getattr(settings, "market_data", "ccxt")
    overrides = parse_overrides(getattr(settings, "exchange_api_overrides", ""))
    if mode in ("ccxt", "auto"):
        live = CcxtOhlcvSource(api_origins=overrides)
        if mode == "ccxt" or await _venue_answers(live):
            return MarketFeed(SharedOhlcvCache(redis, live), wall_clock_ms, None, live)
        await live.close()
    elif mode != REPLAY:
        raise ValueError(f"MARKET_DATA must be ccxt, replay or auto, not {mode!r}")
    replay = ReplaySource()
    clock = replay_clock(replay, float(getattr(settings, "replay_speed", 1.0)))
    source: OhlcvSource = replay
    cache = SharedOhlcvCache(redis, source, key_prefix="quorum:ohlcv-replay", clock=clock)
    return MarketFeed(cache, clock, REPLAY, None)

