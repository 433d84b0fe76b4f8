"""The shared async Redis client factory."""

from __future__ import annotations

from redis.asyncio import Redis

from quorum.settings import Settings


def create_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=200,
    )
