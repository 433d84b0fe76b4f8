"""What route handlers may ask for by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from tenants.accounts import AccountService, ClientInfo
from tenants.activity import ActivityService
from tenants.admin import AdminService
from tenants.api_keys import ApiKeyService
from tenants.bots import BotService
from tenants.closes import CloseService
from tenants.devices import DeviceService
from tenants.exchange_keys import ExchangeKeyService
from tenants.principal import Principal
from tenants.webhooks import WebhookService


def provide_principal(request: Request[Principal, Any, Any]) -> Principal:
    """The caller, as authenticated (api/auth.py), with this request's address."""
    return request.user


def provide_client(request: Request[Any, Any, Any]) -> ClientInfo:
    """Who is on the other end before there is a principal (registering, logging in, refreshing)."""
    return ClientInfo(ip=request.scope["state"].get("client_ip", ""), user_agent=request.headers.get("user-agent", ""))


# Each service by the name handlers ask for it: built once by the app's lifespan, kept on its state.
SERVICES = ("accounts", "api_keys", "bots", "closes", "exchange_keys", "devices", "webhooks", "activity", "admin")


def _from_state(name: str) -> Callable[[State], Any]:
    def provide(state: State) -> Any:
        return getattr(state, name)

    return provide


DEPENDENCIES = {
    "principal": Provide(provide_principal, sync_to_thread=False),
    "client": Provide(provide_client, sync_to_thread=False),
    **{name: Provide(_from_state(name), sync_to_thread=False) for name in SERVICES},
}

# Annotations for handler parameters: `principal: CurrentPrincipal`, `accounts: Accounts`.
CurrentPrincipal = NamedDependency[Principal]
Client = NamedDependency[ClientInfo]
Accounts = NamedDependency[AccountService]
ApiKeys = NamedDependency[ApiKeyService]
Bots = NamedDependency[BotService]
Closes = NamedDependency[CloseService]
ExchangeKeys = NamedDependency[ExchangeKeyService]
Devices = NamedDependency[DeviceService]
Webhooks = NamedDependency[WebhookService]
Activity = NamedDependency[ActivityService]
Admin = NamedDependency[AdminService]
