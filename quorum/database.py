"""The database engine for the application role and the one way to open a tenant-scoped transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from quorum.settings import Settings

TENANT_SETTING = "app.tenant_id"
_SET_TENANT = text(f"SELECT set_config('{TENANT_SETTING}', :tenant_id, true)")


def async_url(url: str) -> str:
    """SQLAlchemy's asyncpg URL for a plain `postgresql://` URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def sync_url(url: str) -> str:
    """SQLAlchemy's psycopg URL, used by migrations and bootstrap commands."""
    return "postgresql+psycopg://" + async_url(url)[len("postgresql+asyncpg://"):]


def create_app_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        async_url(settings.app_database_url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "quorum", "statement_timeout": "30000"}},
    )


class Database:
    """Sessions on the application role. Every transaction names its tenant, or none."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    @asynccontextmanager
    async def transaction(self, tenant_id: uuid.UUID | None) -> AsyncIterator[AsyncSession]:
        """A transaction in which row-level security shows only `tenant_id`'s rows (none when None)."""
        async with self.sessions() as session, session.begin():
            await set_tenant(session, tenant_id)
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


async def set_tenant(session: AsyncSession, tenant_id: uuid.UUID | None) -> None:
    """Scope the current transaction to one tenant (transaction-local, so a pooled connection forgets it)."""
    await session.execute(_SET_TENANT, {"tenant_id": str(tenant_id) if tenant_id else ""})
