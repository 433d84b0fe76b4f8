"""Trading cycles on the paper exchange: claim, decide, order, persist, reconcile; redelivery; isolation.

The cycles run in this process on `CycleEnv`, the object a worker process runs them with, against
real PostgreSQL and Redis and the recorded ETH/BTC candles, on a replay clock the test moves.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import msgspec
import pytest
from celery import Celery
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import func, select

from quorum.database import Database
from quorum.settings import Settings
from tenants.models import Cycle, DecisionLog, Event, Fill, Order, PaperAccount, Position
from tenants.scope import TenantScope
from tenants.vault import LocalMasterKeys, Vault
from tests.conftest import REPO_ROOT, Account, register
from workers.brain.breaker import RedisCircuitBreaker
from workers.brain.budget import RedisTokenBudget
from workers.brain.decision import Action, Decision
from workers.brain.service import BotConfig, DecisionInputs, DecisionOutcome, decide, rules_decision
from workers.cycle import CycleEnv, slot_of
from workers.exchanges.factory import open_trading_exchange
from workers.market.cache import SharedOhlcvCache
from workers.market.feed import REPLAY, MarketFeed, ReplayClock, replay_clock
from workers.market.replay import ReplaySource

SYMBOL = "ETH/BTC"
BOT = {"name": "replay", "symbols": [SYMBOL], "timeframes": ["5m", "1h"], "mode": "paper",
       "cycleIntervalSeconds": 60, "leverage": 2, "riskPerTradePct": 1, "maxOpenPositions": 2}


class Clock:
    """Replay time the test moves by hand, in the recording's milliseconds."""

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, minutes: int) -> None:
        self.now_ms += minutes * 60_000


Decide = Callable[[BotConfig, DecisionInputs], Awaitable[DecisionOutcome]]


@functools.cache
def celery_app(settings: Settings) -> Celery:
    """A Celery client on the test Redis: delivery tasks really reach the broker."""
    return Celery("quorum-test", broker=settings.redis_url)


@pytest.fixture
def clock() -> Clock:
    source = ReplaySource()
    real = replay_clock(source, 1.0)
    return Clock(real.start_ms + 3_600_000)


def make_env(settings: Settings, database: Database, redis: Redis, clock: Clock | ReplayClock,
             decide_fn: Decide, soft_time_limit: float = 20.0) -> CycleEnv:
    prefix = f"quorum:test-ohlcv:{uuid.uuid4().hex[:8]}"
    cache = SharedOhlcvCache(redis, ReplaySource(), key_prefix=prefix, clock=clock)
    return CycleEnv(
        database=database, vault=Vault(LocalMasterKeys.from_setting(settings.master_keys)), redis=redis,
        feed=MarketFeed(cache, clock, REPLAY, None), decide=decide_fn,
        open_exchange=functools.partial(open_trading_exchange, database, settings),
        send_task=celery_app(settings).send_task,
        soft_time_limit=soft_time_limit, lock_ttl=soft_time_limit + 5,
    )


def rules(redis: Redis, propose: Callable[[BotConfig, DecisionInputs], Decision] = rules_decision) -> Decide:
    breaker = RedisCircuitBreaker(redis, f"test-{uuid.uuid4().hex[:6]}")
    return functools.partial(decide, gpt=None, breaker=breaker, budget=RedisTokenBudget(redis, 0), propose=propose)


def scripted(redis: Redis, make: Callable[[DecisionInputs], Decision]) -> Decide:
    """The real decision service, with the rules brain's proposal replaced by `make(inputs)` before the guard."""
    return rules(redis, lambda _config, inputs: make(inputs))


async def new_bot(client: AsyncTestClient, account: Account, **changes: object) -> tuple[uuid.UUID, uuid.UUID]:
    me = (await client.get("/v1/me", headers=account.headers)).json()
    created = await client.post("/v1/bots", json={**BOT, **changes}, headers=account.headers)
    assert created.status_code == 201, created.text
    bot_id = created.json()["id"]
    started = await client.post(f"/v1/bots/{bot_id}/start", headers=account.headers)
    assert started.status_code == 200, started.text
    return uuid.UUID(me["tenant"]["id"]), uuid.UUID(bot_id)


