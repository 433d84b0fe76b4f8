"""The activity API: decisions (what the brain saw and what the guard changed), orders, positions and
performance, keyset-paginated and filtered. Rows are written directly in the tenant's context."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import msgspec
from litestar.testing import AsyncTestClient
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants.models import Cycle, DecisionLog, Order, Position
from tenants.scope import TenantScope
from tests.brain.builders import bot as bot_config
from tests.brain.builders import inputs as decision_inputs
from tests.conftest import Account, register
from workers.brain.breaker import LocalOnlyBreaker
from workers.brain.budget import LocalOnlyBudget
from workers.brain.service import BrainKind, decide

BOT = {"name": "activity", "symbols": ["BTC/USDT", "ETH/USDT"], "timeframes": ["15m"], "mode": "paper",
       "brain": "rules"}
T0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)


async def _tenant_and_bot(client: AsyncTestClient, account: Account) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = (await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"]
    bot = await client.post("/v1/bots", json=BOT, headers=account.headers)
    assert bot.status_code == 201, bot.text
    return uuid.UUID(tenant), uuid.UUID(bot.json()["id"])


async def _cycle(db: Database, tenant: uuid.UUID, bot: uuid.UUID, at: datetime.datetime,
                 equity: Decimal | None = None) -> uuid.UUID:
    cycle = Cycle(id=uuid7(), tenant_id=tenant, bot_id=bot, slot=int(at.timestamp()), status="completed",
                  attempts=1, equity=equity, created_at=at, updated_at=at)
    async with TenantScope.of(tenant).session(db) as session:
        session.add(cycle)
    return cycle.id


async def _decision(db: Database, tenant: uuid.UUID, bot: uuid.UUID, cycle: uuid.UUID, *, symbol: str = "ETH/USDT",
                    at: datetime.datetime = T0) -> uuid.UUID:
    """A decision as a cycle stores it: the real decision service's record (GPT asked, rules fell back)."""
    outcome = await decide(bot_config(tenant_id=tenant, bot_id=bot, brain=BrainKind.GPT),
                           decision_inputs(symbol=symbol), gpt=None, breaker=LocalOnlyBreaker(),
                           budget=LocalOnlyBudget(), at=at)
    record = outcome.record
    row = DecisionLog(
        id=uuid7(), tenant_id=tenant, bot_id=bot, cycle_id=cycle, symbol=symbol, action=record.final.action.value,
        confidence=record.final.confidence, requested_brain=record.requested_brain.value, brain=record.brain.value,
        fallback=record.fallback.value if record.fallback else None, fallback_detail=record.fallback_detail,
        fingerprint=record.fingerprint, latency_ms=record.latency_ms, cost_usd=Decimal("0.00012"),
        record=msgspec.to_builtins(record), created_at=at, updated_at=at,
    )
    async with TenantScope.of(tenant).session(db) as session:
        session.add(row)
    return row.id


async def _position(db: Database, tenant: uuid.UUID, bot: uuid.UUID, *, symbol: str, realized: str | None,
                    fees: str = "0.1", at: datetime.datetime = T0) -> uuid.UUID:
    closed = realized is not None
    row = Position(
        id=uuid7(), tenant_id=tenant, bot_id=bot, symbol=symbol, side="long", status="closed" if closed else "open",
        amount=Decimal("0.5"), entry_price=Decimal("100"), leverage=Decimal("2"), stop_loss=Decimal("95"),
        take_profit=None, mark_price=Decimal("101"), unrealized_pnl=Decimal("0" if closed else "0.5"),
        exit_price=Decimal("104") if closed else None, realized_pnl=Decimal(realized or "0"), fees=Decimal(fees),
        close_reason="take_profit" if closed else None, opened_at=at, opened_market_ms=int(at.timestamp() * 1000),
        closed_at=at + datetime.timedelta(hours=1) if closed else None, created_at=at, updated_at=at,
    )
    async with TenantScope.of(tenant).session(db) as session:
        session.add(row)
    return row.id


