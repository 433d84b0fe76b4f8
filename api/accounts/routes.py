"""Accounts API: register, login, refresh, logout, me, change password."""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.accounts.schemas import (
    ChangePasswordRequest,
    LoginRequest,
    MeResponse,
    RefreshRequest,
    RegisterRequest,
    TenantView,
    TokenResponse,
)
from api.auth import PUBLIC, requires
from api.dependencies import Accounts, Client, CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, BODY, problems
from tenants.accounts import TokenPair, normalise_email
from tenants.errors import TooManyRequests, Unprocessable
from tenants.passwords import judge_new_password
from tenants.principal import Principal, Scope


async def _require_strong(password: str, field: str, hints: list[str]) -> None:
    """A new password that is easy to guess is refused like any invalid field, naming it and saying why."""
    reason = await judge_new_password(password, hints)
    if reason is not None:
        raise Unprocessable(f"{field}: {reason}", errors=[{"field": field, "message": reason}])


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         token_type=pair.token_type, expires_in=pair.expires_in)


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]

    @post("/register", opt=PUBLIC, status_code=HTTP_201_CREATED,
          summary="Create an account: a new tenant and its owner", responses=problems(BODY, BACKEND, 409, 429))
    async def register(self, data: RegisterRequest, request: Request[Any, Any, Any], client: Client,
                       accounts: Accounts) -> TokenResponse:
        # Judged before the throttle counts the attempt: retrying after a weak password costs no registration.
        email = normalise_email(data.email)
        await _require_strong(data.password, "password", [email, email.split("@")[0], data.tenant_name or ""])
        settings = request.app.state.settings
        wait = await request.app.state.rate_limiter.hit(
            settings.registration_window_seconds,
            {f"register:ip:{client.ip}": settings.registrations_per_ip,
             "register:all": settings.registrations_global},
        )
        if wait:
            raise TooManyRequests("too many accounts created; try again later", retry_after=wait)
        return _tokens(await accounts.register(data.email, data.password, data.tenant_name, client))

    @post("/login", opt=PUBLIC, status_code=HTTP_200_OK, summary="Log in with email and password",
          responses=problems(BODY, BACKEND, 401, 429))
    async def login(self, data: LoginRequest, request: Request[Any, Any, Any], client: Client,
                    accounts: Accounts) -> TokenResponse:
        settings = request.app.state.settings
        account_key = "login:acct:" + hashlib.sha256(normalise_email(data.email).encode()).hexdigest()[:32]
        ip_key = f"login:ip:{client.ip}"
        wait = await request.app.state.rate_limiter.hit(
            settings.login_window_seconds,
            {account_key: settings.login_attempts_per_account, ip_key: settings.login_attempts_per_ip},
        )
        if wait:
            raise TooManyRequests("too many login attempts; try again later", retry_after=wait)
        pair = await accounts.login(data.email, data.password, client)
        await request.app.state.rate_limiter.reset(account_key)
        return _tokens(pair)

    @post("/refresh", opt=PUBLIC, status_code=HTTP_200_OK,
          summary="Exchange a refresh token for a new pair (each refresh token works once)",
          responses=problems(BODY, BACKEND, 401))
    async def refresh(self, data: RefreshRequest, client: Client, accounts: Accounts) -> TokenResponse:
        return _tokens(await accounts.refresh(data.refresh_token, client))

    @post("/logout", status_code=HTTP_204_NO_CONTENT, guards=[requires(Scope.ACCOUNT)],
          summary="End this session", responses=problems(AUTHENTICATED, BACKEND), security=BEARER)
    async def logout(self, principal: CurrentPrincipal, accounts: Accounts) -> None:
        await accounts.logout(principal)


class MeController(Controller):
    path = "/v1/me"
    tags = ["account"]
    guards = [requires(Scope.ACCOUNT)]
    security = BEARER

    @get("/", summary="The calling user and their tenant", responses=problems(AUTHENTICATED, BACKEND))
    async def me(self, request: Request[Principal, Any, Any], accounts: Accounts) -> MeResponse:
        # request.user rather than the `principal` dependency: with two dependencies Litestar starts a task
        # group to resolve them, a sixth of this route's time (bench/load.py). The guard has checked it.
        me = await accounts.me(request.user)
        return MeResponse(id=me.user_id, email=me.email, role=me.role,
                          tenant=TenantView(id=me.tenant_id, name=me.tenant_name),
                          created_at=me.created_at, last_login_at=me.last_login_at)

    @post("/password", status_code=HTTP_204_NO_CONTENT, responses=problems(BODY, AUTHENTICATED, BACKEND),
          summary="Change the password; every other session is ended")
    async def change_password(self, data: ChangePasswordRequest, principal: CurrentPrincipal,
                              accounts: Accounts) -> None:
        await _require_strong(data.new_password, "newPassword", [data.current_password])
        await accounts.change_password(principal, data.current_password, data.new_password)
