"""Candles from CSV files (timestamp,open,high,low,close,volume), and an offline source serving them.

`ReplaySource` answers the same requests as the live ccxt source, so tests, backtests and the
embedded default run the trading cycle on recorded candles with no network.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from quorum.settings import data_dir
from workers.market.cache import UnknownMarket
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.resample import resample, timeframe_ms

log = logging.getLogger(__name__)


def default_ohlcv_dir() -> Path:
    """The recorded-candles folder: `ohlcv/` in the data folder (the repository's `data/` unless QUORUM_DATA_DIR)."""
    return data_dir() / "ohlcv"


def parse_file_name(name: str) -> tuple[str, str]:
    """`ETH_BTC-5m.csv` → ("ETH/BTC", "5m"); `XRP_USDT_USDT-1h.csv` → ("XRP/USDT:USDT", "1h")."""
    stem = name.removesuffix(".csv")
    pair, sep, timeframe = stem.rpartition("-")
    parts = pair.split("_")
    if not sep or timeframe not in TIMEFRAME_MS or len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"not a candle file name: {name!r} (expected BASE_QUOTE[_SETTLE]-<timeframe>.csv)")
    symbol = f"{parts[0]}/{parts[1]}" + (f":{parts[2]}" if len(parts) == 3 else "")
    return symbol, timeframe


def file_name(symbol: str, timeframe: str) -> str:
    """The inverse of `parse_file_name`: ("XRP/USDT:USDT", "1h") → `XRP_USDT_USDT-1h.csv`."""
    return f"{symbol.replace('/', '_').replace(':', '_')}-{timeframe}.csv"


def read_candles(path: Path | str, symbol: str | None = None, timeframe: str | None = None) -> Candles:
    """Read one CSV into Candles, sorted by time with duplicate timestamps dropped (last row wins)."""
    path = Path(path)
    if symbol is None or timeframe is None:
        parsed_symbol, parsed_timeframe = parse_file_name(path.name)
        symbol = symbol or parsed_symbol
        timeframe = timeframe or parsed_timeframe
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if rows.shape[0] == 0:
        rows = np.empty((0, 6))
    if rows.shape[1] != 6:
        raise ValueError(f"{path}: expected 6 columns timestamp,open,high,low,close,volume")
    ts = rows[:, 0].astype(np.int64)
    if not np.all(ts[1:] > ts[:-1]):
        # Stable sort, then keep the last row of each timestamp: a re-downloaded candle replaces the old.
        order = np.argsort(ts, kind="stable")
        rows, ts = rows[order], ts[order]
        keep = np.r_[ts[1:] != ts[:-1], True]
        rows, ts = rows[keep], ts[keep]
    columns = np.ascontiguousarray(rows[:, 1:].T)
    return Candles(symbol, timeframe, ts, columns[0], columns[1], columns[2], columns[3], columns[4])


class ReplaySource:
    """Serves fetch_ohlcv requests from `<BASE>_<QUOTE>[_<SETTLE>]-<tf>.csv` files in one folder.

    The folder stands in for every exchange. A timeframe with no file of its own is resampled from
    the longest shorter timeframe that divides it. Only candles closed by `until_ms` are returned;
    without `until_ms` the end of the file is "now".
    """

    def __init__(self, folder: Path | str | None = None) -> None:
        self._folder = Path(folder) if folder is not None else default_ohlcv_dir()
        self._files: dict[tuple[str, str], Path] | None = None
        self._series: dict[tuple[str, str], Candles] = {}

    def markets(self) -> dict[str, list[str]]:
        """Symbol → the timeframes recorded for it in the folder."""
        result: dict[str, list[str]] = {}
        for symbol, timeframe in sorted(self._index(), key=lambda k: (k[0], timeframe_ms(k[1]))):
            result.setdefault(symbol, []).append(timeframe)
        return result

    def series(self, symbol: str, timeframe: str) -> Candles:
        """The whole recorded series of `symbol` in `timeframe`, resampled when needed (memoised)."""
        key = (symbol, timeframe)
        cached = self._series.get(key)
        if cached is not None:
            return cached
        if timeframe not in TIMEFRAME_MS:
            raise UnknownMarket(f"unknown timeframe {timeframe!r}")
        target_ms = timeframe_ms(timeframe)
        files = self._index()
        if key in files:
            candles = read_candles(files[key], symbol, timeframe)
        else:
            shorter = [tf for (s, tf) in files if s == symbol and target_ms % timeframe_ms(tf) == 0]
            if not shorter:
                # The reason reaches the user (a paused bot says why): it names what is offered, not the folder.
                log.warning("no recorded candles", extra={"symbol": symbol, "timeframe": timeframe,
                                                           "folder": str(self._folder)})
                offered = ", ".join(sorted({s for s, _ in files})) or "none"
                raise UnknownMarket(f"no market data for {symbol} here: this server replays recorded candles of "
                                    f"{offered} only")
            base = self.series(symbol, max(shorter, key=timeframe_ms))
            candles = resample(base, timeframe)
        # Every caller shares the memoised arrays: make them read-only so nobody edits the recording.
        for array in (candles.timestamp, candles.open, candles.high, candles.low, candles.close, candles.volume):
            array.flags.writeable = False
        self._series[key] = candles
        return candles

    def read(self, symbol: str, timeframe: str, *, limit: int = 500, until_ms: int | None = None) -> Candles:
        """The last `limit` candles of `symbol`/`timeframe` that had closed by `until_ms`."""
        candles = self.series(symbol, timeframe)
        if until_ms is not None:
            last_open = until_ms - timeframe_ms(timeframe)
            candles = candles.head(int(np.searchsorted(candles.timestamp, last_open, side="right")))
        return candles.tail(limit)

    async def fetch_ohlcv(
        self, exchange: str, symbol: str, timeframe: str, *, limit: int = 500, until_ms: int | None = None
    ) -> Candles:
        """`read`, behind the interface every OHLCV source offers; `exchange` is ignored."""
        return self.read(symbol, timeframe, limit=limit, until_ms=until_ms)

    def _index(self) -> dict[tuple[str, str], Path]:
        if self._files is None:
            files: dict[tuple[str, str], Path] = {}
            if self._folder.is_dir():
                for path in self._folder.glob("*.csv"):
                    try:
                        files[parse_file_name(path.name)] = path
                    except ValueError:
                        continue
            self._files = files
        return self._files
