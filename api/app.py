"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from api.accounts.routes import AuthController, MeController
from api.activity.routes import BotActivityController, DecisionController
from api.admin.routes import AdminController
from api.api_keys.routes import ApiKeyController
from api.audit.routes import list_audit_events
from api.auth import BearerAuthenticationMiddleware
from api.bots.routes import BotConfigController, BotController
from api.closes.routes import CloseController
from api.dependencies import DEPENDENCIES
from api.devices.routes import DeviceController, NotificationPreferencesController
from api.docs import docs_assets, render_plugins
from api.errors import EXCEPTION_HANDLERS
from api.exchange_keys.routes import ExchangeKeyController
from api.health import health, metrics, ready
from api.middleware import MethodIndex, RequestContextMiddleware, TrustedProxies
from api.openapi import BEARER_SCHEME, forbid_unknown_properties
from api.openapi_examples import document
from api.query_params import QueryIndex, check_query
from api.rate_limits import RateLimiter
from api.request_body import StrictJsonRequest
from api.stream.hub import StreamHub
from api.stream.routes import stream_events
from api.stream.slots import StreamSlots
from api.task_client import CeleryCloses, CeleryKeyCheck, CeleryWebhookQueue, CeleryWorkers, create_task_client
from api.webhooks.routes import WebhookController
from quorum.database import Database, create_app_engine
from quorum.logs import configure_logging, propagate_ids_through_celery
from quorum.redis import create_redis
from quorum.settings import Settings, get_settings
from tenants.accounts import AccountService
from tenants.activity import ActivityService
from tenants.admin import AdminService
from tenants.api_keys import ApiKeyService
from tenants.bots import BotService
from tenants.closes import CloseService
from tenants.devices import DeviceService
from tenants.exchange_keys import ExchangeKeyService
from tenants.passwords import PasswordHashing
from tenants.tokens import TokenSigner
from tenants.vault import LocalMasterKeys, Vault
from tenants.webhooks import WebhookService

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    settings.check(api=True)
    configure_logging(settings.effective_log_format, settings.log_level)
    propagate_ids_through_celery()  # the tasks a request enqueues log with its request id

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        database = Database(create_app_engine(settings))
        redis = create_redis(settings)
        app.state.database = database
        app.state.redis = redis
        app.state.rate_limiter = RateLimiter(redis)
        app.state.accounts = AccountService(
            database,
            TokenSigner(settings.secret_key, settings.access_token_ttl_seconds, settings.refresh_token_ttl_seconds),
            PasswordHashing(settings.password_hash_threads),
            settings.refresh_grace_seconds,
        )
        app.state.api_keys = ApiKeyService(
            database, redis, settings.api_key_hash_key, settings.api_key_rate_limit_per_minute
        )
        app.state.bots = BotService(database, settings.default_bot_symbols)
        tasks = create_task_client(settings)
        vault = Vault(LocalMasterKeys.from_setting(settings.master_keys))
        app.state.exchange_keys = ExchangeKeyService(
            database, vault, CeleryKeyCheck(tasks, settings.key_check_timeout_seconds),
        )
        app.state.devices = DeviceService(database)
        app.state.closes = CloseService(
            database, app.state.accounts.passwords, CeleryCloses(tasks),
            wait_seconds=settings.close_wait_seconds, retry_after_seconds=settings.close_retry_after_seconds,
        )
        # Private and loopback webhook URLs only outside production (tests and the embedded setup).
        app.state.webhooks = WebhookService(database, vault, CeleryWebhookQueue(tasks),
                                            allow_private=not settings.is_production)
        app.state.activity = ActivityService(database)
        app.state.admin = AdminService(database, redis, CeleryWorkers(tasks).ping)
        app.state.stream_hub = StreamHub(redis)
        app.state.stream_slots = StreamSlots(redis, per_user=settings.streams_per_user,
                                             per_api_key=settings.streams_per_api_key)
        try:
            yield
        finally:
            await app.state.stream_hub.close()
            tasks.close()
            await redis.aclose()
            await database.dispose()

    app = Litestar(
        route_handlers=[health, ready, metrics, AuthController, MeController, ApiKeyController,
                        ExchangeKeyController, BotController, BotConfigController, list_audit_events,
                        BotActivityController, DecisionController, CloseController, stream_events, DeviceController,
                        NotificationPreferencesController, WebhookController, AdminController, docs_assets()],
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies=DEPENDENCIES,
        middleware=[
            DefineMiddleware(
                BearerAuthenticationMiddleware,
                exclude_from_auth_key="exclude_from_auth",
                exclude_http_methods=["OPTIONS"],
                exclude=["^/schema"],
            )
        ],
        request_class=StrictJsonRequest,
        before_request=check_query,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_request_body_bytes,
        openapi_config=openapi_config(),
        logging_config=None,  # quorum.logs configures logging once for every process
        debug=False,
    )
    # Outermost, around Litestar's own exception handling: every response (404s included) carries
    # the request id, and every log line of the request can name it.
    app.asgi_handler = RequestContextMiddleware(
        app.asgi_handler, TrustedProxies(settings.trusted_proxies), MethodIndex.from_app(app),
        body_read_timeout=settings.body_read_timeout_seconds,
    )
    forbid_unknown_properties(app.openapi_schema)  # built once here; /schema serves this same object
    document(app.openapi_schema)
    app.state.query_index = QueryIndex.from_schema(app.openapi_schema)
    return app


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Quorum API",
        version=API_VERSION,
        description="Backend for AI trading bots on mobile. Errors are RFC 9457 problem details.",
        path="/schema",
        render_plugins=render_plugins(),
        components=Components(
            security_schemes={BEARER_SCHEME: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        use_handler_docstrings=True,
    )
