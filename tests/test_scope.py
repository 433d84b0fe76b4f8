"""The one door to tenant data: both ways in (ORM session, driver connection) see one tenant's rows, end with
the session that opened them, and no tenant at all sees nothing."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import func, select

from quorum.database import Database
from tenants.errors import Unauthenticated
from tenants.models import User
from tenants.scope import NO_TENANT, TenantScope
from tests.conftest import register


async def _principal(client, account):
    return client.app.state.accounts.principal_from_access_token(account.tokens["accessToken"])


async def _users_seen(scope: TenantScope, database: Database) -> tuple[int, int]:
    async with scope.session(database) as session:
        orm = await session.scalar(select(func.count()).select_from(User))
    async with scope.connection(database, read_only=True) as conn:
        driver = await conn.fetchval("SELECT count(*) FROM users")
    return orm, driver


async def test_a_principals_scope_sees_its_own_tenant_only_through_both_doors(client, database: Database):
    first, second = await register(client), await register(client)
    principal = await _principal(client, first)
    assert await _users_seen(TenantScope.of(principal), database) == (1, 1)
    async with TenantScope.of(principal).connection(database, read_only=True) as conn:
        emails = await conn.fetch("SELECT email FROM users")
    assert [r["email"] for r in emails] == [first.email]
    assert second.email != first.email


async def test_a_tasks_tenant_id_scopes_like_its_principal(client, database: Database):
    account = await register(client)
    principal = await _principal(client, account)
    assert await _users_seen(TenantScope.of(principal.tenant_id), database) == (1, 1)


async def test_no_tenant_sees_no_tenants_rows(client, database: Database):
    await register(client)
    assert await _users_seen(NO_TENANT, database) == (0, 0)
    assert await _users_seen(TenantScope.of(uuid.uuid4()), database) == (0, 0)


async def test_both_doors_close_when_the_session_ends(client, database: Database):
    account = await register(client)
    principal = await _principal(client, account)
    assert (await client.post("/v1/auth/logout", headers=account.headers)).status_code == 204
    with pytest.raises(Unauthenticated):
        async with TenantScope.of(principal).session(database):
            pass
    with pytest.raises(Unauthenticated):
        async with TenantScope.of(principal).connection(database, read_only=True):
            pass


async def test_a_read_only_connection_refuses_writes_and_a_failed_write_keeps_nothing(client, database: Database):
    account = await register(client)
    principal = await _principal(client, account)
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        async with TenantScope.of(principal).connection(database, read_only=True) as conn:
            await conn.execute("UPDATE users SET email = 'x' || email")
    with pytest.raises(RuntimeError):
        async with TenantScope.of(principal.tenant_id).connection(database) as conn:
            await conn.execute("UPDATE users SET email = 'changed-' || email")
            raise RuntimeError("the cycle failed after its write")
    async with TenantScope.of(principal).connection(database, read_only=True) as conn:
        assert await conn.fetchval("SELECT email FROM users") == account.email
