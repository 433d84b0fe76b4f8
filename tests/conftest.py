"""Real servers for every test: PostgreSQL and Redis from DATABASE_URL / REDIS_URL, else embedded ones.

Each run gets a fresh database built by the migrations (never `create_all`) and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from psycopg import sql

from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from quorum.settings import Settings, load_settings
from tenants.db_commands import bootstrap

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def data_dir() -> Path:
    return Path(os.environ.get("QUORUM_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL) of real servers for this test session."""
    # Not pytest's tmp_path: its root is private to root, and PostgreSQL runs as another user.
    scratch = Path(tempfile.mkdtemp(prefix="quorum-test-"))
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    if not database_url:
        pg = EmbeddedPostgres(scratch / "postgres", free_port())
        pg.start()
        started.append(pg)
        database_url = pg.url
    if not redis_url:
        rd = EmbeddedRedis(scratch / "redis", free_port())
        rd.start()
        started.append(rd)
        redis_url = rd.url
    try:
        yield database_url, redis_url
    finally:
        for server in reversed(started):
            server.destroy() if isinstance(server, EmbeddedPostgres) else server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(server_urls: tuple[str, str]) -> str:
    return server_urls[1]


def make_settings(database_url: str, redis_url: str, **overrides: str) -> Settings:
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "LOG_FORMAT": "console",
        "LOGIN_ATTEMPTS_PER_ACCOUNT": "1000",
        "LOGIN_ATTEMPTS_PER_IP": "100000",
        **{k.upper(): v for k, v in overrides.items()},
    }
    return load_settings(env)


@pytest.fixture(scope="session")
def settings(server_urls: tuple[str, str]) -> Iterator[Settings]:
    admin_url, redis = server_urls
    name = f"quorum_test_{uuid.uuid4().hex[:10]}"
    test_settings = make_settings(_with_database(admin_url, name), redis)
    bootstrap(test_settings)
    try:
        yield test_settings
    finally:
        with psycopg.connect(_with_database(admin_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    from api.app import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


PASSWORD = "correct horse battery staple"


class Account:
    """A registered user as a test sees it: credentials, tokens and auth headers."""

    def __init__(self, email: str, tokens: dict[str, str]) -> None:
        self.email = email
        self.tokens = tokens

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['accessToken']}"}


async def register(client: AsyncTestClient[Litestar], email: str | None = None) -> Account:
    email = email or unique_email()
    response = await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return Account(email, response.json())


@pytest.fixture
async def account(client: AsyncTestClient[Litestar]) -> Account:
    return await register(client)
