"""The database engine for the application role: ORM sessions and bare driver connections, the two primitives
that `tenants.scope.TenantScope` (the one door to tenant data) opens transactions on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError, InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from quorum.settings import Settings

TENANT_SETTING = "app.tenant_id"
_CONNECTION_LOST = (asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError,
                    ConnectionError)
_SERVER_SETTINGS = {"application_name": "quorum", "statement_timeout": "30000"}
# Connection exceptions (class 08), and admin shutdown, crash shutdown, cannot connect now (57P01-57P03).
_SERVER_GONE = ("08", "57P01", "57P02", "57P03")


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
    dsn = settings.app_database_url

    async def connect() -> asyncpg.Connection:
        try:
            return await asyncpg.connect(dsn, server_settings=_SERVER_SETTINGS)
        except (asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError) as exc:
            # "starting up" / "shutting down": asyncpg raises these from connect, where SQLAlchemy does not
            # translate them; they mean PostgreSQL is briefly unavailable (503), not that the request is bad.
            raise ConnectionError(f"PostgreSQL is not accepting connections: {exc}") from exc

    engine = create_async_engine(
        async_url(dsn),
        async_creator=connect,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_recycle=1800,
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed_connection)
    event.listen(engine.sync_engine, "handle_error", _server_gone_is_a_disconnect)
    return engine


def _server_gone_is_a_disconnect(context: ExceptionContext) -> None:
    """A statement cut off by a shutting-down or restarted server is a lost connection (the pool replaces it
    and the API answers 503), whatever words asyncpg used for it."""
    error = context.original_exception
    sqlstate = getattr(error, "sqlstate", None) or getattr(error.__cause__, "sqlstate", None) or ""
    if sqlstate.startswith(_SERVER_GONE):
        context.is_disconnect = True


def _replace_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A restarted PostgreSQL closes every pooled connection; asyncpg sees the socket close while it idles,
    so checking costs nothing (unlike `pool_pre_ping`'s round trip per checkout). The pool then replaces
    this connection and every one opened before it, instead of failing the next request on each of them."""
    if dbapi_connection.driver_connection.is_closed():
        raise InvalidatePoolError("PostgreSQL closed this pooled connection")


class Database:
    """The application role's pool. Tenant transactions are opened only through `tenants.scope.TenantScope`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection as asyncpg itself, for hot paths where SQLAlchemy's per-statement work costs
        several times the query (see bench/load.py). The same pool, settings and checkout checks as sessions;
        a connection that lost its server or was left inside a transaction is discarded, not pooled."""
        # Through an AsyncConnection, not `raw_connection()`: giving a connection back may close it (the
        # pool is full of overflow, or it is invalidated), and closing awaits, which only SQLAlchemy's
        # async layer can do (from plain code it raised MissingGreenlet and leaked the connection).
        async with self.engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            driver: asyncpg.Connection = pooled.driver_connection  # type: ignore[assignment]
            try:
                yield driver
            except Exception as exc:
                # Sessions get this from SQLAlchemy; here asyncpg's own errors say the server went away.
                if isinstance(exc, _CONNECTION_LOST) or driver.is_closed():
                    raise DisconnectionError(f"PostgreSQL connection lost: {type(exc).__name__}") from exc
                raise
            finally:
                if driver.is_closed() or driver.is_in_transaction():
                    await connection.invalidate()

    async def ping(self) -> None:
        """Raise unless PostgreSQL answers a trivial query on a pooled connection (readiness)."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()
