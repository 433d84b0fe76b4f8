"""`quorum market-data`: what `quorum run` trades on when the exchanges answer, and when they do not."""

from __future__ import annotations

import json
import subprocess
import sys

from workers.market.choice import choose_market_data
from workers.market.replay import default_ohlcv_dir


def test_online_the_service_reads_the_exchanges_public_candles():
    chosen, line = choose_market_data(online=True)
    assert chosen == {"MARKET_DATA": "ccxt"}
    assert "public APIs" in line


def test_offline_the_default_bot_trades_the_longest_recorded_market_at_60x():
    chosen, line = choose_market_data(online=False)
    assert chosen == {"MARKET_DATA": "replay", "REPLAY_SPEED": "60", "DEFAULT_BOT_SYMBOLS": "ETH/BTC"}
    assert "ETH/BTC, ADA/BTC" in line  # XRP's 100 recorded candles are too few to warm the agents up


def test_the_command_prints_the_settings_as_json_and_the_reason_apart():
    done = subprocess.run(
        [sys.executable, "-m", "quorum.cli", "market-data", "--offline"],
        capture_output=True, text=True, check=True,
        env={"QUORUM_DATA_DIR": str(default_ohlcv_dir().parent), "PATH": ""},
    )
    assert json.loads(done.stdout)["MARKET_DATA"] == "replay"
    assert done.stderr.startswith("quorum: offline: replaying recorded candles")
