"""The daily summary: once per tenant and UTC day, one `summary.daily` event with each active bot's day.

Beat runs `quorum.daily_summaries` every few minutes; it summarises the last UTC day that has ended
(and is `GRACE` old, so a cycle running over midnight has committed). Which tenants are due is asked
across tenants through `daily_summary_tenants` (migration 0006), which returns ids only: tenants whose
bots decided that day and who have no summary of it yet. Each tenant's summary is then read and
recorded in its own row-level-security context: the figures come from its decisions, positions,
fills, cycles and paper accounts, and the event goes to the outbox with a `daily_summaries` row whose
unique (tenant, day) index makes it once-only, however many beats, retries or crashes there are.
After commit the event goes on like any other (`publish_events`): the live stream, push to the users
who want it (one notification per user, covering every bot), webhooks.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from decimal import Decimal

import msgspec
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants import events
from tenants.events import EventMessage, EventType
from tenants.models import Bot, Cycle, DecisionLog, Fill, PaperAccount, Position
from tenants.notify_models import DailySummary
from tenants.scope import TenantScope
from workers.market.fills import settle_currency
from workers.notify.outbox import SendTask, publish_events

log = logging.getLogger(__name__)

# A cycle that started before midnight may commit a little after it (its hard limit is a minute).
GRACE = datetime.timedelta(minutes=5)
PAGE = 200
RUN_SECONDS = 240.0  # one run's budget; beat's next run goes on where it stopped
_DUE = text("SELECT tenant_id FROM daily_summary_tenants(:day, :after, :limit)")
_NO_TENANT = uuid.UUID(int=0)


class BotDay(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One bot's day. Money is an exact decimal string in `currency` (the settle currency of its first symbol)."""

    bot_id: uuid.UUID
    name: str
    mode: str
    currency: str
    realized_pnl: str  # positions closed that day, after fees
    fees: str  # fees of the fills that day
    trades_opened: int
    trades_closed: int
    wins: int
    win_rate: str | None  # wins / trades closed, 0..1; None with no trade closed
    decisions: int
    start_equity: str | None  # what the day's first and last cycles recorded
    equity: str | None
    cash: str | None  # a paper bot's cash in `currency` when the summary was made


class DaySummary(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    day: datetime.date
    bots: list[BotDay]


class SummaryReport(msgspec.Struct, frozen=True):
    day: datetime.date
    recorded: int  # tenants whose summary this run recorded
    complete: bool  # False when the time budget ran out first; the next run goes on


def day_to_summarise(now: datetime.datetime) -> datetime.date:
    """The last UTC day that ended at least `GRACE` ago."""
    return (now.astimezone(datetime.UTC) - GRACE).date() - datetime.timedelta(days=1)


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=1)


async def record_daily_summaries(database: Database, redis: Redis, send_task: SendTask, day: datetime.date, *,
                                 time_budget: float = RUN_SECONDS) -> SummaryReport:
    """Record and hand on the summary of `day` for every tenant due; each once, whoever else runs it."""
    deadline = time.monotonic() + time_budget
    after, recorded = _NO_TENANT, 0
    while True:
        async with TenantScope.of(None).session(database) as session:
            due = list((await session.scalars(_DUE, {"day": day, "after": after, "limit": PAGE})).all())
        for tenant_id in due:
            if time.monotonic() > deadline:
                log.warning("daily summaries: out of time; the next run goes on", extra={"day": str(day)})
                return SummaryReport(day=day, recorded=recorded, complete=False)
            message = await record_tenant_summary(database, tenant_id, day)
            if message is not None:
                recorded += 1
                await publish_events(redis, [message], send_task)
        if len(due) < PAGE:
            break
        after = due[-1]
    if recorded:
        log.info("daily summaries recorded", extra={"day": str(day), "tenants": recorded})
    return SummaryReport(day=day, recorded=recorded, complete=True)


async def record_tenant_summary(database: Database, tenant_id: uuid.UUID, day: datetime.date) -> EventMessage | None:
    """Record the tenant's summary of `day` in its outbox; None if it has one already or nothing happened."""
    async with TenantScope.of(tenant_id).session(database) as session:
        summary = await summarise(session, tenant_id, day)
        if not summary.bots:
            return None
        message = events.new_message(tenant_id, EventType.DAILY_SUMMARY, msgspec.to_builtins(summary))
        now = events.now()
        claimed = await session.scalar(
            insert(DailySummary)
            .values(id=uuid7(), tenant_id=tenant_id, day=day, event_id=message.id, bots=len(summary.bots),
                    created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["tenant_id", "day"])
            .returning(DailySummary.id)
        )
        if claimed is None:  # another run recorded it (it waited on our insert, or we on its)
            return None
        await events.record_many(session, [message])
    return message


