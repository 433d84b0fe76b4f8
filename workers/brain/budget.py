"""The daily LLM token budget per tenant, counted in Redis so every worker sees the same total.

One counter per tenant per UTC day (`INCRBY`, expiring a day after that day ends). The budget is
checked before each call: a tenant at or past it gets the rules brain until midnight UTC. Calls that
were already in flight may overshoot by their own size; the check stops the next ones. The first
check that finds the budget spent also wins a once-per-day flag (`SET NX`), so the caller tells the
user exactly once.

`LocalOnlyBudget` does not limit: it exists only for a one-off `quorum decide` run with no Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from workers.brain.breaker import CoordinationUnavailable


class BudgetCheck(msgspec.Struct, frozen=True):
    allowed: bool
    used: int  # tokens spent today
    limit: int  # 0 = unlimited
    notify: bool = False  # True once per tenant per day, on the first refused check


class TokenBudget(Protocol):
    async def check(self, tenant_id: UUID) -> BudgetCheck: ...

    async def spend(self, tenant_id: UUID, tokens: int) -> int:
        """Add `tokens` to today's count; returns the new total."""
        ...


class RedisTokenBudget:
    """`daily_limit` tokens (prompt + completion) per tenant per UTC day; 0 means unlimited."""

    def __init__(
        self,
        redis: Redis,
        daily_limit: int,
        *,
        prefix: str = "quorum",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self.daily_limit = daily_limit
        self._prefix = prefix
        self._clock = clock
        self._spend = redis.register_script(_SPEND)

    def _day(self) -> tuple[str, int]:
        """Today's UTC date as YYYYMMDD, and when its keys expire (a day after it ends, epoch seconds)."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        return now.strftime("%Y%m%d"), int((midnight + timedelta(days=2)).timestamp())

    def _key(self, tenant_id: UUID, day: str) -> str:
        return f"{self._prefix}:llm-tokens:{tenant_id}:{day}"

    async def check(self, tenant_id: UUID) -> BudgetCheck:
        day, expires = self._day()
        key = self._key(tenant_id, day)
        try:
            raw = await self._redis.get(key)
            used = int(raw) if raw is not None else 0
            if self.daily_limit <= 0 or used < self.daily_limit:
                return BudgetCheck(True, used, self.daily_limit)
            told = await self._redis.set(key + ":told", b"1", nx=True, exat=expires)
        except RedisError as exc:
            raise CoordinationUnavailable(f"token budget store: {exc}") from exc
        return BudgetCheck(False, used, self.daily_limit, notify=bool(told))

    async def spend(self, tenant_id: UUID, tokens: int) -> int:
        day, expires = self._day()
        key = self._key(tenant_id, day)
        try:
            total = await self._spend(keys=[key], args=[max(0, tokens), expires])
        except RedisError as exc:
            raise CoordinationUnavailable(f"token budget store: {exc}") from exc
        return int(total)


# Add to the day's count and make it expire, atomically (a script, not a MULTI pipeline: redis-py builds a
# whole client object for every pipeline, which cost more than the call on a worker's busy loop).
_SPEND = "local total = redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('EXPIREAT', KEYS[1], ARGV[2]) return total"


class LocalOnlyBudget:
    """No budget: for a one-off local `quorum decide` run without Redis, never for workers."""

    def __init__(self) -> None:
        self.used = 0

    async def check(self, tenant_id: UUID) -> BudgetCheck:
        return BudgetCheck(True, self.used, 0)

    async def spend(self, tenant_id: UUID, tokens: int) -> int:
        self.used += max(0, tokens)
        return self.used
