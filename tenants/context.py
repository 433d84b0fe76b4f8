"""The tenant context: every tenant-data transaction is opened for a principal, and only while it is live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import Database, set_tenant
from tenants.errors import Unauthenticated
from tenants.principal import Principal, PrincipalKind

# Scopes the transaction to the tenant and checks the session in one statement (migration 0003).
_BEGIN_USER = text("SELECT begin_tenant_session(:tenant, :session, :user)")


class TenantDatabase:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self, principal: Principal) -> AsyncIterator[AsyncSession]:
        """The caller's tenant transaction; a user's session must still be live (logout, deactivation and
        password changes take effect at once). API keys are checked live when they authenticate."""
        async with self.db.sessions() as session, session.begin():
            if principal.kind is PrincipalKind.USER:
                live = await session.scalar(_BEGIN_USER, {"tenant": principal.tenant_id,
                                                          "session": principal.session_id, "user": principal.user_id})
                if not live:
                    raise Unauthenticated("the session has ended; log in again")
            else:
                await set_tenant(session, principal.tenant_id)
            yield session
