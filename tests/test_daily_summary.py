"""The daily summary: one `summary.daily` event per tenant and UTC day, with each active bot's figures read
from its decisions, positions, fills, cycles and paper account; once only, however often or however
many times at once it runs; each tenant's summary holds its own bots only; pushed per preferences.

The trading rows are written as a cycle writes them, on a chosen past day (each test its own), so the
figures are exact and no other test's activity falls on that day."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from celery import Celery
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import insert, select, text

from quorum.database import Database, create_app_engine
from quorum.settings import Settings
from tenants.events import EventMessage, EventType
from tenants.models import Cycle, DecisionLog, Event, Fill, Order, PaperAccount, Position
from tenants.notify_models import DailySummary
from tenants.scope import TenantScope
from tests.conftest import Account, register
from tests.fakes.fcm import FakeFcm
from workers.notify.delivery import deliver_event
from workers.notify.push import FcmSender, push_message
from workers.notify.summary import day_to_summarise, record_daily_summaries, record_tenant_summary

BOT = {"mode": "paper", "brain": "rules", "timeframes": ["15m"]}


class Enqueued:
    """Stands in for Celery's send_task: what would have been enqueued."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, list[str]]] = []

    def __call__(self, name: str, args: list[str]) -> None:
        self.tasks.append((name, args))


def at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=datetime.UTC)


def uuid7_at(moment: datetime.datetime) -> uuid.UUID:
    """A UUIDv7 of `moment`, as the row would have had if written then (ids are time-ordered)."""
    ms = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | uuid.uuid4().int & ((1 << 62) - 1))


async def _tenant(client: AsyncTestClient, account: Account) -> uuid.UUID:
    return uuid.UUID((await client.get("/v1/me", headers=account.headers)).json()["tenant"]["id"])


async def _bot(client: AsyncTestClient, account: Account, name: str, symbol: str) -> uuid.UUID:
    created = await client.post("/v1/bots", headers=account.headers, json={**BOT, "name": name, "symbols": [symbol]})
    assert created.status_code == 201, created.text
    return uuid.UUID(created.json()["id"])


class Day:
    """Writes one bot's trading rows at chosen times, as the ledger does (workers/ledger.py)."""

    def __init__(self, database: Database, tenant: uuid.UUID, bot: uuid.UUID, symbol: str) -> None:
        self.database, self.tenant, self.bot, self.symbol = database, tenant, bot, symbol

    async def cycle(self, when: datetime.datetime, equity: str | None, decisions: int = 1) -> None:
        cycle_id = uuid7_at(when)
        async with TenantScope.of(self.tenant).session(self.database) as session:
            await session.execute(insert(Cycle).values(
                id=cycle_id, tenant_id=self.tenant, bot_id=self.bot, slot=int(when.timestamp()), status="completed",
                attempts=1, finished_at=when, duration_ms=120.0, equity=Decimal(equity) if equity else None,
                created_at=when, updated_at=when))
            for _ in range(decisions):
                await session.execute(insert(DecisionLog).values(
                    id=uuid7_at(when), tenant_id=self.tenant, bot_id=self.bot, cycle_id=cycle_id, symbol=self.symbol,
                    action="WAIT", confidence=0.5, requested_brain="rules", brain="rules", fallback_detail="",
                    fingerprint="f" * 64, prompt_tokens=0, completion_tokens=0, cached_tokens=0, cost_usd=0,
                    latency_ms=3.0, record={}, created_at=when, updated_at=when))

    async def trade(self, opened: datetime.datetime, closed: datetime.datetime | None, *, pnl: str = "0",
                    entry_fee: str = "0.1", exit_fee: str = "0.1") -> None:
        """A long opened at `opened` (its entry fill) and, if `closed`, closed then with `pnl` after fees."""
        async with TenantScope.of(self.tenant).session(self.database) as session:
            for leg, side, when, fee in (("entry", "buy", opened, entry_fee), ("close", "sell", closed, exit_fee)):
                if when is None:
                    continue
                order_id = uuid7_at(when)
                await session.execute(insert(Order).values(
                    id=order_id, tenant_id=self.tenant, bot_id=self.bot, client_order_id=uuid.uuid4().hex,
                    exchange="paper", symbol=self.symbol, leg=leg, side=side, type="market", amount=Decimal(1),
                    status="filled", filled=Decimal(1), average_price=Decimal(100), fee=Decimal(fee),
                    created_at=when, updated_at=when))
                await session.execute(insert(Fill).values(
                    id=uuid7_at(when), tenant_id=self.tenant, bot_id=self.bot, order_id=order_id, symbol=self.symbol,
                    side=side, amount=Decimal(1), price=Decimal(100), fee=Decimal(fee), created_at=when,
                    updated_at=when))
            await session.execute(insert(Position).values(
                id=uuid7_at(opened), tenant_id=self.tenant, bot_id=self.bot, symbol=self.symbol, side="long",
                status="closed" if closed else "open", amount=Decimal(1), entry_price=Decimal(100),
                leverage=Decimal(1), realized_pnl=Decimal(pnl if closed else "0"),
                fees=Decimal(entry_fee) + (Decimal(exit_fee) if closed else 0),
                close_reason="signal" if closed else None,
                opened_at=opened, opened_market_ms=int(opened.timestamp() * 1000), closed_at=closed,
                created_at=opened, updated_at=closed or opened))

    async def cash(self, balances: dict[str, str]) -> None:
        now = datetime.datetime.now(datetime.UTC)
        async with TenantScope.of(self.tenant).session(self.database) as session:
            await session.execute(insert(PaperAccount).values(
                id=uuid7_at(now), tenant_id=self.tenant, bot_id=self.bot, balances=balances, created_at=now,
                updated_at=now))


