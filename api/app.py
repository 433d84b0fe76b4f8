"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api.accounts.routes import AuthController, MeController
from api.auth import BearerAuthenticationMiddleware
from api.dependencies import DEPENDENCIES
from api.errors import EXCEPTION_HANDLERS
from api.health import health, ready
from api.middleware import RequestContextMiddleware, TrustedProxies
from api.openapi import BEARER_SCHEME, forbid_unknown_properties
from api.rate_limits import RateLimiter
from quorum.database import Database, create_app_engine
from quorum.logs import configure_logging
from quorum.redis import create_redis
from quorum.settings import Settings, get_settings
from tenants.accounts import AccountService
from tenants.passwords import PasswordHashing
from tenants.tokens import TokenSigner

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    settings.check()
    configure_logging(settings.effective_log_format, settings.log_level)

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
        )
        try:
            yield
        finally:
            await redis.aclose()
            await database.dispose()

    app = Litestar(
        route_handlers=[health, ready, AuthController, MeController],
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
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_request_body_bytes,
        openapi_config=openapi_config(),
        logging_config=None,  # quorum.logs configures logging once for every process
        debug=False,
    )
    # Outermost, around Litestar's own exception handling: every response (404s included) carries
    # the request id, and every log line of the request can name it.
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler, TrustedProxies(settings.trusted_proxies))
    forbid_unknown_properties(app.openapi_schema)  # built once here; /schema serves this same object
    return app


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Quorum API",
        version=API_VERSION,
        description="Backend for AI trading bots on mobile. Errors are RFC 9457 problem details.",
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={BEARER_SCHEME: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        use_handler_docstrings=True,
    )
