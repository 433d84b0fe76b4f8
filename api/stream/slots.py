"""How many live streams one user, or one API key, holds open at once, counted in Redis across API processes.

Each open stream is a member of its holder's sorted set, scored with the time (Redis's clock) it last said
it was alive. A stream renews its entry whenever it re-checks its session or key (every few seconds); an
entry not renewed for `SLOT_TTL_SECONDS` (its process crashed or hung) no longer counts, so a lost process
gives its slots back within that time instead of never.
"""

from __future__ import annotations

import uuid

import anyio
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from tenants.errors import TooManyRequests
from tenants.principal import Principal, PrincipalKind

SLOT_TTL_SECONDS = 30  # a stream renews every RECHECK_SECONDS (3 s); ten missed renewals and its slot is free

# KEYS[1]: the holder's set. ARGV: ttl, cap, stream id. 0 when the stream got its slot, else the seconds
# until the least recently renewed slot would lapse (the earliest one could free up if its stream is gone).
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, math.ceil(tonumber(oldest[2]) + ttl - now))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
return 0
"""

# KEYS[1]: the holder's set. ARGV: ttl, stream id. 1 when renewed; 0 when the slot had lapsed (not re-taken:
# its place may be someone else's by now).
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
local clock = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(clock[1]) + tonumber(clock[2]) / 1000000, ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


class StreamSlot:
    """One stream's place among its holder's; renew it while the stream lives, release it when it ends."""

    def __init__(self, redis: Redis, renew_script: AsyncScript, key: str, ttl: int) -> None:
        self._redis = redis
        self._renew = renew_script
        self._key = key
        self._ttl = ttl
        self.id = str(uuid.uuid4())

    async def renew(self) -> bool:
        """False when the slot lapsed (the stream went unrenewed too long): the stream should end."""
        return bool(await self._renew(keys=[self._key], args=[self._ttl, self.id]))

    async def release(self) -> None:
        # Shielded: a stream usually ends because its client went away, and the request's cancellation
        # would cancel this too and leave the slot taken until it lapses.
        with anyio.CancelScope(shield=True):
            await self._redis.zrem(self._key, self.id)


class StreamSlots:
    def __init__(self, redis: Redis, *, per_user: int, per_api_key: int, ttl: int = SLOT_TTL_SECONDS,
                 prefix: str = "quorum:streams") -> None:
        self.redis = redis
        self.per_user = per_user
        self.per_api_key = per_api_key
        self.ttl = ttl
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)

    async def take(self, principal: Principal) -> StreamSlot:
        """A slot for one more stream of this user (all their sessions together) or this API key;
        TooManyRequests with the seconds to wait when they already hold as many as allowed."""
        if principal.kind is PrincipalKind.API_KEY:
            key, cap, holder = f"{self.prefix}:key:{principal.api_key_id}", self.per_api_key, "this API key"
        else:
            key, cap, holder = f"{self.prefix}:user:{principal.user_id}", self.per_user, "this user"
        slot = StreamSlot(self.redis, self._renew, key, self.ttl)
        wait = int(await self._take(keys=[key], args=[self.ttl, cap, slot.id]))
        if wait:
            raise TooManyRequests(f"{holder} already has {cap} live streams open; close one first", retry_after=wait)
        return slot
