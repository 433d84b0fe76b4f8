"""The bot's lock in Redis: one cycle or close of a bot at a time, across every worker process."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

log = logging.getLogger("workers.cycle")

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class BotLocks:
    """Each bot's lock, held for at most `ttl` seconds (a holder that dies frees it by expiry)."""

    def __init__(self, redis: Redis, ttl: float) -> None:
        self.redis, self.ttl = redis, ttl
        self._release = redis.register_script(_RELEASE)

    @asynccontextmanager
    async def hold(self, bot_id: uuid.UUID, wait: float = 0.0) -> AsyncIterator[bool]:
        """Yield True holding the bot's lock, or False if another holder kept it for `wait` seconds.
        Raises Redis's errors when Redis cannot be reached (nothing is held then)."""
        key, token = f"quorum:bot-lock:{bot_id}", secrets.token_hex(8)
        deadline = time.monotonic() + wait
        while not await self.redis.set(key, token, nx=True, px=int(self.ttl * 1000)):
            if time.monotonic() >= deadline:
                yield False
                return
            await asyncio.sleep(0.2)
        try:
            yield True
        finally:
            try:
                await self._release(keys=[key], args=[token])
            except Exception:
                log.warning("bot lock not released; it expires by itself", extra={"bot_id": str(bot_id)})
