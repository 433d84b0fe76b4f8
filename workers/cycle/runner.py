"""What every cycle of a worker process shares, and what runs one: the bot's lock, the gate, the time limit."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping

from redis.asyncio import Redis
from redis.exceptions import RedisError

from quorum.database import Database
from tenants.vault import Vault
from workers.agents.analysis import market_insights
from workers.agents.insight import Insight
from workers.cycle.lock import BotLocks
from workers.cycle.run import CycleReport, ReportStatus, Run
from workers.cycle.state import Decide, OpenExchange
from workers.market.candles import Candles
from workers.market.feed import MarketFeed
from workers.metrics import observe_cycle
from workers.notify.outbox import SendTask

log = logging.getLogger("workers.cycle")

class CycleEnv:
    """Everything cycles share in one worker process: built once, used by every cycle on the loop."""

    def __init__(
        self,
        *,
        database: Database,
        vault: Vault,
        redis: Redis,
        feed: MarketFeed,
        decide: Decide,
        open_exchange: OpenExchange,
        send_task: SendTask,
        soft_time_limit: float,
        lock_ttl: float,
        concurrency: int = 64,
    ) -> None:
        self.database, self.vault, self.redis, self.feed = database, vault, redis, feed
        self.decide, self.open_exchange, self.send_task = decide, open_exchange, send_task
        self.soft_time_limit, self.lock_ttl = soft_time_limit, lock_ttl
        self._gate = asyncio.Semaphore(concurrency)  # cycles at once in this process
        self.locks = BotLocks(redis, lock_ttl)
        # Market insights per (venue, symbol, timeframes, last candle): the same for every bot on that market.
        self._insights: dict[tuple[str, str, tuple[str, ...], int], list[Insight]] = {}

    def market_insights(self, venue: str, symbol: str, candles: Mapping[str, Candles]) -> list[Insight]:
        trading = next(iter(candles.values()))
        last = int(trading.timestamp[-1]) if len(trading) else 0
        key = (venue, symbol, tuple(candles), last)
        found = self._insights.get(key)
        if found is None:
            if len(self._insights) > 4096:
                self._insights.clear()
            found = self._insights[key] = market_insights(symbol, candles)
        return found

    async def run(self, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> CycleReport:
        """Run the bot's cycle for `slot` under its lock and the soft time limit, once one of the process's
        `concurrency` places is free; never raises for the bot's own failures (they are recorded on the cycle)."""
        async with self._gate:
            started = time.perf_counter()
            report = await self._run(tenant_id, bot_id, slot)
            observe_cycle(time.perf_counter() - started, report.status)
            return report

    async def _run(self, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> CycleReport:
        try:
            async with self.locks.hold(bot_id) as held:
                if not held:
                    return CycleReport(status=ReportStatus.LOCKED)
                return await self._locked(tenant_id, bot_id, slot)
        except RedisError as exc:  # Redis unreachable before the lock: nothing was claimed; the next tick tries
            log.warning("cycle lock unavailable", extra={"bot_id": str(bot_id), "error": str(exc)})
            return CycleReport(status=ReportStatus.FAILED, error=f"lock unavailable: {type(exc).__name__}")

    async def _locked(self, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> CycleReport:
        run = Run(self, tenant_id, bot_id, slot)
        try:
            async with asyncio.timeout(self.soft_time_limit):
                return await run.execute()
        except TimeoutError:
            return await run.fail(f"timed out after {self.soft_time_limit:g} s")
        except Exception as exc:  # the bot's failure is recorded on its cycle, not raised into the worker
            log.exception("cycle failed", extra={"bot_id": str(bot_id), "slot": slot})
            return await run.fail(f"{type(exc).__name__}: {exc}")


def slot_of(now: float, interval_seconds: int) -> int:
    """The slot (its start, in seconds since the epoch) that `now` falls in, for a bot with this interval."""
    return int(now // interval_seconds * interval_seconds)