async def _summaries(database: Database, tenant: uuid.UUID) -> list[Event]:
    async with TenantScope.of(tenant).session(database) as session:
        return list((await session.scalars(
            select(Event).where(Event.type == EventType.DAILY_SUMMARY.value).order_by(Event.id))).all())


async def test_a_day_is_summarised_per_bot_from_its_trades(
    client: AsyncTestClient, database: Database, redis: Redis
) -> None:
    day = datetime.date(2025, 3, 12)
    account = await register(client)
    tenant = await _tenant(client, account)
    btc = Day(database, tenant, await _bot(client, account, "BTC bot", "BTC/USDT"), "BTC/USDT")
    eth = Day(database, tenant, await _bot(client, account, "ETH bot", "ETH/BTC"), "ETH/BTC")
    idle = await _bot(client, account, "Idle", "SOL/USDT")  # never ran: not in the summary

    await btc.cycle(at(day, 0, 1), "10000", decisions=2)
    await btc.cycle(at(day, 12), "10005.5")
    await btc.cycle(at(day, 23, 59), "10012.4")
    await btc.cycle(at(day, 0) - datetime.timedelta(minutes=1), "9990")  # the day before: not counted
    await btc.cycle(at(day, 0) + datetime.timedelta(days=1), "10100")  # the day after: not counted
    await btc.trade(at(day, 1), at(day, 2), pnl="10.2")
    await btc.trade(at(day, 3), at(day, 5), pnl="-3.3")
    await btc.trade(at(day, 6), at(day, 9), pnl="5.5", entry_fee="0.2", exit_fee="0.3")
    await btc.trade(at(day, 0) - datetime.timedelta(hours=2), at(day, 4), pnl="1")  # opened the day before
    await btc.trade(at(day, 22), None)  # still open at midnight
    await btc.trade(at(day, 23), at(day, 0) + datetime.timedelta(days=1, hours=1), pnl="99")  # closed the next day
    await btc.cash({"USDT": "10012.400000000000000000", "BTC": "1"})
    await eth.cycle(at(day, 8), None, decisions=3)  # a cycle that could not read its equity

    enqueued = Enqueued()
    report = await record_daily_summaries(database, redis, enqueued, day)
    assert report.day == day and report.recorded >= 1 and report.complete

    [event] = await _summaries(database, tenant)
    assert event.bot_id is None and event.payload["day"] == "2025-03-12"
    bots = {b["name"]: b for b in event.payload["bots"]}
    assert set(bots) == {"BTC bot", "ETH bot"} and str(idle) not in str(event.payload)
    assert bots["BTC bot"] == {
        "botId": str(btc.bot), "name": "BTC bot", "mode": "paper", "currency": "USDT",
        "realizedPnl": "13.4",  # 10.2 - 3.3 + 5.5 + 1 (closed that day; the one opened the day before too)
        "fees": "1.2",  # the day's nine fills: seven of 0.1, then 0.2 and 0.3
        "tradesOpened": 5, "tradesClosed": 4, "wins": 3, "winRate": "0.75", "decisions": 4,
        "startEquity": "10000", "equity": "10012.4", "cash": "10012.4",
    }
    assert bots["ETH bot"] == {
        "botId": str(eth.bot), "name": "ETH bot", "mode": "paper", "currency": "BTC", "realizedPnl": "0",
        "fees": "0", "tradesOpened": 0, "tradesClosed": 0, "wins": 0, "winRate": None, "decisions": 3,
        "startEquity": None, "equity": None, "cash": None,
    }
    # Handed on like every event: the stream and the delivery task (push and webhooks).
    assert ("quorum.deliver_event", [str(tenant), str(event.id)]) in enqueued.tasks

    shown = push_message(EventMessage(id=event.id, tenant_id=tenant, bot_id=None, type=EventType.DAILY_SUMMARY,
                                      created_at=event.created_at, payload=event.payload))
    assert shown is not None and shown.title == "Daily summary, Mar 12"
    assert shown.body == "BTC bot: +13.40 USDT, 4 trades, 75% won · ETH bot: no trades"