async def rows(database: Database, tenant: uuid.UUID, model: type, bot_id: uuid.UUID) -> list:
    async with TenantScope.of(tenant).session(database) as session:
        return list((await session.scalars(select(model).where(model.bot_id == bot_id).order_by(model.id))).all())


def open_long(stop_pct: float, target_pct: float) -> Callable[[DecisionInputs], Decision]:
    def make(inputs: DecisionInputs) -> Decision:
        price = inputs.price or 0.0
        return Decision(Action.OPEN_LONG, inputs.symbol, 0.9, stop_loss=price * (1 - stop_pct / 100),
                        take_profit=price * (1 + target_pct / 100), leverage=2, reasons=("scripted",))
    return make


async def test_a_cycle_decides_and_records_it_and_a_redelivered_slot_does_nothing(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock
) -> None:
    account = await register(client)
    tenant, bot_id = await new_bot(client, account)
    env = make_env(settings, database, redis, clock, rules(redis))
    slot = slot_of(time.time(), 60)
    counted = functools.partial(
        REGISTRY.get_sample_value, "quorum_cycle_duration_seconds_count", {"outcome": "completed"}
    )
    before = counted() or 0

    report = await env.run(tenant, bot_id, slot)
    assert report.status == "completed", report
    assert report.decisions == 1
    assert counted() == before + 1  # what /metrics reports (workers/metrics.py)

    (cycle,) = await rows(database, tenant, Cycle, bot_id)
    assert (cycle.slot, cycle.status, cycle.equity) == (slot, "completed", Decimal("1"))  # 1 BTC of paper cash
    (decision,) = await rows(database, tenant, DecisionLog, bot_id)
    assert decision.symbol == SYMBOL and decision.brain == "rules" and decision.cycle_id == cycle.id
    record = decision.record
    assert record["fingerprint"] == decision.fingerprint
    assert {i["agent"] for i in record["inputs"]["insights"]} >= {"technical", "fibonacci", "gann", "sentiment"}
    assert record["final"]["action"] == decision.action

    again = await env.run(tenant, bot_id, slot)  # the same task delivered a second time
    assert again.status == "skipped"
    assert len(await rows(database, tenant, DecisionLog, bot_id)) == 1
    assert len(await rows(database, tenant, Cycle, bot_id)) == 1


