"""The tenant context: every tenant-data transaction is opened for a principal, and only while it is live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import TENANT_SETTING, Database
from tenants.errors import Unauthenticated
from tenants.principal import Principal, PrincipalKind

# Scopes the transaction to the tenant and checks the session in one statement (migration 0003).
_BEGIN_USER = "SELECT begin_tenant_session($1, $2, $3)"
_BEGIN_API_KEY = f"SELECT set_config('{TENANT_SETTING}', $1, true)"
_SESSION_ENDED = "the session has ended; log in again"


class TenantDatabase:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self, principal: Principal) -> AsyncIterator[AsyncSession]:
        """The caller's tenant transaction; a user's session must still be live (logout, deactivation and
        password changes take effect at once). API keys are checked live when they authenticate."""
        async with self.db.sessions() as session, session.begin():
            # The scoping statement goes straight to the connection: through the ORM it cost a third of a
            # one-query request (bench/load.py).
            connection = await session.connection()
            if principal.kind is PrincipalKind.USER:
                live = (await connection.exec_driver_sql(
                    _BEGIN_USER, (principal.tenant_id, principal.session_id, principal.user_id))).scalar()
                if not live:
                    raise Unauthenticated(_SESSION_ENDED)
            else:
                await connection.exec_driver_sql(_BEGIN_API_KEY, (str(principal.tenant_id),))
            yield session

    @asynccontextmanager
    async def reading(self, principal: Principal) -> AsyncIterator[asyncpg.Connection]:
        """The same tenant scope and liveness check as `transaction`, read-only, on the bare driver: for the
        hottest reads (GET /v1/me), where SQLAlchemy's per-statement work was most of the request's time.
        Row-level security applies exactly as in `transaction`: the same role, the same setting."""
        async with self.db.driver_connection() as connection, connection.transaction(readonly=True):
            if principal.kind is PrincipalKind.USER:
                live = await connection.fetchval(_BEGIN_USER, principal.tenant_id, principal.session_id,
                                                 principal.user_id)
                if not live:
                    raise Unauthenticated(_SESSION_ENDED)
            else:
                await connection.execute(_BEGIN_API_KEY, str(principal.tenant_id))
            yield connection