async def summarise(session: AsyncSession, tenant_id: uuid.UUID, day: datetime.date) -> DaySummary:
    """The day of each of the tenant's bots that decided or traded in it (in the session's tenant context)."""
    start, end = day_bounds(day)
    decisions = dict((await session.execute(
        select(DecisionLog.bot_id, func.count())
        .where(DecisionLog.tenant_id == tenant_id, DecisionLog.created_at >= start, DecisionLog.created_at < end)
        .group_by(DecisionLog.bot_id)
    )).tuples().all())
    opened = dict((await session.execute(
        select(Position.bot_id, func.count())
        .where(Position.tenant_id == tenant_id, Position.opened_at >= start, Position.opened_at < end)
        .group_by(Position.bot_id)
    )).tuples().all())
    closed = {row.bot_id: row for row in (await session.execute(
        select(Position.bot_id, func.count().label("trades"), func.sum(Position.realized_pnl).label("pnl"),
               func.count().filter(Position.realized_pnl > 0).label("wins"))
        .where(Position.tenant_id == tenant_id, Position.status == "closed", Position.closed_at >= start,
               Position.closed_at < end)
        .group_by(Position.bot_id)
    )).all()}
    fees = dict((await session.execute(
        select(Fill.bot_id, func.sum(Fill.fee))
        .where(Fill.tenant_id == tenant_id, Fill.created_at >= start, Fill.created_at < end)
        .group_by(Fill.bot_id)
    )).tuples().all())
    bot_ids = sorted(set(decisions) | set(opened) | set(closed))
    if not bot_ids:
        return DaySummary(day=day, bots=[])
    equity_in_day = (Cycle.tenant_id == tenant_id, Cycle.bot_id.in_(bot_ids), Cycle.created_at >= start,
                     Cycle.created_at < end, Cycle.equity.is_not(None))
    last_equity = dict((await session.execute(
        select(Cycle.bot_id, Cycle.equity).where(*equity_in_day).distinct(Cycle.bot_id)
        .order_by(Cycle.bot_id, Cycle.id.desc())
    )).tuples().all())
    first_equity = dict((await session.execute(
        select(Cycle.bot_id, Cycle.equity).where(*equity_in_day).distinct(Cycle.bot_id)
        .order_by(Cycle.bot_id, Cycle.id)
    )).tuples().all())
    bots = {b.id: b for b in (await session.scalars(
        select(Bot).where(Bot.tenant_id == tenant_id, Bot.id.in_(bot_ids)))).all()}
    cash = dict((await session.execute(
        select(PaperAccount.bot_id, PaperAccount.balances)
        .where(PaperAccount.tenant_id == tenant_id, PaperAccount.bot_id.in_(bot_ids))
    )).tuples().all())
    out = []
    for bot_id in bot_ids:
        bot = bots.get(bot_id)
        if bot is None:  # deleted since
            continue
        currency = settle_currency(bot.symbols[0]) if bot.symbols else ""
        done = closed.get(bot_id)
        trades_closed = done.trades if done is not None else 0
        wins = done.wins if done is not None else 0
        paper_cash = cash.get(bot_id, {}).get(currency) if bot_id in cash else None
        out.append(BotDay(
            bot_id=bot_id, name=bot.name, mode=bot.mode, currency=currency,
            realized_pnl=_amount(done.pnl if done is not None else None) or "0",
            fees=_amount(fees.get(bot_id)) or "0",
            trades_opened=opened.get(bot_id, 0), trades_closed=trades_closed, wins=wins,
            win_rate=_amount(round(Decimal(wins) / trades_closed, 4)) if trades_closed else None,
            decisions=decisions.get(bot_id, 0),
            start_equity=_amount(first_equity.get(bot_id)), equity=_amount(last_equity.get(bot_id)),
            cash=_amount(Decimal(paper_cash)) if paper_cash is not None else None,
        ))
    return DaySummary(day=day, bots=out)


def _amount(value: Decimal | None) -> str | None:
    """An exact decimal as a plain string without trailing zeros (`12.4`, `0`, `-3.25`)."""
    if value is None:
        return None
    text_value = format(value, "f")
    if "." in text_value:
        text_value = text_value.rstrip("0").rstrip(".")
    return "0" if text_value in ("-0", "") else text_value