async def test_an_open_fills_on_paper_with_fee_and_slippage_and_the_stop_or_target_closes_it(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock
) -> None:
    account = await register(client)
    tenant, bot_id = await new_bot(client, account)
    opening = make_env(settings, database, redis, clock, scripted(redis, open_long(0.3, 0.3)))

    report = await opening.run(tenant, bot_id, 1_000)
    assert report.status == "completed" and report.orders == 1, report
    (order,) = await rows(database, tenant, Order, bot_id)
    (fill,) = await rows(database, tenant, Fill, bot_id)
    (position,) = await rows(database, tenant, Position, bot_id)
    candles = ReplaySource().read(SYMBOL, "5m", until_ms=clock() - 5_000)  # the cache waits 5 s past a close
    last = Decimal(repr(float(candles.close[-1])))
    assert order.status == "filled" and order.leg == "entry" and order.side == "buy"
    exact = Decimal("1e-15")  # stored with 18 decimals
    assert abs(fill.price - last * (1 + Decimal(repr(settings.paper_slippage_pct)) / 100)) < exact
    assert abs(fill.fee - fill.amount * fill.price * Decimal(repr(settings.paper_fee_pct)) / 100) < exact
    assert position.status == "open" and position.amount == fill.amount and position.stop_loss < last
    # The guard sized it: at most 1% of 1 BTC lost at the stop, notional at most 2x leverage of equity
    # less the 1% kept for costs (this tight stop hits that cap first).
    risk = (position.entry_price - position.stop_loss) * position.amount
    assert risk <= Decimal("0.0101")
    assert Decimal("1.97") < position.amount * last <= Decimal("1.98")
    (account_row,) = await rows(database, tenant, PaperAccount, bot_id)
    assert abs(Decimal(account_row.balances["BTC"]) - (Decimal(1) - fill.fee)) < exact

    holding = make_env(settings, database, redis, clock, rules(redis))
    for minute in range(1, 200):  # replay time moves on until a candle reaches the stop or the target
        clock.advance(5)
        report = await holding.run(tenant, bot_id, 1_000 + minute)
        assert report.status == "completed", report
        (position,) = await rows(database, tenant, Position, bot_id)
        if position.status == "closed":
            break
        # Still open: marked to the last close the cycle saw, its unrealised PnL with it.
        seen = ReplaySource().read(SYMBOL, "5m", until_ms=clock() - 5_000)
        assert position.mark_price == Decimal(repr(float(seen.close[-1])))
        assert abs(position.unrealized_pnl - (position.mark_price - position.entry_price) * position.amount) < exact
    assert position.status == "closed" and position.close_reason in ("stop_loss", "take_profit")
    level = position.stop_loss if position.close_reason == "stop_loss" else position.take_profit
    # The exchange's exit is the closing order, slipped against us and paying its fee, like any other order.
    entry_order, exit_order = await rows(database, tenant, Order, bot_id)
    entry_fill, exit_fill = await rows(database, tenant, Fill, bot_id)
    assert (exit_order.leg, exit_order.side, exit_order.status) == ("close", "sell", "filled")
    assert exit_order.decision_id is None  # no decision sent it: the stop or target on the exchange did
    assert exit_fill.order_id == exit_order.id and exit_fill.amount == position.amount
    assert position.exit_price == exit_fill.price == exit_order.average_price < level  # a long sells below the level
    assert exit_fill.fee > 0 and position.fees == entry_fill.fee + exit_fill.fee
    async with TenantScope.of(tenant).session(database) as session:
        kinds = set((await session.scalars(select(Event.type).where(Event.bot_id == bot_id))).all())
    assert {"decision", "order", "trade.opened", f"trade.{position.close_reason}"} <= kinds
    (account_row,) = await rows(database, tenant, PaperAccount, bot_id)
    assert Decimal(account_row.balances["BTC"]) == 1 + position.realized_pnl  # after both fees, to the last unit


async def test_one_tenant_raising_and_one_timing_out_do_not_delay_a_third(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock
) -> None:
    bots = [await new_bot(client, await register(client)) for _ in range(3)]
    (raising, _), (slow, _), (healthy, _) = bots
    normal = rules(redis)

    async def decide_by_tenant(config: BotConfig, inputs: DecisionInputs) -> DecisionOutcome:
        if config.tenant_id == raising:
            raise RuntimeError("this tenant's brain is broken")
        if config.tenant_id == slow:
            await asyncio.sleep(30)
        return await normal(config, inputs)

    env = make_env(settings, database, redis, clock, decide_by_tenant, soft_time_limit=2.0)
    started = time.perf_counter()

    async def timed(tenant: uuid.UUID, bot: uuid.UUID) -> tuple[object, float]:
        report = await env.run(tenant, bot, 7)
        return report, time.perf_counter() - started

    (r_raise, _), (r_slow, t_slow), (r_ok, t_ok) = await asyncio.gather(*(timed(t, b) for t, b in bots))
    assert r_ok.status == "completed" and t_ok < 1.5, (r_ok, t_ok)
    assert r_raise.status == "failed" and "this tenant's brain is broken" in r_raise.error
    assert r_slow.status == "failed" and "timed out" in r_slow.error and t_slow < 4
    for (tenant, bot), status in zip(bots, ("failed", "failed", "completed"), strict=True):
        (cycle,) = await rows(database, tenant, Cycle, bot)
        assert cycle.status == status


