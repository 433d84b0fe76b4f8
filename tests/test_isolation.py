"""Tenants cannot reach each other's data through any route, and API keys only do what their scopes allow.

The routes are read from the application itself, so a new route is covered (or fails here) by default.
"""

from __future__ import annotations

import datetime
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from quorum.database import Database
from tenants.models import CloseRequest, Position
from tenants.principal import Scope
from tenants.scope import TenantScope
from tests.conftest import Account, register

# /metrics holds no tenant's data (route templates, queue depths); METRICS_TOKEN guards it, and nginx never
# forwards it (tests/test_metrics.py, tests/test_infra.py).
PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"}
# Platform operators' routes name other tenants' ids by design; tests/test_admin.py refuses them to everyone else.
OPERATOR_PATHS = "/v1/admin"
BOT = {"name": "isolation", "symbols": ["BTC/USDT"], "timeframes": ["15m"], "mode": "paper", "brain": "rules"}


def secured_operations(app: Litestar) -> list[tuple[str, str, frozenset[Scope]]]:
    """(method, path template, scopes required) of every authenticated route."""
    operations = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path in PUBLIC_PATHS or route.path.startswith("/schema"):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method == "OPTIONS":
                continue
            scopes = frozenset().union(*(getattr(g, "scopes", frozenset()) for g in handler.resolve_guards()))
            operations.append((method, route.path, scopes))
    return operations


async def _resources_of(client: AsyncTestClient, owner: Account) -> dict[str, str]:
    """Create one of everything an id can name, and return the ids by the path that names them."""
    bot = await client.post("/v1/bots", headers=owner.headers, json=BOT)
    key = await client.post("/v1/exchange-keys", headers=owner.headers, json={"exchange": "paper", "label": "p"})
    api_key = await client.post("/v1/api-keys", headers=owner.headers, json={"name": "n", "scopes": ["bots:read"]})
    webhook = await client.post("/v1/webhooks", headers=owner.headers, json={"url": "https://hooks.example.com/q"})
    device = await client.post("/v1/devices", headers=owner.headers,
                               json={"platform": "ios", "token": f"isolation-{uuid.uuid4().hex}"})
    assert bot.status_code == key.status_code == api_key.status_code == webhook.status_code == 201
    assert device.status_code == 200
    return {"/v1/bots": bot.json()["id"], "/v1/exchange-keys": key.json()["id"], "/v1/api-keys": api_key.json()["id"],
            "/v1/webhooks": webhook.json()["id"], "/v1/devices": device.json()["id"]}


async def _trading_ids(database: Database, owner_tenant: uuid.UUID, bot_id: str) -> dict[str, str]:
    """A position and a close request of the owner's, by the paths that name them. Stored directly: a position
    comes from a trade, and what is under test is who may name it."""
    now = datetime.datetime.now(datetime.UTC)
    async with TenantScope.of(owner_tenant).session(database) as session:
        position = Position(tenant_id=owner_tenant, bot_id=uuid.UUID(bot_id), symbol="BTC/USDT", side="long",
                            status="open", amount=Decimal("0.01"), entry_price=Decimal(64000), leverage=Decimal(1),
                            opened_at=now, opened_market_ms=0)
        session.add(position)
        await session.flush()
        close = CloseRequest(tenant_id=owner_tenant, scope="position", position_id=position.id, stop_bots=False,
                             request_hash="0" * 64, status="pending", targets=[], results=[], enqueued_at=now)
        session.add(close)
        await session.flush()
        return {"/v1/positions": str(position.id), "/v1/closes": str(close.id)}


def _fill(path: str, ids: dict[str, str]) -> str:
    if "{" not in path:
        return path
    if path.startswith(OPERATOR_PATHS):  # refused before any id is looked at
        return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
    prefix = next((p for p in ids if path.startswith(p + "/")), None)
    assert prefix is not None, f"tests/test_isolation.py does not know which resource names {path}: add it"
    return re.sub(r"\{[^}]+\}", ids[prefix], path)