async def test_running_it_again_or_twice_at_once_records_one_summary(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis
) -> None:
    day = datetime.date(2025, 4, 2)
    accounts = [await register(client) for _ in range(3)]
    tenants = []
    for account in accounts:
        tenant = await _tenant(client, account)
        bot = Day(database, tenant, await _bot(client, account, "Scalper", "ETH/USDT"), "ETH/USDT")
        await bot.cycle(at(day, 10), "500")
        await bot.trade(at(day, 10), at(day, 11), pnl="2")
        tenants.append(tenant)

    # Two beats (two processes, two connection pools) at the same moment, then a third run later.
    other = Database(create_app_engine(settings))
    try:
        enqueued = Enqueued()
        first, second = await asyncio.gather(record_daily_summaries(database, redis, enqueued, day),
                                             record_daily_summaries(other, redis, enqueued, day))
    finally:
        await other.dispose()
    again = await record_daily_summaries(database, redis, enqueued, day)
    assert first.recorded + second.recorded == 3 and again.recorded == 0
    for tenant in tenants:
        assert len(await _summaries(database, tenant)) == 1
        assert await record_tenant_summary(database, tenant, day) is None  # a retry after a crash: nothing new
        async with TenantScope.of(tenant).session(database) as session:
            [row] = (await session.scalars(select(DailySummary))).all()
        assert (row.day, row.bots) == (day, 1)
    delivered = [args for name, args in enqueued.tasks if args[0] in {str(t) for t in tenants}]
    assert len(delivered) == 3  # one delivery task per summary


