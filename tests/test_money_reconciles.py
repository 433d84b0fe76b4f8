"""The money adds up: a paper bot's equity change, its realised PnL and its fills' cash flows less fees are one
figure, exactly, whichever way its trades closed (the brain's close, a stop, a target, a gap through the stop,
a candle touching both); and the backtest's trades add up to its equity the same way.

The paper cycles run on `CycleEnv` against real PostgreSQL and Redis, on hand-built candles whose every
candle after the warm-up is chosen to close one trade one way.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from decimal import Decimal, localcontext

import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from quorum.database import Database
from quorum.settings import Settings
from tenants.models import Fill, Order, PaperAccount, Position
from tenants.vault import LocalMasterKeys, Vault
from tests.conftest import register
from tests.test_cycle import celery_app, new_bot, rows, scripted
from workers.backtest import BacktestConfig, run_backtest
from workers.brain.decision import Action, Decision
from workers.brain.rules import RulesParams
from workers.brain.service import DecisionInputs
from workers.cycle import CycleEnv
from workers.exchanges.factory import open_trading_exchange
from workers.market.cache import SharedOhlcvCache
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.feed import REPLAY, MarketFeed
from workers.market.replay import read_candles

SYMBOL = "TST/BTC"
FIVE_MIN = TIMEFRAME_MS["5m"]
START = 1_700_000_000_000 - 1_700_000_000_000 % FIVE_MIN
WARMUP = 300
P = 0.05

# After the warm-up, one candle per cycle (open, high, low, close) and what the brain says at its close.
# Each trade opens at a close and is taken out by the next candle (or the next decision).
STEPS: list[tuple[tuple[float, float, float, float], tuple[str, float, float] | None]] = [
    ((P, P + 1e-4, P - 1e-4, P), ("long", 0.049, 0.051)),  # A opens
    ((P, P + 1e-4, P - 1e-4, P), ("close", 0.0, 0.0)),  # A: the brain closes it
    ((P, P + 1e-4, P - 1e-4, P), ("long", 0.049, 0.051)),  # B opens
    ((0.05, 0.0501, 0.0485, 0.0495), ("long", 0.0485, 0.0505)),  # B: stop; C opens
    ((0.0495, 0.0506, 0.0494, 0.0505), ("long", 0.0495, 0.0515)),  # C: target; D opens
    ((0.0490, 0.0492, 0.0488, 0.0491), ("short", 0.0501, 0.0481)),  # D: gap through the stop; E opens
    ((0.0491, 0.0502, 0.0480, 0.0495), None),  # E: touches both, the stop counts
]


def market() -> Candles:
    """WARMUP candles zigzagging around P, then the STEPS candles."""
    wiggle = 1e-4 * np.sin(np.arange(WARMUP) / 3.0)
    warm = [(P + w, P + abs(w) + 2e-4, P - abs(w) - 2e-4, P + w) for w in wiggle]
    rows_ = warm + [candle for candle, _ in STEPS]
    o, h, lo, c = (np.array(col) for col in zip(*rows_, strict=True))
    ts = START + FIVE_MIN * np.arange(len(rows_), dtype=np.int64)
    return Candles(SYMBOL, "5m", ts, o, h, lo, c, np.ones(len(rows_)))


class HandBuiltSource:
    """An OHLCV source over one hand-built 5m series: the candles closed by `until_ms`."""

    def __init__(self, candles: Candles) -> None:
        self.candles = candles

    async def fetch_ohlcv(self, exchange: str, symbol: str, timeframe: str, *, limit: int = 500,
                          until_ms: int | None = None) -> Candles:
        closed = int(np.searchsorted(self.candles.timestamp + FIVE_MIN, until_ms or 2**62, side="right"))
        return self.candles.head(closed).tail(limit)


class Clock:
    def __init__(self) -> None:
        self.now_ms = 0

    def __call__(self) -> int:
        return self.now_ms


def planned(step: list[int]) -> Callable[[DecisionInputs], Decision]:
    """The brain's proposal at the close of STEPS[step[0]] (WAIT during the warm-up)."""

    def make(inputs: DecisionInputs) -> Decision:
        plan = STEPS[step[0]][1] if step[0] >= 0 else None
        if plan is None:
            return Decision(Action.WAIT, inputs.symbol, 0.0, reasons=("scripted",))
        kind, stop, target = plan
        if kind == "close":
            return Decision(Action.CLOSE, inputs.symbol, 0.9, reasons=("scripted",))
        action = Action.OPEN_LONG if kind == "long" else Action.OPEN_SHORT
        return Decision(action, inputs.symbol, 0.9, stop_loss=stop, take_profit=target, leverage=2,
                        reasons=("scripted",))

    return make