async def test_a_decision_shows_what_the_agents_saw_the_brain_used_and_the_guard_changed(
    client: AsyncTestClient, database: Database
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    cycle = await _cycle(database, tenant, bot, T0)
    decision_id = await _decision(database, tenant, bot, cycle)

    page = (await client.get(f"/v1/bots/{bot}/decisions", headers=account.headers)).json()
    [item] = page["items"]
    assert page["nextCursor"] is None
    assert item["id"] == str(decision_id) and item["cycleId"] == str(cycle)
    assert item["requestedBrain"] == "gpt" and item["brain"] == "rules" and item["fallback"] == "not_configured"
    assert item["costUsd"] == "0.00012" and item["price"] == 100.0
    assert {i["agent"] for i in item["insights"]} == {"technical", "fibonacci", "gann", "sentiment"}
    fibonacci = next(i for i in item["insights"] if i["agent"] == "fibonacci")
    assert {"name": "support", "price": 96.0} in fibonacci["levels"]
    assert item["final"]["action"] == item["action"] and item["proposal"]["symbol"] == "ETH/USDT"
    assert item["guardChanges"], "the guard sizes every opening decision"
    assert {"kind", "rule", "detail"} <= set(item["guardChanges"][0])


async def test_pages_are_stable_while_new_decisions_arrive(client: AsyncTestClient, database: Database) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    cycle = await _cycle(database, tenant, bot, T0)
    ids = [await _decision(database, tenant, bot, cycle, at=T0 + datetime.timedelta(minutes=i)) for i in range(5)]

    first = (await client.get(f"/v1/bots/{bot}/decisions?limit=2", headers=account.headers)).json()
    assert [i["id"] for i in first["items"]] == [str(ids[4]), str(ids[3])]
    newer = await _decision(database, tenant, bot, cycle, at=T0 + datetime.timedelta(minutes=9))  # arrives now
    second = (await client.get(f"/v1/bots/{bot}/decisions?limit=2&cursor={first['nextCursor']}",
                               headers=account.headers)).json()
    third = (await client.get(f"/v1/bots/{bot}/decisions?limit=2&cursor={second['nextCursor']}",
                              headers=account.headers)).json()
    assert [i["id"] for i in second["items"]] == [str(ids[2]), str(ids[1])]
    assert [i["id"] for i in third["items"]] == [str(ids[0])] and third["nextCursor"] is None
    fresh = (await client.get(f"/v1/bots/{bot}/decisions?limit=1", headers=account.headers)).json()
    assert fresh["items"][0]["id"] == str(newer)


async def test_decisions_filter_by_symbol_time_and_bot(client: AsyncTestClient, database: Database) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    _, other_bot = await _tenant_and_bot(client, account)
    cycle = await _cycle(database, tenant, bot, T0)
    other_cycle = await _cycle(database, tenant, other_bot, T0)
    early = await _decision(database, tenant, bot, cycle, symbol="BTC/USDT", at=T0)
    late = await _decision(database, tenant, bot, cycle, symbol="ETH/USDT", at=T0 + datetime.timedelta(hours=2))
    elsewhere = await _decision(database, tenant, other_bot, other_cycle, at=T0 + datetime.timedelta(hours=1))

    def ids(response: object) -> list[str]:
        return [i["id"] for i in response.json()["items"]]  # type: ignore[attr-defined]

    base = f"/v1/bots/{bot}/decisions"
    assert ids(await client.get(base, params={"symbol": "BTC/USDT"}, headers=account.headers)) == [str(early)]
    since = (T0 + datetime.timedelta(hours=1)).isoformat()
    assert ids(await client.get(base, params={"since": since}, headers=account.headers)) == [str(late)]
    assert ids(await client.get(base, params={"until": since}, headers=account.headers)) == [str(early)]
    everything = ids(await client.get("/v1/decisions", headers=account.headers))
    assert everything == [str(elsewhere), str(late), str(early)]  # newest id first
    only_other = ids(await client.get("/v1/decisions", params={"botId": str(other_bot)}, headers=account.headers))
    assert only_other == [str(elsewhere)]


async def test_orders_and_positions_are_listed_with_exact_decimals(
    client: AsyncTestClient, database: Database
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    cycle = await _cycle(database, tenant, bot, T0)
    order = Order(id=uuid7(), tenant_id=tenant, bot_id=bot, cycle_id=cycle,
                  client_order_id=f"q-{uuid.uuid4().hex[:20]}", exchange="paper", symbol="ETH/USDT", leg="entry",
                  side="buy", type="market",
                  amount=Decimal("0.123456789012345678"), status="filled", filled=Decimal("0.123456789012345678"),
                  average_price=Decimal("2500.5"), fee=Decimal("0.0003"), created_at=T0, updated_at=T0)
    async with TenantScope.of(tenant).session(database) as session:
        session.add(order)
    open_id = await _position(database, tenant, bot, symbol="ETH/USDT", realized=None)
    closed_id = await _position(database, tenant, bot, symbol="BTC/USDT", realized="1.9")

    [listed] = (await client.get(f"/v1/bots/{bot}/orders", headers=account.headers)).json()["items"]
    assert listed["amount"] == "0.123456789012345678" and listed["averagePrice"] == "2500.5"
    assert listed["fee"] == "0.0003" and listed["price"] is None and listed["leg"] == "entry"

    positions = (await client.get(f"/v1/bots/{bot}/positions", headers=account.headers)).json()["items"]
    assert [p["id"] for p in positions] == [str(closed_id), str(open_id)]
    open_only = (await client.get(f"/v1/bots/{bot}/positions?status=open", headers=account.headers)).json()
    assert [p["id"] for p in open_only["items"]] == [str(open_id)]
    closed = next(p for p in positions if p["status"] == "closed")
    assert closed["realizedPnl"] == "1.9" and closed["exitPrice"] == "104" and closed["closeReason"] == "take_profit"


async def test_performance_reads_the_equity_curve_and_closed_positions(
    client: AsyncTestClient, database: Database
) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    curve = ["1000", "1100", "990", "1050", "880", "1200"]  # peak 1100 → trough 880: a 20% drawdown
    for i, equity in enumerate(curve):
        await _cycle(database, tenant, bot, T0 + datetime.timedelta(minutes=15 * i), Decimal(equity))
    await _cycle(database, tenant, bot, T0 + datetime.timedelta(hours=3))  # a failed cycle: no equity
    for realized in ("25", "-10", "5.5"):
        await _position(database, tenant, bot, symbol="ETH/USDT", realized=realized, fees="0.25")
    await _position(database, tenant, bot, symbol="BTC/USDT", realized=None)

    p = (await client.get(f"/v1/bots/{bot}/performance", headers=account.headers)).json()
    assert [point["equity"] for point in p["equityCurve"]] == curve
    assert p["startEquity"] == "1000" and p["endEquity"] == "1200" and p["returnPct"] == 20.0
    assert p["maxDrawdownPct"] == 20.0 and p["maxDrawdown"] == "220"
    assert p["closedPositions"] == 3 and p["winningPositions"] == 2 and p["winRate"] == round(2 / 3, 6)
    assert p["realizedPnl"] == "20.5" and p["fees"] == "0.75"
    assert p["openPositions"] == 1 and p["unrealizedPnl"] == "0.5"

    thinned = (await client.get(f"/v1/bots/{bot}/performance?points=3", headers=account.headers)).json()
    assert len(thinned["equityCurve"]) <= 3
    assert thinned["equityCurve"][0]["equity"] == "1000" and thinned["equityCurve"][-1]["equity"] == "1200"
    assert thinned["maxDrawdownPct"] == 20.0  # from every point, not the thinned ones

    later = (T0 + datetime.timedelta(minutes=50)).isoformat()
    window = (await client.get(f"/v1/bots/{bot}/performance", params={"since": later},
                               headers=account.headers)).json()
    assert [point["equity"] for point in window["equityCurve"]] == ["880", "1200"]


async def test_a_bot_without_activity_has_empty_pages_and_neutral_performance(client: AsyncTestClient) -> None:
    account = await register(client)
    _, bot = await _tenant_and_bot(client, account)
    for what in ("decisions", "orders", "positions"):
        page = (await client.get(f"/v1/bots/{bot}/{what}", headers=account.headers)).json()
        assert page == {"items": [], "nextCursor": None}
    p = (await client.get(f"/v1/bots/{bot}/performance", headers=account.headers)).json()
    assert p["equityCurve"] == [] and p["winRate"] is None and p["returnPct"] is None and p["maxDrawdownPct"] == 0


async def test_another_tenants_bot_is_404_and_its_decisions_never_listed(
    client: AsyncTestClient, database: Database
) -> None:
    owner, intruder = await register(client), await register(client)
    tenant, bot = await _tenant_and_bot(client, owner)
    decision = await _decision(database, tenant, bot, await _cycle(database, tenant, bot, T0))
    for what in ("decisions", "orders", "positions", "performance"):
        response = await client.get(f"/v1/bots/{bot}/{what}", headers=intruder.headers)
        assert response.status_code == 404, what
    listed = await client.get("/v1/decisions", params={"botId": str(bot)}, headers=intruder.headers)
    assert listed.status_code == 200 and str(decision) not in listed.text


async def test_an_activity_key_reads_activity(client: AsyncTestClient, database: Database) -> None:
    account = await register(client)
    tenant, bot = await _tenant_and_bot(client, account)
    await _decision(database, tenant, bot, await _cycle(database, tenant, bot, T0))
    created = await client.post("/v1/api-keys", headers=account.headers,
                                json={"name": "reporting", "scopes": ["activity:read"]})
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert len((await client.get(f"/v1/bots/{bot}/decisions", headers=headers)).json()["items"]) == 1
    assert (await client.get("/v1/decisions", headers=headers)).status_code == 200
