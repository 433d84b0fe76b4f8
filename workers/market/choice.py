"""`quorum market-data`: which candles `quorum run` trades on — the exchanges' public APIs when they answer,
else the recorded ones replayed at 60x with the default bot on a recorded market. Prints the settings as JSON
(MARKET_DATA, REPLAY_SPEED, DEFAULT_BOT_SYMBOLS) and, on stderr, a line saying which it chose and why.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys

from workers.market.feed import WARMUP_CANDLES
from workers.market.replay import ReplaySource

OFFLINE_REPLAY_SPEED = "60"


def _online(host: str = "api.binance.com", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def choose_market_data(online: bool) -> tuple[dict[str, str], str]:
    """The settings for live or recorded candles, and a line for the person starting the service."""
    if online:
        return {"MARKET_DATA": "ccxt"}, "market data from the exchanges' public APIs; paper bots trade Binance prices"
    replay = ReplaySource()
    lengths = {s: len(replay.series(s, tfs[0])) for s, tfs in replay.markets().items()}
    recorded = sorted((s for s, n in lengths.items() if n > WARMUP_CANDLES), key=lambda s: -lengths[s])
    chosen = {"MARKET_DATA": "replay", "REPLAY_SPEED": OFFLINE_REPLAY_SPEED}
    if recorded:
        chosen["DEFAULT_BOT_SYMBOLS"] = recorded[0]
    line = (f"offline: replaying recorded candles ({', '.join(recorded) or 'none found'}) at "
            f"{OFFLINE_REPLAY_SPEED}x; the default bot trades {chosen.get('DEFAULT_BOT_SYMBOLS', 'BTC/USDT')}")
    return chosen, line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true", help="choose as if the exchanges did not answer")


def run(args: argparse.Namespace) -> int:
    chosen, line = choose_market_data(online=not args.offline and _online())
    print(f"quorum: {line}", file=sys.stderr)
    print(json.dumps(chosen))
    return 0
