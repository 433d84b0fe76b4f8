"""The `quorum` command: each subcommand lives in the module that owns it and is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). The module defines `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("quorum.supervisor", "start the whole service (embedded PostgreSQL and Redis unless URLs are set)"),
    "serve": ("api.serve", "run the API server only"),
    "worker": ("workers.commands", "run a Celery worker: trading cycles, key checks, notifications"),
    "beat": ("workers.commands", "run the scheduler that ticks the dispatcher (exactly one per deployment)"),
    "db": ("tenants.db_commands", "database: bootstrap roles, apply migrations"),
    "openapi": ("api.openapi_export", "print or write the OpenAPI schema"),
    "rotate-master-key": ("tenants.vault_commands", "re-wrap every tenant data key under the active master key"),
    "admin": ("tenants.admin_commands", "platform operators: grant, revoke, list"),
    "backtest": ("workers.backtest", "replay a CSV through the agents, the rules brain and simulated fills"),
    "walk-forward": ("workers.walk_forward", "choose rules-brain parameters on past windows, score the next"),
    "market-data": ("workers.market.choice", "say which candles `quorum run` trades on (live or recorded), as JSON"),
    "decide": ("workers.brain.decide_command", "run one decision on replay data and explain it"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quorum", description="Quorum trading-bot backend")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = (argv if argv is not None else sys.argv[1:])[:1]
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        # Import only the module of the command being run: `quorum serve` must not load numpy or ccxt.
        if wanted == [name]:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
            sp.set_defaults(_module=module)
    args = parser.parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
