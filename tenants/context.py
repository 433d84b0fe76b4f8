"""The tenant context: every tenant-data transaction is opened for a principal, and only while it is live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import Database
from tenants.errors import Unauthenticated
from tenants.principal import Principal, PrincipalKind

_LIVE_SESSION = text(
    "SELECT 1 FROM auth_sessions s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = u.tenant_id "
    "WHERE s.id = :sid AND u.id = :uid AND s.revoked_at IS NULL AND u.is_active AND t.is_active"
)


class TenantDatabase:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self, principal: Principal) -> AsyncIterator[AsyncSession]:
        """The caller's tenant transaction; a user's session must still be live (logout, deactivation and
        password changes take effect at once). API keys are checked live when they authenticate."""
        async with self.db.transaction(principal.tenant_id) as session:
            if principal.kind is PrincipalKind.USER:
                live = await session.scalar(_LIVE_SESSION, {"sid": principal.session_id, "uid": principal.user_id})
                if live is None:
                    raise Unauthenticated("the session has ended; log in again")
            yield session
