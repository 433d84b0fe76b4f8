"""One authentication mechanism for every route: a Bearer access token (later also an integrator API key)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from tenants.errors import Forbidden, Unauthenticated
from tenants.principal import Principal, Scope

PUBLIC = {"exclude_from_auth": True}


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthenticated("send an access token: `Authorization: Bearer <token>`")
        accounts = connection.app.state.accounts
        principal = accounts.principal_from_access_token(credential.strip())
        return AuthenticationResult(user=principal, auth=credential)


def requires(*scopes: Scope):  # noqa: ANN201 - a Litestar guard
    """A guard: the caller must hold every one of `scopes`."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):  # e.g. a request the middleware does not authenticate
            raise Unauthenticated("send an access token: `Authorization: Bearer <token>`")
        missing = [s.value for s in scopes if s not in principal.scopes]
        if missing:
            raise Forbidden(f"this credential lacks the scope(s): {', '.join(missing)}")

    return guard
