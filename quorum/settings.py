"""The one settings object, read from the environment (names are the field names in upper case)."""

from __future__ import annotations

import enum
import logging
import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec

log = logging.getLogger(__name__)

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
DEV_APP_DB_PASSWORD = "quorum-app-dev"
# Development-only defaults; production refuses them (see Settings.check).
DEV_MASTER_KEYS = "dev:ZGV2LW9ubHktbWFzdGVyLWtleS1ub3Qtc2VjcmV0ISE="
DEV_API_KEY_HASH_KEY = "dev-api-key-hash-key-not-secret"


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """The configuration cannot run the service; the message names what is wrong."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    environment: Environment = Environment.DEVELOPMENT
    # Owner role: runs migrations and owns the tables. The API and workers never use it.
    database_url: str = ""
    # Application role: neither owns the tables nor bypasses row-level security.
    database_app_url: str = ""
    database_app_role: str = "quorum_app"
    database_app_password: str = DEV_APP_DB_PASSWORD
    database_pool_size: int = 10
    redis_url: str = ""
    secret_key: str = DEV_SECRET_KEY
    # "key-id:base64(32 bytes),older-id:base64(...)": the first wraps tenant data keys, all unwrap.
    master_keys: str = DEV_MASTER_KEYS
    # Keys the HMAC under which integrator API-key secrets are stored.
    api_key_hash_key: str = DEV_API_KEY_HASH_KEY
    api_key_rate_limit_per_minute: int = 600
    # How long linking a key waits for a worker to check it with the exchange.
    key_check_timeout_seconds: float = 20.0
    # Test servers in place of exchanges' APIs: "bybit=http://127.0.0.1:9000,binance=...". Empty in production.
    exchange_api_overrides: str = ""
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 86400
    # Two refreshes with one token this close together (a phone's requests in flight) get the same pair.
    refresh_grace_seconds: int = 30
    login_attempts_per_account: int = 10
    login_attempts_per_ip: int = 50
    login_window_seconds: int = 900
    # Each registration is an argon2 hash and a tenant: limited per client address and for the whole service.
    registrations_per_ip: int = 5
    registrations_global: int = 300
    registration_window_seconds: int = 3600
    password_hash_threads: int = 2
    # Live streams (/v1/stream) one user (all sessions together) or one API key may hold open at once.
    streams_per_user: int = 5
    streams_per_api_key: int = 5
    max_request_body_bytes: int = 1_048_576
    # A client that sends a request's line and headers, or its body, slower than this holds a connection
    # (and its buffers) for nothing: the head is cut off (connection closed), a body answered 408.
    header_read_timeout_seconds: float = 10.0
    body_read_timeout_seconds: float = 15.0  # between two pieces of a body
    keep_alive_timeout_seconds: int = 5  # an idle connection between requests is closed after this
    trusted_proxies: tuple[str, ...] = ()
    log_format: str = ""  # json or console; empty means json in production, console elsewhere
    log_level: str = "INFO"
    port: int = 8000
    data_home: str = ".quorum"
    # Prometheus: a worker serves its metrics on this port (0 = off); the API serves /metrics on PORT,
    # only with `Authorization: Bearer <token>` when a token is set, which production requires
    # (infra/README.md); outside production, without a token, to anyone.
    worker_metrics_port: int = 9100
    metrics_token: str = ""

    # Trading cycles.
    dispatch_interval_seconds: float = 15.0  # how often beat asks which bots are due
    dispatch_chunk_size: int = 200  # due bots read and enqueued per page
    cycle_batch_size: int = 16  # cycles per `quorum.run_cycles` message; they run side by side
    cycle_soft_time_limit_seconds: float = 50.0  # a cycle past this is abandoned and recorded as failed
    cycle_hard_time_limit_seconds: float = 60.0  # the worker thread is given up on after this
    cycle_concurrency: int = 128  # cycles one worker process runs at once on its event loop
    # Close now: how long the API waits for the worker's answer before answering 202 (the request goes on),
    # and how long a request may stay pending before it is handed to a worker again (its worker died).
    close_wait_seconds: float = 15.0
    close_retry_after_seconds: float = 30.0
    # Where candles come from: "ccxt" (the exchanges' public APIs), "replay" (recorded candles in
    # QUORUM_DATA_DIR/ohlcv, replayed on a clock REPLAY_SPEED times faster than real time) or "auto"
    # (ccxt when the exchange answers, else replay).
    market_data: str = "ccxt"
    replay_speed: float = 1.0
    # The symbols of a tenant's default bot; empty: BTC/USDT. The offline embedded default sets the
    # markets it has recorded candles for.
    default_bot_symbols: tuple[str, ...] = ()
    # Paper accounts: starting cash per currency, fee per fill and slippage against the taker, in %.
    paper_starting_balances: str = "USDT=10000,USDC=10000,USD=10000,BTC=1,ETH=10"
    paper_fee_pct: float = 0.1
    paper_slippage_pct: float = 0.05

    # The GPT brain (workers/brain/gpt.py reads these by name); no base URL and no key: rules brain only.
    openai_base_url: str = ""
    openai_api_key: str = ""
    openai_model: str = "gpt-4o-mini"
    openai_model_cutoff: str = ""  # YYYY-MM-DD; empty: the model's published cutoff where known
    llm_timeout_seconds: float = 20.0
    llm_max_retries: int = 2
    llm_max_completion_tokens: int = 600
    llm_breaker_failures: int = 5
    llm_breaker_window_seconds: float = 60.0
    llm_breaker_cooldown_seconds: float = 60.0
    tenant_daily_token_budget: int = 200_000  # per tenant per UTC day; 0 = unlimited

    # Push: the Firebase service-account JSON workers send with; empty: Google's Application Default
    # Credentials (GOOGLE_APPLICATION_CREDENTIALS, or the platform's), and with none of those, no push.
    firebase_credentials_file: str = ""

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def app_database_url(self) -> str:
        """The application role's URL: explicit, or the owner URL with the app role's credentials."""
        if self.database_app_url:
            return self.database_app_url
        parts = urlsplit(self.database_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{self.database_app_role}:{self.database_app_password}@{host}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.is_production else "console")

    def as_environ(self) -> dict[str, str]:
        """These settings as the environment variables that `load_settings` reads (for child processes)."""
        env: dict[str, str] = {}
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            env[field.name.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env

    def check(self, *, api: bool = False) -> None:
        """Refuse to run with a configuration that would be unsafe; say which setting is wrong.
        `api`: this process serves the API (and its /metrics), not only workers or beat."""
        problems: list[str] = []
        if not self.database_url:
            problems.append("DATABASE_URL is not set")
        if not self.redis_url:
            problems.append("REDIS_URL is not set")
        if self.is_production:
            if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
                problems.append("SECRET_KEY is missing, the development default, or shorter than 32 characters")
            if not self.master_keys or self.master_keys == DEV_MASTER_KEYS:
                problems.append("MASTER_KEYS is missing or the development default")
            if self.api_key_hash_key == DEV_API_KEY_HASH_KEY or len(self.api_key_hash_key) < 32:
                problems.append("API_KEY_HASH_KEY is missing, the development default, or shorter than 32 characters")
            if not self.database_app_url and self.database_app_password == DEV_APP_DB_PASSWORD:
                problems.append("DATABASE_APP_URL (or DATABASE_APP_PASSWORD) is missing or the development default")
            for name, url in (("DATABASE_URL", self.database_url), ("DATABASE_APP_URL", self.database_app_url)):
                if url and urlsplit(url).password == DEV_APP_DB_PASSWORD:
                    problems.append(f"{name} uses the development database password")
            if api and len(self.metrics_token) < 32:
                problems.append("METRICS_TOKEN is missing or shorter than 32 characters (/metrics would answer anyone)")
        if problems:
            raise SettingsError("refusing to start: " + "; ".join(problems))


def _from_environment(environ: dict[str, str]) -> dict[str, object]:
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        value = environ.get(field.name.upper())
        if value is None:
            continue
        if field.name in ("trusted_proxies", "default_bot_symbols"):
            raw[field.name] = tuple(v.strip() for v in value.split(",") if v.strip())
        else:
            raw[field.name] = value
    return raw


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    try:
        raw = _from_environment(env)
        if raw.get("environment") == Environment.PRODUCTION.value and raw.pop("exchange_api_overrides", ""):
            # The overrides point exchange clients at test servers; production always talks to the exchanges.
            log.warning("EXCHANGE_API_OVERRIDES is ignored in production")
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Recorded candles (`ohlcv/`) and labelled headlines (`news/`): $QUORUM_DATA_DIR, else the repository's `data/`."""
    configured = os.environ.get("QUORUM_DATA_DIR")
    return Path(configured) if configured else repo_root() / "data"
