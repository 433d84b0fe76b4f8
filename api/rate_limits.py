"""Fixed-window limits in Redis, counted atomically by one script so every API process shares them."""

from __future__ import annotations

from redis.asyncio import Redis

# KEYS: one counter per limited subject. ARGV: window seconds, then one limit per key.
# Returns 0 when every counter is within its limit, else the seconds until the first exceeded one resets.
_HIT = """
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, window) end
  if count > tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl > wait then wait = ttl end
  end
end
return wait
"""


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str = "quorum:rl") -> None:
        self.redis = redis
        self.prefix = prefix
        self._hit = redis.register_script(_HIT)

    async def hit(self, window_seconds: int, limits: dict[str, int]) -> int:
        """Count one attempt against each `subject -> limit`; return 0, or the seconds to wait."""
        keys = [f"{self.prefix}:{subject}" for subject in limits]
        return int(await self._hit(keys=keys, args=[window_seconds, *limits.values()]))

    async def reset(self, *subjects: str) -> None:
        await self.redis.delete(*(f"{self.prefix}:{s}" for s in subjects))
