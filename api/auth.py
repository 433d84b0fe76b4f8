"""One authentication mechanism for every route: a Bearer access token or an integrator API key (`qk_…`).

Both become the same `Principal`, so the `requires(...)` guards treat them alike.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from tenants.api_keys import is_api_key
from tenants.errors import Forbidden, TooManyRequests, Unauthenticated
from tenants.principal import Principal, Scope

PUBLIC = {"exclude_from_auth": True}
API_KEY_WINDOW_SECONDS = 60


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("send an access token or API key: `Authorization: Bearer <token>`")
        if is_api_key(credential):
            principal = await self._api_key_principal(connection, credential)
        else:
            principal = connection.app.state.accounts.principal_from_access_token(credential)
        # The acting principal carries this request's address (api/middleware.py): audit entries take it from here.
        client_ip = connection.scope["state"].get("client_ip", "")
        if client_ip:
            principal = msgspec.structs.replace(principal, client_ip=client_ip)
        return AuthenticationResult(user=principal, auth=credential)

    @staticmethod
    async def _api_key_principal(connection: ASGIConnection[Any, Any, Any, Any], credential: str) -> Principal:
        """Check the key, then count the request against the key's limit (every route, before any guard)."""
        state = connection.app.state
        principal, limit = await state.api_keys.authenticate(credential)
        wait = await state.rate_limiter.hit(API_KEY_WINDOW_SECONDS, {f"apikey:{principal.api_key_id}": limit})
        if wait:
            raise TooManyRequests(f"this API key is limited to {limit} requests a minute", retry_after=wait)
        await state.api_keys.record_use(principal)
        return principal


def requires(*scopes: Scope):  # noqa: ANN201 - a Litestar guard
    """A guard: the caller must hold every one of `scopes`."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):  # e.g. a request the middleware does not authenticate
            raise Unauthenticated("send an access token or API key: `Authorization: Bearer <token>`")
        missing = [s.value for s in scopes if s not in principal.scopes]
        if missing:
            raise Forbidden(f"this credential lacks the scope(s): {', '.join(missing)}")

    guard.scopes = frozenset(scopes)  # type: ignore[attr-defined]  # lets tests see what each route needs
    return guard
