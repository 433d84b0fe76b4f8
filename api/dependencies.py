"""What route handlers may ask for by name."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from tenants.accounts import AccountService
from tenants.activity import ActivityService
from tenants.admin import AdminService
from tenants.api_keys import ApiKeyService
from tenants.bots import BotService
from tenants.devices import DeviceService
from tenants.exchange_keys import ExchangeKeyService
from tenants.principal import Principal
from tenants.webhooks import WebhookService


def provide_principal(request: Request[Principal, Any, Any]) -> Principal:
    return request.user


def provide_accounts(state: State) -> AccountService:
    return state.accounts


def provide_api_keys(state: State) -> ApiKeyService:
    return state.api_keys


def provide_bots(state: State) -> BotService:
    return state.bots


def provide_exchange_keys(state: State) -> ExchangeKeyService:
    return state.exchange_keys


def provide_devices(state: State) -> DeviceService:
    return state.devices


def provide_webhooks(state: State) -> WebhookService:
    return state.webhooks


def provide_activity(state: State) -> ActivityService:
    return state.activity


def provide_admin(state: State) -> AdminService:
    return state.admin


DEPENDENCIES = {
    "principal": Provide(provide_principal, sync_to_thread=False),
    "accounts": Provide(provide_accounts, sync_to_thread=False),
    "api_keys": Provide(provide_api_keys, sync_to_thread=False),
    "bots": Provide(provide_bots, sync_to_thread=False),
    "exchange_keys": Provide(provide_exchange_keys, sync_to_thread=False),
    "devices": Provide(provide_devices, sync_to_thread=False),
    "webhooks": Provide(provide_webhooks, sync_to_thread=False),
    "activity": Provide(provide_activity, sync_to_thread=False),
    "admin": Provide(provide_admin, sync_to_thread=False),
}

# Annotations for handler parameters: `principal: CurrentPrincipal`, `accounts: Accounts`.
CurrentPrincipal = NamedDependency[Principal]
Accounts = NamedDependency[AccountService]
ApiKeys = NamedDependency[ApiKeyService]
Bots = NamedDependency[BotService]
ExchangeKeys = NamedDependency[ExchangeKeyService]
Devices = NamedDependency[DeviceService]
Webhooks = NamedDependency[WebhookService]
Activity = NamedDependency[ActivityService]
Admin = NamedDependency[AdminService]