async def test_paper_equity_realised_pnl_and_fill_cash_flows_less_fees_agree_to_the_unit_on_every_exit(
    client: AsyncTestClient, settings: Settings, database: Database, redis: Redis
) -> None:
    account = await register(client)
    tenant, bot_id = await new_bot(client, account, symbols=[SYMBOL], timeframes=["5m"], riskPerTradePct=0.5,
                                   dailyLossLimitPct=20, maxOpenPositions=1)
    clock = Clock()
    cache = SharedOhlcvCache(redis, HandBuiltSource(market()), key_prefix=f"quorum:test-ohlcv:{uuid.uuid4().hex[:8]}",
                             clock=clock)
    step = [-1]
    env = CycleEnv(
        database=database, vault=Vault(LocalMasterKeys.from_setting(settings.master_keys)), redis=redis,
        feed=MarketFeed(cache, clock, REPLAY, None), decide=scripted(redis, planned(step)),
        open_exchange=functools.partial(open_trading_exchange, database, settings),
        send_task=celery_app(settings).send_task, soft_time_limit=20.0, lock_ttl=25.0,
    )
    for i in range(len(STEPS)):
        step[0] = i
        clock.now_ms = START + (WARMUP + i + 1) * FIVE_MIN + 10_000  # just after the candle of step i closed
        report = await env.run(tenant, bot_id, 10_000 + i)
        assert report.status == "completed", report

    positions = await rows(database, tenant, Position, bot_id)
    assert [(p.side, p.status, p.close_reason) for p in positions] == [
        ("long", "closed", "signal"),
        ("long", "closed", "stop_loss"),
        ("long", "closed", "take_profit"),
        ("long", "closed", "stop_loss"),
        ("short", "closed", "stop_loss"),
    ]
    orders = await rows(database, tenant, Order, bot_id)
    fills = await rows(database, tenant, Fill, bot_id)
    assert [o.leg for o in orders] == ["entry", "close"] * 5 and all(o.status == "filled" for o in orders)
    assert len(fills) == 10 and all(f.fee > 0 for f in fills)
    # Every exit was slipped against us, from the price that took it out: the close, the stop, the target, the
    # gapped open, the stop again (the candle touched both).
    exits = [p.exit_price for p in positions]
    references = [Decimal("0.05"), Decimal("0.049"), Decimal("0.0505"), Decimal("0.049"), Decimal("0.0501")]
    slip = 1 + Decimal(repr(settings.paper_slippage_pct)) / 100
    for exit_price, reference, position in zip(exits, references, positions, strict=True):
        assert exit_price == (reference * slip if position.side == "short" else reference * (2 - slip))
    by_order = {f.order_id: f for f in fills}
    for position, (entry, close) in zip(positions, zip(orders[::2], orders[1::2], strict=True), strict=True):
        assert position.fees == by_order[entry.id].fee + by_order[close.id].fee  # both fills
        assert close.average_price == position.exit_price and close.fee == by_order[close.id].fee

    # What /orders shows: the exchange's exits too, with their slipped price and fee.
    listed = await client.get(f"/v1/bots/{bot_id}/orders", headers=account.headers, params={"limit": 50})
    assert listed.status_code == 200, listed.text
    shown = {o["clientOrderId"]: o for o in listed.json()["items"]}
    for close in orders[1::2]:
        seen = shown[close.client_order_id]
        assert (Decimal(seen["averagePrice"]), Decimal(seen["fee"])) == (close.average_price, close.fee)

    (paper,) = await rows(database, tenant, PaperAccount, bot_id)
    with localcontext() as exact:
        exact.prec = 80
        equity_change = Decimal(paper.balances["BTC"]) - 1  # no position left open: the cash is the equity
        realised = sum((p.realized_pnl for p in positions), Decimal(0))
        cash_flows = sum((f.amount * f.price * (1 if f.side == "sell" else -1) for f in fills), Decimal(0))
        fees = sum((f.fee for f in fills), Decimal(0))
    assert equity_change == realised == cash_flows - fees
    assert equity_change < 0  # three stops against one target and a flat close: and the fees


@pytest.mark.parametrize("symbol_file", ["ETH_BTC-5m.csv", "ADA_BTC-5m.csv"])
def test_backtest_equity_change_is_the_trades_pnl_and_their_cash_flows_less_fees(symbol_file: str):
    from quorum.settings import data_dir

    candles = read_candles(data_dir() / "ohlcv" / symbol_file).head(3000)
    # a strategy that trades on these files (the shipped default rarely does on 5m): no regime filter, no cost gate
    config = BacktestConfig(rules=RulesParams(regime_trend=None, min_edge=0.0, min_reward_risk=1.5))
    result = run_backtest(candles, config)
    assert result.trades, "the check needs trades"
    change = float(result.equity_curve[-1]) - config.equity
    pnl = sum(t.pnl for t in result.trades)
    sign = {"long": 1.0, "short": -1.0}
    flows = sum(sign[t.side.value] * t.size * (t.exit_price - t.entry_price) for t in result.trades)
    fees = sum(t.fees for t in result.trades)
    assert change == pytest.approx(pnl, rel=1e-9, abs=1e-9 * config.equity)
    assert change == pytest.approx(flows - fees, rel=1e-9, abs=1e-9 * config.equity)
