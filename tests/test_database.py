"""The asyncpg fast path shares the SQLAlchemy pool: connections go back to it, or are closed, properly."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest

from quorum.database import Database, create_app_engine
from quorum.settings import Settings
from tenants.scope import TenantScope
from tests.conftest import Account, register


async def test_more_tenant_connections_at_once_than_the_pool_holds_all_go_back(
    client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the pool's size, SQLAlchemy closes the overflow connections as they come back; that must
    happen through its async layer (it once raised MissingGreenlet and leaked them)."""
    account: Account = await register(client)
    tenant = (await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"]
    database = Database(create_app_engine(msgspec.structs.replace(settings, database_pool_size=2)))

    async def one() -> int:
        async with TenantScope.of(tenant).connection(database) as conn:
            await conn.execute("SELECT pg_sleep(0.02)")
            return await conn.fetchval("SELECT count(*) FROM users")

    with caplog.at_level(logging.WARNING, logger="sqlalchemy"):
        counts = await asyncio.gather(*(one() for _ in range(12)))
    assert counts == [1] * 12  # row-level security: this tenant's one user, on every connection
    assert database.engine.pool.checkedout() == 0
    assert database.engine.pool.overflow() <= 0, database.engine.pool.status()
    assert not [r for r in caplog.records if "closing connection" in r.getMessage()]
    await database.dispose()
