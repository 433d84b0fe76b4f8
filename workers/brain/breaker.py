"""The circuit breaker around the LLM, shared by every worker through Redis.

CLOSED: calls go through; each outage (timeout, connection error, 429/5xx after the client's
retries) increments a failure counter that lives `window_seconds`. At `failure_threshold` failures
the breaker OPENs for `cooldown_seconds`: every worker skips the model and the rules brain decides.
After the cooldown it is HALF-OPEN: one worker wins a probe lock and calls; success CLOSEs the breaker,
failure re-opens it for another cooldown. State changes run as Lua scripts, so they are atomic across
workers. Time comes from the callers' clock (NTP-synchronised hosts), injectable for tests.

`LocalOnlyBreaker` never opens: it exists only for a one-off `quorum decide` run with no Redis
configured, and the command says so.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError


class CoordinationUnavailable(RuntimeError):
    """The shared store behind the breaker or the token budget could not be reached."""


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # cooled down; this caller holds the probe


class CircuitBreaker(Protocol):
    async def allow(self) -> BreakerState:
        """CLOSED or HALF_OPEN: call the model (HALF_OPEN: as the single probe). OPEN: do not."""
        ...

    async def record_success(self) -> None: ...

    async def record_failure(self) -> None: ...


# KEYS: failures, open_until, probe. ARGV: now_ms, probe_ttl_ms.
_ALLOW = """
local open_until = redis.call('GET', KEYS[2])
if not open_until then return 'closed' end
if tonumber(ARGV[1]) < tonumber(open_until) then return 'open' end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'half_open' end
return 'open'
"""

# KEYS: failures, open_until, probe. ARGV: now_ms. A late success of a call that started before the
# breaker opened does not close it; after the cooldown any success (normally the probe's) does.
_SUCCESS = """
local open_until = redis.call('GET', KEYS[2])
if open_until and tonumber(ARGV[1]) < tonumber(open_until) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""

# KEYS: failures, open_until, probe. ARGV: now_ms, threshold, window_ms, cooldown_ms, keep_ms.
# Returns 1 when this failure opened (or re-opened) the breaker.
_FAILURE = """
local now = tonumber(ARGV[1])
local open_until = redis.call('GET', KEYS[2])
if open_until then
  if now < tonumber(open_until) then return 0 end
  redis.call('SET', KEYS[2], now + tonumber(ARGV[4]), 'PX', ARGV[5])
  redis.call('DEL', KEYS[3])
  return 1
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], now + tonumber(ARGV[4]), 'PX', ARGV[5])
  redis.call('DEL', KEYS[1], KEYS[3])
  return 1
end
return 0
"""


class RedisCircuitBreaker:
    """The breaker for one upstream (`name`, e.g. the model's base URL), shared through Redis."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        *,
        failure_threshold: int = 5,
        window_seconds: float = 60.0,
        cooldown_seconds: float = 60.0,
        probe_timeout_seconds: float = 120.0,  # a probe whose worker died frees the lock after this
        prefix: str = "quorum",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        base = f"{prefix}:llm-breaker:{name}"
        self._keys = [f"{base}:failures", f"{base}:open-until", f"{base}:probe"]
        self._threshold = max(1, failure_threshold)
        self._window_ms = max(1, int(window_seconds * 1000))
        self._cooldown_ms = max(1, int(cooldown_seconds * 1000))
        self._probe_ms = max(1, int(probe_timeout_seconds * 1000))
        # The open-until key outlives the cooldown so a cooled-down breaker is half-open, not closed.
        self._keep_ms = self._cooldown_ms + 86_400_000
        self._clock = clock
        self._allow = redis.register_script(_ALLOW)
        self._success = redis.register_script(_SUCCESS)
        self._failure = redis.register_script(_FAILURE)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def allow(self) -> BreakerState:
        try:
            state = await self._allow(keys=self._keys, args=[self._now_ms(), self._probe_ms])
        except RedisError as exc:
            raise CoordinationUnavailable(f"circuit breaker store: {exc}") from exc
        return BreakerState(state.decode() if isinstance(state, bytes) else state)

    async def record_success(self) -> None:
        try:
            await self._success(keys=self._keys, args=[self._now_ms()])
        except RedisError as exc:
            raise CoordinationUnavailable(f"circuit breaker store: {exc}") from exc

    async def record_failure(self) -> None:
        try:
            await self._failure(
                keys=self._keys,
                args=[self._now_ms(), self._threshold, self._window_ms, self._cooldown_ms, self._keep_ms],
            )
        except RedisError as exc:
            raise CoordinationUnavailable(f"circuit breaker store: {exc}") from exc

    async def state(self) -> BreakerState:
        """The state as an observer sees it, without taking the probe."""
        try:
            open_until = await self._redis.get(self._keys[1])
        except RedisError as exc:
            raise CoordinationUnavailable(f"circuit breaker store: {exc}") from exc
        if open_until is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if self._now_ms() < int(open_until) else BreakerState.HALF_OPEN


class LocalOnlyBreaker:
    """No breaker: for a one-off local `quorum decide` run without Redis, never for workers."""

    async def allow(self) -> BreakerState:
        return BreakerState.CLOSED

    async def record_success(self) -> None:
        return None

    async def record_failure(self) -> None:
        return None
