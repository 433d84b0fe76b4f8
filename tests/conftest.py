"""Real servers for every test: PostgreSQL and Redis from DATABASE_URL / REDIS_URL, else embedded ones.

Each run gets a fresh database built by the migrations (never `create_all`) and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from psycopg import sql
from redis.asyncio import Redis

from quorum.database import Database, create_app_engine
from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, wait_for_port
from quorum.settings import Settings, load_settings
from tenants.db_commands import bootstrap
from tests.fakes.bybit_v5 import DEFAULT_INSTRUMENTS, FakeBybitV5
from tests.fakes.fcm import FakeFcm
from workers.market.replay import default_ohlcv_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its root is private to root, and PostgreSQL runs as another user.
    scratch = Path(tempfile.mkdtemp(prefix="quorum-test-"))
    yield scratch
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url(scratch_dir: Path) -> Iterator[str]:
    """A real PostgreSQL server: DATABASE_URL's, else an embedded one for this session."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    pg = EmbeddedPostgres(scratch_dir / "postgres", free_port())
    pg.start()
    try:
        yield pg.url
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def redis_url(scratch_dir: Path) -> Iterator[str]:
    """A real Redis server: REDIS_URL's, else an embedded one for this session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis(scratch_dir / "redis", free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def make_settings(database_url: str, redis_url: str, **overrides: str) -> Settings:
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "LOG_FORMAT": "console",
        "LOGIN_ATTEMPTS_PER_ACCOUNT": "1000",
        "LOGIN_ATTEMPTS_PER_IP": "100000",
        "REGISTRATIONS_PER_IP": "100000",
        "REGISTRATIONS_GLOBAL": "100000",
        **{k.upper(): v for k, v in overrides.items()},
    }
    return load_settings(env)


@pytest.fixture(scope="session")
def settings(postgres_admin_url: str, redis_url: str) -> Iterator[Settings]:
    admin_url, redis = postgres_admin_url, redis_url
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
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The application role's pool, as the API and workers open it."""
    db = Database(create_app_engine(settings))
    yield db
    await db.dispose()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def account(client: AsyncTestClient[Litestar]) -> Account:
    return await register(client)


def child_environ(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a real subprocess (API server, Celery worker) that uses these settings."""
    return {**os.environ, **settings.as_environ(), "PYTHONPATH": str(REPO_ROOT), **extra}


@pytest.fixture(scope="session")
def api_server(settings: Settings) -> Iterator[str]:
    """A real API server process (uvicorn) on a free port; yields its base URL."""
    port = free_port()
    # No worker runs beside this server: linking a real exchange key gives up (503) after a moment.
    env = child_environ(settings, PORT=str(port), KEY_CHECK_TIMEOUT_SECONDS="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "quorum.cli", "serve"], env=env, cwd=REPO_ROOT)
    try:
        wait_for_port(port, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="session")
def fake_bybit() -> Iterator[FakeBybitV5]:
    with FakeBybitV5() as server:
        yield server


@pytest.fixture(scope="session")
def bybit_market_dir(scratch_dir: Path) -> Path:
    """QUORUM_DATA_DIR with one series for the fake Bybit's BTC/USDT:USDT: the recorded ETH/BTC 5m candles
    moved to the fake's mark price (it fills market orders there; the candles' shape is real, their level moved)."""
    folder = scratch_dir / "bybit-market"
    (folder / "ohlcv").mkdir(parents=True, exist_ok=True)
    with (default_ohlcv_dir() / "ETH_BTC-5m.csv").open() as f:
        rows = list(csv.reader(f))
    closes = sorted(float(r[4]) for r in rows[1:])
    mark = next(i.mark_price for i in DEFAULT_INSTRUMENTS if i.symbol == "BTCUSDT")
    scale = mark / closes[len(closes) // 2]
    with (folder / "ohlcv" / "BTC_USDT_USDT-5m.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(rows[0])
        for r in rows[1:]:
            out.writerow([r[0], *(f"{float(v) * scale:.2f}" for v in r[1:5]), r[5]])
    return folder


@pytest.fixture(scope="session")
def fake_fcm(scratch_dir: Path) -> Iterator[FakeFcm]:
    """Google's token endpoint and FCM, reached by the real firebase-admin client (see tests/fakes/fcm.py)."""
    directory = scratch_dir / "fcm"
    directory.mkdir(exist_ok=True)
    with FakeFcm(directory) as server:
        yield server


@pytest.fixture(scope="session")
def key_check_worker(settings: Settings, fake_bybit: FakeBybitV5, fake_fcm: FakeFcm,
                     scratch_dir: Path) -> Iterator[Path]:
    """The real Celery worker of the test session: Bybit adapters talk to the fake, push goes to the fake FCM.
    Yields the file its output goes to. (One worker only: every worker consumes the same queue.)"""
    # Paper bots' closes (workers/close.py) read their prices from the recorded candles.
    env = child_environ(settings, EXCHANGE_API_OVERRIDES=f"bybit={fake_bybit.origin}", LOG_LEVEL="DEBUG",
                        MARKET_DATA="replay", **fake_fcm.client_environment())
    log_path = scratch_dir / "key-check-worker.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "threads",
             "--concurrency", "8", "--loglevel", "DEBUG", "-n", f"keys-{uuid.uuid4().hex[:6]}@%h"],
            env=env, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
        )
        ping = "from workers.celery_app import app; app.send_task('quorum.ping').get(timeout=60)"
        ready = subprocess.run([sys.executable, "-c", ping], env=env, cwd=REPO_ROOT, timeout=90)
        assert ready.returncode == 0
        try:
            yield log_path
        finally:
            worker.terminate()
            worker.wait(30)


async def eventually(check: Callable[[], object], within: float = 30.0, interval: float = 0.2) -> None:
    """Wait until `check()` is truthy (work another process does, e.g. the Celery worker); fail after `within` s."""
    for _ in range(max(1, int(within / interval))):
        if check():
            return
        await asyncio.sleep(interval)
    assert check(), f"still not true after {within} s"
