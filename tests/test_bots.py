"""The bots API as the mobile app and integrators use it: configuration, limits, start/stop, isolation."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from quorum.database import sync_url
from quorum.settings import Settings
from tenants import bot_limits
from tenants.models import ExchangeKey
from tests.conftest import Account, register
from workers.agents.insight import AgentName

BOT = {
    "name": "Swing", "symbols": ["BTC/USDT", "ETH/USDT:USDT"], "timeframes": ["15m", "4h"], "leverage": 2.5,
    "riskPerTradePct": 0.1, "maxOpenPositions": 3, "dailyLossLimitPct": 4.25, "cycleIntervalSeconds": 300,
    "agentWeights": {"technical": 0.6, "sentiment": 0.4}, "brain": "gpt", "mode": "paper",
}


def owner_connection(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(settings.database_url.replace("postgresql+psycopg://", "postgresql://"))


async def tenant_id(client: AsyncTestClient, account: Account) -> uuid.UUID:
    return uuid.UUID((await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"])


async def link_key(client: AsyncTestClient, settings: Settings, account: Account, exchange: str,
                   status: str = "active") -> str:
    """An exchange key row written directly (the exchange-key API is not what these tests are about)."""
    tenant = await tenant_id(client, account)
    engine = create_engine(sync_url(settings.database_url))
    try:
        with Session(engine) as session, session.begin():
            session.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
            key = ExchangeKey(tenant_id=tenant, exchange=exchange, label=f"{exchange} key", api_key_last4="abcd",
                              status=status)
            session.add(key)
            session.flush()
            return str(key.id)
    finally:
        engine.dispose()


def audit_actions(settings: Settings, bot_id: str) -> list[tuple[str, str, str]]:
    with owner_connection(settings) as conn:
        rows = conn.execute(
            "SELECT action, actor_type, client_ip FROM audit_events WHERE target_id = %s ORDER BY id", (bot_id,)
        ).fetchall()
    return [tuple(r) for r in rows]


async def create(client: AsyncTestClient, account: Account, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/bots", json={**BOT, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def fields_of(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


def test_agent_names_match_the_agents_the_workers_run() -> None:
    assert set(bot_limits.AGENT_NAMES) == {a.value for a in AgentName}
    assert set(bot_limits.DEFAULT_AGENT_WEIGHTS) == set(bot_limits.AGENT_NAMES)


async def test_create_get_list_patch_delete(client: AsyncTestClient, account: Account) -> None:
    bot = await create(client, account)
    assert bot["active"] is False and bot["isDefault"] is False
    assert bot["leverage"] == 2.5 and bot["riskPerTradePct"] == 0.1 and bot["dailyLossLimitPct"] == 4.25
    assert bot["brainModel"] == bot_limits.DEFAULT_GPT_MODEL  # the GPT brain gets a model when none is named
    assert bot["symbols"] == BOT["symbols"] and bot["agentWeights"] == BOT["agentWeights"]

    got = await client.get(f"/v1/bots/{bot['id']}", headers=account.headers)
    assert got.status_code == 200 and got.json() == bot
    listed = await client.get("/v1/bots", headers=account.headers)
    assert [b["id"] for b in listed.json()["items"]] == [bot["id"]]

    patched = await client.patch(f"/v1/bots/{bot['id']}", json={"leverage": 10, "brain": "rules"},
                                 headers=account.headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["leverage"] == 10 and patched.json()["brain"] == "rules"
    assert patched.json()["brainModel"] is None  # only the GPT brain has a model
    assert patched.json()["symbols"] == BOT["symbols"]  # absent fields stay as they were

    assert (await client.delete(f"/v1/bots/{bot['id']}", headers=account.headers)).status_code == 204
    assert (await client.get(f"/v1/bots/{bot['id']}", headers=account.headers)).status_code == 404
    assert (await client.get("/v1/bots", headers=account.headers)).json()["items"] == []


async def test_omitted_fields_take_safe_defaults(client: AsyncTestClient, account: Account) -> None:
    response = await client.post("/v1/bots", json={}, headers=account.headers)
    assert response.status_code == 201, response.text
    bot = response.json()
    assert bot["mode"] == "paper" and bot["brain"] == "rules" and bot["brainModel"] is None
    assert bot["symbols"] == ["BTC/USDT"] and bot["timeframes"] == ["15m", "1h"]
    assert bot["leverage"] == 1 and bot["exchangeKeyId"] is None


async def test_list_pages_by_cursor_newest_first(client: AsyncTestClient, account: Account) -> None:
    ids = [(await create(client, account, name=f"bot {i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/bots", params=params, headers=account.headers)).json()
        assert len(page["items"]) <= 2
        seen += [b["id"] for b in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert (await client.get("/v1/bots", params={"limit": 0}, headers=account.headers)).status_code == 400
    assert (await client.get("/v1/bots", params={"cursor": "nope"}, headers=account.headers)).status_code == 400


@pytest.mark.parametrize(("field", "value"), [
    ("leverage", 0), ("leverage", 51), ("leverage", None),
    ("riskPerTradePct", 0), ("riskPerTradePct", 5.1), ("riskPerTradePct", 0.09),
    ("maxOpenPositions", 0), ("maxOpenPositions", 21), ("maxOpenPositions", 1.5),
    ("dailyLossLimitPct", 0.4), ("dailyLossLimitPct", 50.5),
    ("cycleIntervalSeconds", 59), ("cycleIntervalSeconds", 86_401),
    ("symbols", []), ("symbols", ["BTCUSDT"]), ("symbols", ["btc/usdt"]), ("symbols", ["B/USDT"]),
    ("symbols", ["BTC/U"]), ("symbols", ["BTC/USDT:"]), ("symbols", ["BTC-USDT"]), ("symbols", [" BTC/USDT"]),
    ("symbols", ["ABCDEFGHIJKLMNOP/USDT"]), ("symbols", [f"C{i:02d}/USDT" for i in range(21)]),
    ("symbols", ["BTC/USDT", "BTC/USDT"]),
    ("timeframes", []), ("timeframes", ["2h"]), ("timeframes", ["1m", "5m", "15m", "1h", "4h"]),
    ("timeframes", ["1h", "1h"]),
    ("agentWeights", {}), ("agentWeights", {"astrology": 1}), ("agentWeights", {"technical": -0.1}),
    ("agentWeights", {"technical": 1.5}), ("agentWeights", {"technical": 0, "gann": 0}),
    ("brain", "oracle"), ("brainModel", ""), ("brainModel", "m" * 81), ("mode", "yolo"),
    ("name", ""), ("name", "n" * 81), ("name", "bad\u0000name"), ("exchangeKeyId", "not-a-uuid"),
])
async def test_each_out_of_range_field_is_a_422_naming_it(
    client: AsyncTestClient, account: Account, field: str, value: Any
) -> None:
    created = await client.post("/v1/bots", json={**BOT, field: value}, headers=account.headers)
    assert any(f.startswith(field) for f in fields_of(created)), created.text
    bot = await create(client, account)
    patched = await client.patch(f"/v1/bots/{bot['id']}", json={field: value}, headers=account.headers)
    assert any(f.startswith(field) for f in fields_of(patched)), patched.text
    put = await client.put("/v1/bot-config", json={**BOT, field: value}, headers=account.headers)
    assert any(f.startswith(field) for f in fields_of(put)), put.text


async def test_limits_are_inclusive(client: AsyncTestClient, account: Account) -> None:
    low = await create(client, account, leverage=1, riskPerTradePct=0.1, maxOpenPositions=1, dailyLossLimitPct=0.5,
                       cycleIntervalSeconds=60, agentWeights={"gann": 1}, symbols=["AB/CD"], timeframes=["1d"])
    assert low["riskPerTradePct"] == 0.1 and low["dailyLossLimitPct"] == 0.5
    high = await create(client, account, leverage=50, riskPerTradePct=5, maxOpenPositions=20, dailyLossLimitPct=50,
                        cycleIntervalSeconds=86_400, symbols=[f"C{i:02d}/USDT:USDT" for i in range(20)],
                        timeframes=["1m", "5m", "30m", "1d"], name="n" * 80, brainModel="m" * 80)
    assert high["leverage"] == 50 and len(high["symbols"]) == 20 and high["brainModel"] == "m" * 80


@pytest.mark.parametrize("field", ["tenantId", "id", "active", "isDefault", "pausedReason"])
async def test_server_owned_fields_cannot_be_assigned(client: AsyncTestClient, account: Account, field: str) -> None:
    assert field in fields_of(await client.post("/v1/bots", json={**BOT, field: str(uuid.uuid4())},
                                                headers=account.headers))
    bot = await create(client, account)
    assert field in fields_of(await client.patch(f"/v1/bots/{bot['id']}", json={field: str(uuid.uuid4())},
                                                 headers=account.headers))
    assert field in fields_of(await client.put("/v1/bot-config", json={field: str(uuid.uuid4())},
                                               headers=account.headers))


async def test_live_mode_needs_a_linked_real_exchange_key(
    client: AsyncTestClient, settings: Settings, account: Account
) -> None:
    no_key = await client.post("/v1/bots", json={**BOT, "mode": "live"}, headers=account.headers)
    assert fields_of(no_key) == ["exchangeKeyId"]

    paper_key = await link_key(client, settings, account, "paper")
    paper = await client.post("/v1/bots", json={**BOT, "mode": "live", "exchangeKeyId": paper_key},
                              headers=account.headers)
    assert fields_of(paper) == ["exchangeKeyId"]
    # A paper key is fine for a paper bot.
    await create(client, account, exchangeKeyId=paper_key)

    unknown = await client.post("/v1/bots", json={**BOT, "mode": "live", "exchangeKeyId": str(uuid.uuid4())},
                                headers=account.headers)
    assert fields_of(unknown) == ["exchangeKeyId"]

    real_key = await link_key(client, settings, account, "bybit")
    live = await create(client, account, mode="live", exchangeKeyId=real_key)
    assert live["mode"] == "live" and live["exchangeKeyId"] == real_key

    # Unlinking the key of a live bot, or switching a keyless bot to live, is refused and changes nothing.
    unlink = await client.patch(f"/v1/bots/{live['id']}", json={"exchangeKeyId": None}, headers=account.headers)
    assert fields_of(unlink) == ["exchangeKeyId"]
    paper_bot = await create(client, account)
    assert fields_of(await client.patch(f"/v1/bots/{paper_bot['id']}", json={"mode": "live"},
                                        headers=account.headers)) == ["exchangeKeyId"]
    assert (await client.get(f"/v1/bots/{live['id']}", headers=account.headers)).json()["exchangeKeyId"] == real_key


async def test_another_tenants_key_reads_as_nonexistent_and_is_never_linked(
    client: AsyncTestClient, settings: Settings, account: Account
) -> None:
    other = await register(client)
    their_key = await link_key(client, settings, other, "binance")
    body = {**BOT, "exchangeKeyId": their_key}
    live = await client.post("/v1/bots", json={**body, "mode": "live"}, headers=account.headers)
    paper = await client.post("/v1/bots", json=body, headers=account.headers)
    unknown = await client.post("/v1/bots", json={**body, "mode": "live", "exchangeKeyId": str(uuid.uuid4())},
                                headers=account.headers)
    assert fields_of(live) == fields_of(paper) == ["exchangeKeyId"]
    assert live.json()["errors"] == unknown.json()["errors"]  # indistinguishable from a key that does not exist
    with owner_connection(settings) as conn:
        linked = conn.execute("SELECT count(*) FROM bots WHERE exchange_key_id = %s", (their_key,)).fetchone()
    assert linked == (0,)


async def test_start_and_stop_flip_the_active_flag_and_are_audited(
    client: AsyncTestClient, settings: Settings, account: Account
) -> None:
    bot = await create(client, account)
    started = await client.post(f"/v1/bots/{bot['id']}/start", headers=account.headers)
    assert started.status_code == 200, started.text
    assert started.json()["active"] is True
    assert (await client.get(f"/v1/bots/{bot['id']}", headers=account.headers)).json()["active"] is True
    stopped = await client.post(f"/v1/bots/{bot['id']}/stop", headers=account.headers)
    assert stopped.status_code == 200 and stopped.json()["active"] is False
    await client.patch(f"/v1/bots/{bot['id']}", json={"name": "Renamed"}, headers=account.headers)
    await client.delete(f"/v1/bots/{bot['id']}", headers=account.headers)

    events = audit_actions(settings, bot["id"])
    assert [e[0] for e in events] == ["bot_created", "bot_started", "bot_stopped", "bot_changed", "bot_deleted"]
    assert all(actor == "user" and ip for _, actor, ip in events)


async def test_start_checks_the_configuration_again(
    client: AsyncTestClient, settings: Settings, account: Account
) -> None:
    bot = await create(client, account)
    with owner_connection(settings) as conn:  # a stored bot that no longer passes the cross-field checks
        conn.execute("UPDATE bots SET mode = 'live' WHERE id = %s", (bot["id"],))
    refused = await client.post(f"/v1/bots/{bot['id']}/start", headers=account.headers)
    assert fields_of(refused) == ["exchangeKeyId"]
    assert (await client.get(f"/v1/bots/{bot['id']}", headers=account.headers)).json()["active"] is False
    assert [e[0] for e in audit_actions(settings, bot["id"])] == ["bot_created"]


async def test_bot_config_creates_the_default_bot_once_and_put_replaces_it(
    client: AsyncTestClient, settings: Settings, account: Account
) -> None:
    first = await client.get("/v1/bot-config", headers=account.headers)
    assert first.status_code == 200, first.text
    default = first.json()
    assert default["isDefault"] is True and default["mode"] == "paper" and default["brain"] == "rules"
    assert default["symbols"] == ["BTC/USDT"] and default["timeframes"] == ["15m", "1h"]
    assert (await client.get("/v1/bot-config", headers=account.headers)).json()["id"] == default["id"]

    put = await client.put("/v1/bot-config", json={"symbols": ["SOL/USDT"], "leverage": 3}, headers=account.headers)
    assert put.status_code == 200, put.text
    replaced = (await client.get("/v1/bot-config", headers=account.headers)).json()
    assert replaced["id"] == default["id"] and replaced["symbols"] == ["SOL/USDT"] and replaced["leverage"] == 3

    # A full replace: fields left out go back to their defaults.
    await client.put("/v1/bot-config", json={**BOT}, headers=account.headers)
    await client.put("/v1/bot-config", json={"name": "Simple"}, headers=account.headers)
    simple = (await client.get("/v1/bot-config", headers=account.headers)).json()
    assert simple["name"] == "Simple" and simple["symbols"] == ["BTC/USDT"] and simple["brain"] == "rules"

    listed = (await client.get("/v1/bots", headers=account.headers)).json()["items"]
    assert [b["id"] for b in listed if b["isDefault"]] == [default["id"]]
    assert [e[0] for e in audit_actions(settings, default["id"])][:2] == ["bot_created", "bot_changed"]


async def test_put_bot_config_on_a_new_tenant_creates_the_default(client: AsyncTestClient, account: Account) -> None:
    put = await client.put("/v1/bot-config", json={"symbols": ["ETH/USDT"]}, headers=account.headers)
    assert put.status_code == 200, put.text
    got = (await client.get("/v1/bot-config", headers=account.headers)).json()
    assert got["id"] == put.json()["id"] and got["symbols"] == ["ETH/USDT"] and got["isDefault"] is True


async def test_second_tenant_cannot_see_or_touch_first_tenants_bots(
    client: AsyncTestClient, account: Account
) -> None:
    bot = await create(client, account)
    default = (await client.get("/v1/bot-config", headers=account.headers)).json()
    other = await register(client)
    for bot_id in (bot["id"], default["id"]):
        assert (await client.get(f"/v1/bots/{bot_id}", headers=other.headers)).status_code == 404
        patched = await client.patch(f"/v1/bots/{bot_id}", json={"name": "mine"}, headers=other.headers)
        assert patched.status_code == 404
        assert (await client.post(f"/v1/bots/{bot_id}/start", headers=other.headers)).status_code == 404
        assert (await client.post(f"/v1/bots/{bot_id}/stop", headers=other.headers)).status_code == 404
        assert (await client.delete(f"/v1/bots/{bot_id}", headers=other.headers)).status_code == 404
    assert (await client.get("/v1/bots", headers=other.headers)).json()["items"] == []
    assert (await client.get("/v1/bot-config", headers=other.headers)).json()["id"] != default["id"]
    # The first tenant's bot is untouched.
    mine = (await client.get(f"/v1/bots/{bot['id']}", headers=account.headers)).json()
    assert mine == bot


async def test_bots_need_authentication(client: AsyncTestClient) -> None:
    assert (await client.get("/v1/bots")).status_code == 401
    assert (await client.get("/v1/bot-config")).status_code == 401
    assert (await client.post("/v1/bots", json=BOT)).status_code == 401



async def test_live_mode_refuses_a_key_the_exchange_has_not_confirmed(
    client: AsyncTestClient, settings: Settings, account: Account
) -> None:
    key_id = await link_key(client, settings, account, "binance", status="checking")
    response = await client.post("/v1/bots", headers=account.headers, json={
        "name": "live", "symbols": ["BTC/USDT"], "timeframes": ["15m"], "mode": "live", "brain": "rules",
        "exchangeKeyId": key_id})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "exchangeKeyId"