async def test_every_route_with_an_id_answers_404_to_another_tenant(
    app: Litestar, client: AsyncTestClient, database: Database,
) -> None:
    owner, intruder = await register(client), await register(client)
    ids = await _resources_of(client, owner)
    tenant = uuid.UUID((await client.get("/v1/me", headers=owner.headers)).json()["tenant"]["id"])
    trading = await _trading_ids(database, tenant, ids["/v1/bots"])
    tried = 0
    for method, template, _ in secured_operations(app):
        if "{" not in template or template.startswith(OPERATOR_PATHS):
            continue
        path = _fill(template, {**ids, **trading})
        body: dict[str, Any] | None = {} if method in ("PUT", "PATCH") else None
        response = await client.request(method, path, headers=intruder.headers, json=body)
        assert response.status_code == 404, f"{method} {path} answered {response.status_code} to another tenant"
        # `instance` echoes the path the intruder sent; nothing else may name the owner's resources.
        answer = {k: v for k, v in response.json().items() if k != "instance"}
        assert not any(i in str(answer) for i in (*ids.values(), *trading.values())), f"{method} {path} leaked an id"
        tried += 1
    assert tried >= 8
    # And the owner's things are all still there, untouched.
    for prefix, resource_id in ids.items():
        listed = (await client.get(prefix, headers=owner.headers)).json()
        items = listed["items"] if isinstance(listed, dict) else listed
        assert resource_id in {i["id"] for i in items}


async def test_lists_show_nothing_of_another_tenant(client: AsyncTestClient) -> None:
    owner, intruder = await register(client), await register(client)
    ids = await _resources_of(client, owner)
    for prefix in (*ids, "/v1/audit"):
        response = await client.get(prefix, headers=intruder.headers)
        assert response.status_code == 200
        assert not any(i in response.text for i in ids.values()), f"{prefix} listed another tenant's data"


@pytest.mark.parametrize("granted", ["bots:read", "activity:read"])
async def test_an_api_key_is_refused_every_route_its_scopes_do_not_cover(
    app: Litestar, client: AsyncTestClient, database: Database, granted: str
) -> None:
    owner = await register(client)
    ids = await _resources_of(client, owner)
    tenant = uuid.UUID((await client.get("/v1/me", headers=owner.headers)).json()["tenant"]["id"])
    ids |= await _trading_ids(database, tenant, ids["/v1/bots"])
    created = await client.post("/v1/api-keys", headers=owner.headers,
                                json={"name": "narrow", "scopes": [granted], "rateLimitPerMinute": 10000})
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    refused = 0
    for method, template, scopes in secured_operations(app):
        if Scope(granted) in scopes and len(scopes) == 1:
            continue
        body: dict[str, Any] | None = {} if method in ("PUT", "PATCH", "POST") else None
        response = await client.request(method, _fill(template, ids), headers=headers, json=body)
        assert response.status_code == 403, f"{method} {template} answered {response.status_code} to a {granted} key"
        refused += 1
    assert refused >= 10
    if granted == "bots:read":
        assert (await client.get("/v1/bots", headers=headers)).status_code == 200


@pytest.mark.parametrize("field", ["tenantId", "id", "userId", "createdAt"])
async def test_ids_in_bodies_cannot_be_mass_assigned(client: AsyncTestClient, field: str) -> None:
    owner, victim = await register(client), await register(client)
    victim_tenant = (await client.get("/v1/me", headers=victim.headers)).json()["tenant"]["id"]
    for path, body in (("/v1/bots", BOT), ("/v1/exchange-keys", {"exchange": "paper", "label": "p"}),
                       ("/v1/api-keys", {"name": "n", "scopes": ["bots:read"]})):
        response = await client.post(path, headers=owner.headers, json={**body, field: victim_tenant})
        assert response.status_code == 422, f"{path} accepted `{field}`"
        assert response.json()["errors"][0]["field"] == field
    assert (await client.get("/v1/bots", headers=victim.headers)).json()["items"] == []
