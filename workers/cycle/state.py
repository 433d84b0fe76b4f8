"""What a cycle's steps share: the services of the worker process, and the state of the run as it goes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from quorum.database import Database
from tenants import events
from tenants.events import EventMessage, EventType
from tenants.scope import TenantScope
from tenants.vault import Vault
from workers import ledger
from workers.agents.insight import Insight
from workers.brain.service import BotConfig, DecisionInputs, DecisionOutcome
from workers.exchanges.base import Exchange
from workers.exchanges.factory import Credentials
from workers.market.candles import Candles
from workers.market.feed import MarketFeed
from workers.notify.outbox import SendTask

Decide = Callable[[BotConfig, DecisionInputs], Awaitable[DecisionOutcome]]
OpenExchange = Callable[[str, Credentials | None, bool, uuid.UUID, uuid.UUID, Mapping[str, Candles]], Exchange]


class Services(Protocol):
    """What a run uses of its worker process (`workers.cycle.runner.CycleEnv`)."""

    database: Database
    vault: Vault
    redis: Redis
    feed: MarketFeed
    decide: Decide
    open_exchange: OpenExchange
    send_task: SendTask

    def market_insights(self, venue: str, symbol: str, candles: Mapping[str, Candles]) -> list[Insight]: ...


class RunState:
    """One cycle's state. Its events are collected here and published once, when the run finishes."""

    def __init__(self, services: Services, tenant_id: uuid.UUID, bot_id: uuid.UUID, slot: int) -> None:
        self.services, self.tenant_id, self.bot_id, self.slot = services, tenant_id, bot_id, slot
        self.started = ledger.utcnow()
        self.cycle_id: uuid.UUID | None = None
        self.events: list[EventMessage] = []
        self.orders = 0  # orders sent
        self.candle_end: dict[str, int] = {}  # per symbol: when the last candle the run saw closed (ms)
        self.placed = 0  # decisions stored with their order (the others are stored at the end)
        self.marks: list[ledger.Mark] = []  # open positions' marks, stored when the cycle finishes
        self.webhooks = True  # until the claim says whether the tenant has a webhook endpoint

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction of the run's tenant (the ORM door)."""
        return TenantScope.of(self.tenant_id).session(self.services.database)

    def decision_message(self, row: ledger.DecisionRow) -> EventMessage:
        payload = {
            "decisionId": str(row.id), "symbol": row.symbol, "action": row.action, "brain": row.brain,
            "confidence": row.confidence, "fallback": row.fallback,
        }
        return events.new_message(self.tenant_id, EventType.DECISION, payload, self.bot_id)

    async def event(self, type_: EventType, payload: dict[str, object]) -> EventMessage:
        async with self.session() as session:
            return await events.record(session, self.tenant_id, type_, payload, self.bot_id)