async def test_each_tenant_is_summarised_alone_and_only_if_its_bots_ran(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis
) -> None:
    day = datetime.date(2025, 5, 20)
    first, second, quiet = await register(client), await register(client), await register(client)
    a, b, q = await _tenant(client, first), await _tenant(client, second), await _tenant(client, quiet)
    mine = Day(database, a, await _bot(client, first, "Mine", "BTC/USDT"), "BTC/USDT")
    theirs = Day(database, b, await _bot(client, second, "Theirs", "BTC/USDT"), "BTC/USDT")
    other_day = Day(database, q, await _bot(client, quiet, "Quiet", "BTC/USDT"), "BTC/USDT")
    await mine.cycle(at(day, 9), "1000")
    await mine.trade(at(day, 9), at(day, 10), pnl="7")
    await theirs.cycle(at(day, 9), "2000")
    await theirs.trade(at(day, 9), at(day, 10), pnl="-4")
    await other_day.cycle(at(day, 9) - datetime.timedelta(days=1), "3000")  # active the day before only

    # The cross-tenant question returns ids and nothing else.
    async with TenantScope.of(None).session(database) as session:
        due = await session.execute(text("SELECT * FROM daily_summary_tenants(:day, :after, 1000)"),
                                    {"day": day, "after": uuid.UUID(int=0)})
        assert list(due.keys()) == ["tenant_id"] and set(due.scalars().all()) == {a, b}

    await record_daily_summaries(database, redis, Enqueued(), day)
    [ours] = await _summaries(database, a)
    [their] = await _summaries(database, b)
    assert [x["botId"] for x in ours.payload["bots"]] == [str(mine.bot)]
    assert ours.payload["bots"][0]["realizedPnl"] == "7"
    assert [x["botId"] for x in their.payload["bots"]] == [str(theirs.bot)]
    assert their.payload["bots"][0]["realizedPnl"] == "-4" and str(mine.bot) not in str(their.payload)
    assert await _summaries(database, q) == []
    # Row-level security: in one tenant's context the other's summary rows do not exist.
    async with TenantScope.of(a).session(database) as session:
        assert {r.tenant_id for r in (await session.scalars(select(DailySummary))).all()} == {a}
    # And the application role cannot reach the table except through its tenant context.
    with psycopg.connect(settings.app_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM daily_summaries").fetchone() == (0,)


def test_the_day_summarised_is_the_last_one_that_ended_a_few_minutes_ago() -> None:
    assert day_to_summarise(at(datetime.date(2025, 3, 13), 0, 3)) == datetime.date(2025, 3, 11)
    assert day_to_summarise(at(datetime.date(2025, 3, 13), 0, 6)) == datetime.date(2025, 3, 12)
    assert day_to_summarise(at(datetime.date(2025, 3, 13), 23, 59)) == datetime.date(2025, 3, 12)


async def test_the_summary_is_pushed_to_the_users_who_want_it(
    client: AsyncTestClient, database: Database, redis: Redis, fake_fcm: FakeFcm, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = datetime.date(2025, 6, 30)
    account = await register(client)
    tenant = await _tenant(client, account)
    bot = Day(database, tenant, await _bot(client, account, "BTC bot", "BTC/USDT"), "BTC/USDT")
    await bot.cycle(at(day, 9), "1000")
    await bot.trade(at(day, 9), at(day, 10), pnl="12.4")
    phone = f"fcm-{uuid.uuid4().hex}"
    assert (await client.post("/v1/devices", headers=account.headers,
                              json={"platform": "ios", "token": phone})).status_code == 200
    for name, value in fake_fcm.client_environment().items():
        monkeypatch.setenv(name, value)

    message = await record_tenant_summary(database, tenant, day)
    assert message is not None
    report = await deliver_event(database, FcmSender(), tenant, message.id)
    assert report.status == "delivered" and report.pushed == 1
    [pushed] = fake_fcm.sent_to(phone)
    assert pushed["notification"] == {"title": "Daily summary, Jun 30",
                                      "body": "BTC bot: +12.40 USDT, 1 trade, 100% won"}
    assert pushed["data"] == {"eventId": str(message.id), "type": "summary.daily"}

    # Turned off in the app's settings: the next day's summary still reaches the stream, not the phone.
    off = await client.put("/v1/notification-preferences", headers=account.headers,
                           json={"push": {"summary.daily": False}})
    assert off.status_code == 200, off.text
    next_day = day + datetime.timedelta(days=1)
    await bot.cycle(at(next_day, 9), "1012.4")
    later = await record_tenant_summary(database, tenant, next_day)
    assert later is not None
    assert (await deliver_event(database, FcmSender(), tenant, later.id)).pushed == 0
    assert len(fake_fcm.sent_to(phone)) == 1


def test_beat_asks_for_it_every_ten_minutes() -> None:
    import workers.notify.tasks  # noqa: F401 - registers the task, as a worker does
    from workers.celery_app import app

    entry = app.conf.beat_schedule["daily-summaries"]
    assert entry["task"] == "quorum.daily_summaries" and entry["schedule"] == 600.0
    assert "quorum.daily_summaries" in app.tasks


async def test_a_worker_runs_the_beat_task_for_the_day_that_just_ended(
    client: AsyncTestClient, settings: Settings, database: Database, key_check_worker: Path
) -> None:
    account = await register(client)
    tenant = await _tenant(client, account)
    bot = Day(database, tenant, await _bot(client, account, "BTC bot", "BTC/USDT"), "BTC/USDT")
    now = datetime.datetime.now(datetime.UTC)
    days = {day_to_summarise(now), day_to_summarise(now + datetime.timedelta(minutes=2))}  # the task runs soon
    for day in days:
        await bot.cycle(at(day, 12), "1000")
    broker = Celery("summary-test", broker=settings.redis_url)
    try:
        broker.send_task("quorum.daily_summaries", ignore_result=True)
    finally:
        broker.close()

    async def recorded() -> bool:
        return bool(await _summaries(database, tenant))
    await eventually_async(recorded, within=60)
    [event] = await _summaries(database, tenant)
    assert datetime.date.fromisoformat(event.payload["day"]) in days
    assert [b["name"] for b in event.payload["bots"]] == ["BTC bot"]


async def eventually_async(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.25)
    assert await check(), f"still not true after {within} s"
