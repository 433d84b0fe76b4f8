"""`quorum decide`: one decision on recorded candles, explained step by step.

Prints the agents' insights, the brain's proposal (and, with `--brain gpt`, any fallback to the rules
brain and why), the validation and risk-guard changes, and the final decision. The shared circuit
breaker and token budget live in Redis (REDIS_URL); without it the command runs them disabled
(`LocalOnly*`) for this one local run and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime

from workers.brain.breaker import CircuitBreaker, LocalOnlyBreaker
from workers.brain.budget import LocalOnlyBudget, TokenBudget
from workers.brain.decision import Decision
from workers.brain.gpt import GptBrain, GptBrainConfig
from workers.brain.risk import AccountState, RiskConfig
from workers.brain.rules_args import add_rules_arguments, rules_from_args
from workers.brain.service import (
    BotConfig,
    BrainKind,
    DecisionInputs,
    DecisionOutcome,
    decide,
    shared_breaker_and_budget,
)
from workers.exchanges.base import MarketRules

# The tenant and bot a local run stands for: budget keys in Redis are counted under them.
LOCAL_TENANT = uuid.UUID(int=0)
LOCAL_BOT = uuid.UUID(int=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="CSV of candles: timestamp,open,high,low,close,volume")
    parser.add_argument("--symbol", help="symbol, e.g. ETH/BTC (default: from the file name)")
    parser.add_argument("--brain", choices=[b.value for b in BrainKind], default=BrainKind.RULES.value)
    parser.add_argument("--at", type=int, help="decide at this time, ms since epoch (default: the last close)")
    parser.add_argument("--timeframes", default="5m,15m,1h", help="comma-separated; the first is the trading timeframe")
    parser.add_argument("--lookback", type=int, default=300, help="candles per timeframe given to the agents")
    parser.add_argument("--model", help="model name (default: OPENAI_MODEL setting, else gpt-4o-mini)")
    parser.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (Ollama)")
    parser.add_argument("--timeout", type=float, help="seconds per model call attempt")
    parser.add_argument("--retries", type=int, help="the client's retries on 429/5xx/connection errors")
    parser.add_argument("--equity", type=float, default=10_000.0, help="account equity in quote currency")
    parser.add_argument("--risk-pct", type=float, default=1.0, help="percent of equity risked per trade")
    parser.add_argument("--max-leverage", type=float, default=1.0, help="leverage cap")
    parser.add_argument("--max-positions", type=int, default=1, help="open positions allowed")
    parser.add_argument("--open-positions", type=int, default=0, help="positions already open")
    parser.add_argument("--pnl-today", type=float, default=0.0, help="today's realised + unrealised PnL")
    parser.add_argument("--daily-loss-pct", type=float, default=3.0, help="daily loss limit (kill switch), %%")
    parser.add_argument("--no-short", action="store_true", help="long only (spot)")
    parser.add_argument("--amount-step", type=float, default=0.0, help="exchange amount step (0: none)")
    parser.add_argument("--price-tick", type=float, default=0.0, help="exchange price tick (0: none)")
    parser.add_argument("--min-amount", type=float, default=0.0, help="exchange minimum amount")
    parser.add_argument("--min-notional", type=float, default=0.0, help="exchange minimum notional")
    add_rules_arguments(parser)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.8g}"


def format_decision(d: Decision) -> str:
    parts = [d.action.value, d.symbol]
    if d.size is not None:
        parts.append(f"size {_num(d.size)}")
    if d.entry is not None:
        parts.append(f"entry {_num(d.entry)}")
    if d.stop_loss is not None:
        parts.append(f"stop {_num(d.stop_loss)}")
    if d.take_profit is not None:
        parts.append(f"take-profit {_num(d.take_profit)}")
    parts.append(f"leverage {d.leverage:g}")
    parts.append(f"confidence {d.confidence:.2f}")
    return "  ".join(parts)


def format_outcome(outcome: DecisionOutcome, header: list[str]) -> str:
    """The printout of `quorum decide`."""
    r = outcome.record
    lines = [*header, "", "Insights"]
    for i in r.inputs.insights:
        lines.append(f"  {i.agent.value:<10} score {i.score:+.3f}  confidence {i.confidence:.2f}")
        lines.extend(f"      {reason}" for reason in i.reasons)

    lines += ["", "Brain"]
    if r.brain == r.requested_brain:
        lines.append(f"  {r.brain.value}")
    else:
        lines.append(f"  requested {r.requested_brain.value}, decided by {r.brain.value}")
    if r.fallback is not None:
        lines.append(f"  fallback: {r.fallback.value} — {r.fallback_detail}")
    if outcome.budget_exhausted_notify:
        lines.append("  (the tenant is told once today that its token budget is spent)")
    if r.model_answer is not None and r.brain != BrainKind.GPT:
        lines.append(f"  the model answered: {r.model_answer[:500]}")

    lines += ["", f"Proposal ({r.brain.value} brain)", "  " + format_decision(r.proposal)]
    lines.extend(f"    - {reason}" for reason in r.proposal.reasons)
    if r.validation:
        lines += ["", "Validation of the model's answer"]
        lines.extend(f"  {v.outcome.value:<8} {v.kind.value}: {v.detail}" for v in r.validation)

    lines += ["", "Risk guard"]
    if r.adjustments:
        lines.extend(f"  {a.kind.value:<6} {a.rule.value}: {a.detail}" for a in r.adjustments)
    else:
        lines.append("  no changes")

    lines += ["", "Final decision", "  " + format_decision(r.final), "", "Record"]
    lines.append(f"  fingerprint  sha256:{r.fingerprint}")
    lines.append(f"  prompt hash  {'sha256:' + r.prompt_hash if r.prompt_hash else '—'}")
    if r.tokens is not None:
        t = r.tokens
        cost = f"${t.cost_usd:.6f}" + (f" ({t.cost_note})" if t.cost_note else "")
        lines.append(
            f"  tokens       {t.prompt_tokens} prompt ({t.cached_tokens} cached), {t.completion_tokens} completion,"
            f" model {t.model}, cost {cost}"
        )
    else:
        lines.append("  tokens       none")
    lines.append(f"  latency      {r.latency_ms:.1f} ms")
    return "\n".join(lines)


async def _decide(
    bot: BotConfig, inputs: DecisionInputs, gpt_config: GptBrainConfig, redis_url: str
) -> tuple[DecisionOutcome, str]:
    gpt = GptBrain(gpt_config) if bot.brain == BrainKind.GPT else None
    redis = None
    breaker: CircuitBreaker
    budget: TokenBudget
    if redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        breaker, budget = shared_breaker_and_budget(redis, gpt_config)
        coordination = f"breaker and token budget: shared through Redis ({gpt_config.breaker_name})"
    else:
        breaker, budget = LocalOnlyBreaker(), LocalOnlyBudget()
        coordination = "breaker and token budget: DISABLED — REDIS_URL is not set; a one-off local run"
    try:
        outcome = await decide(bot, inputs, gpt=gpt, breaker=breaker, budget=budget)
    finally:
        if gpt is not None:
            await gpt.aclose()
        if redis is not None:
            await redis.aclose()
    return outcome, coordination


def run(args: argparse.Namespace) -> int:
    from quorum.settings import load_settings
    from workers.agents.analysis import analyse_symbol
    from workers.market.candles import TIMEFRAME_MS
    from workers.market.replay import read_candles
    from workers.market.resample import resample

    timeframes = [tf.strip() for tf in args.timeframes.split(",") if tf.strip()]
    try:
        candles = read_candles(args.data, symbol=args.symbol)
        series = {tf: resample(candles, tf) for tf in timeframes}
    except (OSError, ValueError) as exc:  # missing file, unparsable name or rows, unknown timeframe
        print(f"quorum decide: {exc}", file=sys.stderr)
        return 2
    if not timeframes or len(candles) == 0:
        print("quorum decide: no timeframes or no candles", file=sys.stderr)
        return 2
    symbol = candles.symbol
    trading = timeframes[0]
    at = args.at if args.at is not None else int(candles.timestamp[-1]) + TIMEFRAME_MS[candles.timeframe]
    views = {tf: s.upto(at).tail(args.lookback) for tf, s in series.items()}
    if len(views[trading]) < 50:
        print(f"quorum decide: only {len(views[trading])} {trading} candles closed by {at}; need 50", file=sys.stderr)
        return 2
    price = float(views[trading].close[-1])
    insights = analyse_symbol(symbol, views, now_ms=at)

    settings = load_settings()
    gpt_config = GptBrainConfig.from_settings(
        settings,
        openai_model=args.model,
        openai_base_url=args.base_url,
        llm_timeout_seconds=args.timeout,
        llm_max_retries=args.retries,
    )
    bot = BotConfig(
        tenant_id=LOCAL_TENANT,
        bot_id=LOCAL_BOT,
        symbols=(symbol,),
        brain=BrainKind(args.brain),
        risk=RiskConfig(
            max_leverage=args.max_leverage,
            risk_per_trade_pct=args.risk_pct,
            max_open_positions=args.max_positions,
            daily_loss_limit_pct=args.daily_loss_pct,
            allow_short=not args.no_short,
        ),
        rules=rules_from_args(args),
    )
    inputs = DecisionInputs(
        symbol=symbol,
        price=price,
        insights=tuple(insights),
        account=AccountState(equity=args.equity, open_positions=args.open_positions, pnl_today=args.pnl_today),
        market=MarketRules(
            symbol=symbol,
            amount_step=args.amount_step or None,
            price_tick=args.price_tick or None,
            min_amount=args.min_amount or None,
            min_notional=args.min_notional or None,
        ),
    )
    outcome, coordination = asyncio.run(_decide(bot, inputs, gpt_config, settings.redis_url))
    header = [f"{symbol} {','.join(timeframes)}  at {_when(at)} UTC  price {price:.8g}"]
    if bot.brain == BrainKind.GPT:
        where = gpt_config.openai_base_url or "the client's default base URL"
        header.append(f"gpt brain: model {gpt_config.openai_model} at {where}")
        header.append(coordination)
    print(format_outcome(outcome, header))
    return 0