async def test_cycles_of_one_bot_never_overlap(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock
) -> None:
    tenant, bot_id = await new_bot(client, await register(client))
    normal = rules(redis)

    async def slow(config: BotConfig, inputs: DecisionInputs) -> DecisionOutcome:
        await asyncio.sleep(0.5)
        return await normal(config, inputs)

    env = make_env(settings, database, redis, clock, slow)
    first, second = await asyncio.gather(env.run(tenant, bot_id, 11), env.run(tenant, bot_id, 12))
    assert sorted([first.status, second.status]) == ["completed", "locked"]


async def test_dispatch_enqueues_each_due_bot_once_with_ids_only(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis
) -> None:
    from workers.dispatch import DueCycle, dispatch

    tenant, bot_id = await new_bot(client, await register(client))
    sent: list[DueCycle] = []
    first = await dispatch(database, redis, sent.extend, stale_after_seconds=60, chunk_size=2)
    ours = [item for item in sent if item.bot_id == bot_id]
    assert len(ours) == 1 and ours[0].tenant_id == tenant and ours[0].slot == slot_of(time.time(), 60)
    assert first.enqueued == len(sent) and first.due >= 1
    assert msgspec.json.decode(msgspec.json.encode(ours[0])) == [str(tenant), str(bot_id), ours[0].slot]
    sent.clear()
    await dispatch(database, redis, sent.extend, stale_after_seconds=60, chunk_size=2)
    assert not [item for item in sent if item.bot_id == bot_id]  # enqueued already, not yet run


async def test_a_cycle_counts_in_sql(database: Database) -> None:
    async with TenantScope.of(None).session(database) as session:
        assert await session.scalar(select(func.count()).select_from(Cycle)) == 0  # no tenant: RLS shows nothing


async def test_a_gpt_decision_is_stored_with_its_tokens_cost_and_prompt_hash(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock
) -> None:
    from tests.fakes.openai_server import FakeOpenAI, completion
    from workers.brain.gpt import GptBrain, GptBrainConfig

    tenant, bot_id = await new_bot(client, await register(client), brain="gpt")
    with FakeOpenAI() as fake:
        fake.default = completion({
            "action": "WAIT", "symbol": SYMBOL, "entry": None, "stop_loss": None, "take_profit": None,
            "leverage": 1, "confidence": 0.4, "reasons": ["no edge"],
        }, prompt_tokens=1500, completion_tokens=60, cached_tokens=1024)
        config = GptBrainConfig.from_settings(settings, openai_base_url=fake.base_url, openai_api_key="sk-test")
        gpt = GptBrain(config)
        breaker = RedisCircuitBreaker(redis, f"test-{uuid.uuid4().hex[:6]}")
        decide_fn = functools.partial(decide, gpt=gpt, breaker=breaker, budget=RedisTokenBudget(redis, 100_000))
        report = await make_env(settings, database, redis, clock, decide_fn).run(tenant, bot_id, 3)
        await gpt.aclose()
    assert report.status == "completed", report
    (decision,) = await rows(database, tenant, DecisionLog, bot_id)
    assert (decision.brain, decision.fallback, decision.action) == ("gpt", None, "WAIT")
    assert (decision.prompt_tokens, decision.completion_tokens, decision.cached_tokens) == (1500, 60, 1024)
    assert decision.model == "gpt-4o-mini" and decision.cost_usd > 0 and len(decision.prompt_hash) == 64
    assert decision.record["model_answer"] and decision.record["tokens"]["prompt_tokens"] == 1500


async def test_a_bot_on_a_market_with_no_data_pauses_saying_why_in_words_not_paths(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis, clock: Clock
) -> None:
    account = await register(client)
    tenant, bot_id = await new_bot(client, account, symbols=["DOGE/BTC"])
    env = make_env(settings, database, redis, clock, rules(redis))
    report = await env.run(tenant, bot_id, slot_of(time.time(), 60))
    assert report.status == "failed"
    bot = (await client.get(f"/v1/bots/{bot_id}", headers=account.headers)).json()
    reason = bot["pausedReason"]
    assert bot["active"] is False and "DOGE/BTC" in reason and "ETH/BTC" in reason, reason
    assert "/" + "data" not in reason and str(REPO_ROOT) not in reason and "ccxt" not in reason, reason
