"""The one door to tenant data: a `TenantScope` says whose rows a transaction may see, and opens it.

A scope comes from a request's `Principal` (a user's session is checked live as the transaction begins, so
logout, deactivation and password changes take effect at once; an API key was checked when it authenticated),
from a task's tenant id (workers carry ids only and set the tenant themselves), or from no tenant at all
(`NO_TENANT`: only the narrow SECURITY DEFINER functions that span tenants answer there). It opens exactly two
kinds of transaction, under the same application role and the same row-level security:

* `session(db)`: an ORM session, for writes and everything that is not a hot path;
* `connection(db, read_only=...)`: the bare asyncpg connection, for hot reads and the cycle's statements, where
  SQLAlchemy's per-statement work costs several times the query (bench/load.py, bench/cycles.py).

Nothing else begins a tenant transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import TENANT_SETTING, Database
from tenants.errors import Unauthenticated
from tenants.principal import Principal, PrincipalKind

# Scopes the transaction to the tenant and checks the user's session in one statement (migration 0003).
_BEGIN_USER = "SELECT begin_tenant_session($1, $2, $3)"
_SET_TENANT = f"SELECT set_config('{TENANT_SETTING}', $1, true)"
_SESSION_ENDED = "the session has ended; log in again"


class TenantScope:
    """Whose data a transaction sees: one tenant (checked live for a user's session), or none."""

    __slots__ = ("principal", "tenant_id")

    def __init__(self, tenant_id: uuid.UUID | None, principal: Principal | None = None) -> None:
        self.tenant_id = tenant_id
        self.principal = principal

    @classmethod
    def of(cls, who: Principal | uuid.UUID | None) -> TenantScope:
        """The scope of a request's principal, of a task's tenant id, or of no tenant (None)."""
        if isinstance(who, Principal):
            return cls(who.tenant_id, who)
        return cls(who)

    @property
    def _checks_session(self) -> bool:
        return self.principal is not None and self.principal.kind is PrincipalKind.USER

    @asynccontextmanager
    async def session(self, db: Database) -> AsyncIterator[AsyncSession]:
        """An ORM transaction in this scope; it commits when the block ends, rolls back on an error."""
        async with db.sessions() as session, session.begin():
            # The scoping statement goes straight to the connection: through the ORM it cost a third of a
            # one-query request (bench/load.py).
            connection = await session.connection()
            if self._checks_session:
                p = self.principal
                assert p is not None
                live = (await connection.exec_driver_sql(_BEGIN_USER, (p.tenant_id, p.session_id, p.user_id))).scalar()
                if not live:
                    raise Unauthenticated(_SESSION_ENDED)
            else:
                await connection.exec_driver_sql(_SET_TENANT, (self._tenant_text(),))
            yield session

    @asynccontextmanager
    async def connection(self, db: Database, *, read_only: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """The same transaction on the bare driver; a failed statement rolls it back, and a connection left
        inside it (a cancelled block) is discarded, which the server rolls back."""
        async with db.driver_connection() as conn:
            if read_only or self._checks_session:
                async with conn.transaction(readonly=read_only):
                    await self._scope_driver(conn)
                    yield conn
                return
            # A task's read-write transaction (the cycle's claim and finish): BEGIN and the scoping in one round
            # trip, which a bound parameter cannot do (a multi-statement text takes none). The only value in the
            # text is a UUID re-rendered by uuid.UUID: hex digits and dashes, nothing a caller can shape.
            await conn.execute(f"BEGIN; SELECT set_config('{TENANT_SETTING}', '{self._tenant_text()}', true)")
            try:
                yield conn
            except Exception:
                if not conn.is_closed():
                    with suppress(Exception):  # else the connection is discarded as still in it
                        await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _scope_driver(self, conn: asyncpg.Connection) -> None:
        if self._checks_session:
            p = self.principal
            assert p is not None
            if not await conn.fetchval(_BEGIN_USER, p.tenant_id, p.session_id, p.user_id):
                raise Unauthenticated(_SESSION_ENDED)
        else:
            await conn.execute(_SET_TENANT, self._tenant_text())

    def _tenant_text(self) -> str:
        return str(uuid.UUID(str(self.tenant_id))) if self.tenant_id else ""


NO_TENANT = TenantScope(None)
