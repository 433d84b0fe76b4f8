"""One event loop and one set of clients per worker process, kept for the life of the process.

Celery tasks are synchronous functions run by a pool of threads; each hands its coroutine to this
loop (`run`) and waits, so one process runs many cycles at once on one loop, and connection pools,
exchange clients, the market-data cache and the insight cache are shared instead of rebuilt per task.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis

from quorum.database import Database, create_app_engine
from quorum.settings import Settings, get_settings
from tenants.vault import LocalMasterKeys, Vault

T = TypeVar("T")


class WorkerRuntime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="quorum-loop", daemon=True)
        self._thread.start()
        settings = settings or get_settings()
        self.settings = settings
        self.database = Database(create_app_engine(settings))
        self.vault = Vault(LocalMasterKeys.from_setting(settings.master_keys))
        self._cycles: asyncio.Future[Any] | None = None
        self._redis: Redis | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the process's loop and wait for its result from the calling (task) thread.

        Past `timeout` the coroutine is cancelled and TimeoutError raised: the hard time limit."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    @property
    def redis(self) -> Redis:
        """The process's Redis client (bytes), created on the loop's first use."""
        if self._redis is None:
            # Every concurrent cycle may hold a connection at once: a pool that waits when it is exhausted
            # (instead of failing), sized for the cycles and what they share (cache, breaker, outbox).
            pool = BlockingConnectionPool.from_url(
                self.settings.redis_url, max_connections=4 * self.settings.cycle_concurrency + 16, timeout=10,
                socket_timeout=10, socket_connect_timeout=3, health_check_interval=30,
            )
            self._redis = Redis(connection_pool=pool)
        return self._redis

    async def cycle_env(self) -> Any:
        """The `workers.cycle.CycleEnv` of this process, built once (concurrent first callers share it)."""
        if self._cycles is None:
            self._cycles = asyncio.ensure_future(self._build_cycle_env())
        try:
            return await asyncio.shield(self._cycles)
        except Exception:
            self._cycles = None  # e.g. Redis was down: the next task tries again
            raise

    async def _build_cycle_env(self) -> Any:
        from workers.brain.gpt import GptBrain, GptBrainConfig
        from workers.brain.service import decide, shared_breaker_and_budget
        from workers.cycle import CycleEnv
        from workers.exchanges.factory import open_trading_exchange
        from workers.market.feed import open_market_feed

        settings = self.settings
        config = GptBrainConfig.from_settings(settings)
        breaker, budget = shared_breaker_and_budget(self.redis, config)
        gpt = GptBrain(config) if config.configured else None
        feed = await open_market_feed(settings, self.redis)
        return CycleEnv(
            database=self.database,
            vault=self.vault,
            redis=self.redis,
            feed=feed,
            decide=functools.partial(decide, gpt=gpt, breaker=breaker, budget=budget),
            open_exchange=functools.partial(open_trading_exchange, self.database, settings),
            send_task=_send_task,
            soft_time_limit=settings.cycle_soft_time_limit_seconds,
            lock_ttl=settings.cycle_hard_time_limit_seconds,
            concurrency=settings.cycle_concurrency,
        )


def _send_task(name: str, args: list[str]) -> object:
    from workers.celery_app import app

    return app.send_task(name, args=args, ignore_result=True)


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def runtime() -> WorkerRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime()
        return _runtime
