"""Real candles for the agent tests: the recorded files and their higher timeframes, loaded once."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from workers.market.candles import Candles
from workers.market.replay import default_ohlcv_dir, read_candles
from workers.market.resample import resample

# Every recorded file, plus the resampled series the multi-timeframe agents read.
SERIES: dict[str, tuple[str, str | None]] = {
    "ETH_BTC-5m": ("ETH_BTC-5m.csv", None),
    "ETH_BTC-15m": ("ETH_BTC-5m.csv", "15m"),
    "ETH_BTC-1h": ("ETH_BTC-5m.csv", "1h"),
    "ADA_BTC-5m": ("ADA_BTC-5m.csv", None),
    "ADA_BTC-1h": ("ADA_BTC-5m.csv", "1h"),
    "XRP_USDT_USDT-1h": ("XRP_USDT_USDT-1h.csv", None),
}


def _folder() -> Path:
    folder = default_ohlcv_dir()
    assert folder.is_dir(), f"recorded candles not found in {folder}; set QUORUM_DATA_DIR"
    return folder


@cache
def load_series(name: str) -> Candles:
    file, timeframe = SERIES[name]
    candles = read_candles(_folder() / file)
    return resample(candles, timeframe) if timeframe else candles


@pytest.fixture(scope="session")
def series() -> Callable[[str], Candles]:
    """`series("ETH_BTC-1h")`: a named real series from SERIES."""
    return load_series


@pytest.fixture(scope="session", params=list(SERIES))
def real_series(request: pytest.FixtureRequest) -> Candles:
    """Each real series of SERIES in turn."""
    return load_series(request.param)


@pytest.fixture(scope="session")
def eth_timeframes() -> dict[str, Candles]:
    """ETH/BTC on 5m (trading timeframe, first) and resampled 15m, 1h and 4h."""
    five = load_series("ETH_BTC-5m")
    return {"5m": five, "15m": resample(five, "15m"), "1h": resample(five, "1h"), "4h": resample(five, "4h")}
