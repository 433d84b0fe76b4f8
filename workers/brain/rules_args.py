"""The rules brain's strategy parameters as command-line options, shared by `quorum backtest` and `quorum decide`."""

from __future__ import annotations

import argparse

from workers.brain.rules import RulesParams


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off", "") else float(text)


def add_rules_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for the strategy fields of `RulesParams`; each defaults to the shipped default."""
    d = RulesParams()
    group = parser.add_argument_group("strategy (the rules brain; defaults are the shipped default strategy)")
    group.add_argument("--open-threshold", type=float, default=d.open_threshold,
                       help=f"consensus needed to open (default {d.open_threshold})")
    group.add_argument("--regime-trend", type=_optional_float, default=d.regime_trend,
                       help=f"slowest timeframe's trend needed to open, 'none': no filter (default {d.regime_trend})")
    group.add_argument("--follow-regime", action="store_true", help="enter with the regime, not the consensus")
    group.add_argument("--min-edge", type=float, default=d.min_edge,
                       help=f"ATR needed to open, in round trips of costs (default {d.min_edge})")
    group.add_argument("--min-stop-atr", type=float, default=d.min_stop_atr,
                       help=f"nearest stop, in ATR (default {d.min_stop_atr})")
    group.add_argument("--min-reward-risk", type=float, default=d.min_reward_risk,
                       help=f"nearest target, in R (default {d.min_reward_risk})")
    group.add_argument("--max-reward-risk", type=float, default=d.max_reward_risk,
                       help=f"farthest target, in R (default {d.max_reward_risk})")


def rules_from_args(args: argparse.Namespace, **overrides: object) -> RulesParams:
    """The RulesParams the options chose."""
    return RulesParams(
        open_threshold=args.open_threshold,
        regime_trend=args.regime_trend,
        follow_regime=args.follow_regime,
        min_edge=args.min_edge,
        min_stop_atr=args.min_stop_atr,
        min_reward_risk=args.min_reward_risk,
        max_reward_risk=args.max_reward_risk,
        **overrides,
    )
