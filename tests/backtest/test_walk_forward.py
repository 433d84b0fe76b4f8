"""The walk-forward: parameters chosen on each training window, judged only on the window after it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quorum.cli import main
from quorum.settings import data_dir
from workers.backtest import BacktestConfig, run_backtest
from workers.brain.rules import RulesParams
from workers.market.candles import TIMEFRAME_MS
from workers.market.replay import read_candles
from workers.walk_forward import _slice, candidates, walk_forward

GRID = {"regime_trend": (None, 0.4), "min_edge": (0.0, 3.0)}


@pytest.fixture(scope="module")
def eth_btc():
    return read_candles(data_dir() / "ohlcv" / "ETH_BTC-5m.csv").head(3300)


def test_each_test_window_follows_its_training_window_and_is_scored_by_its_own_backtest(eth_btc):
    base = BacktestConfig(timeframes=("5m", "15m", "1h"))
    result = walk_forward(eth_btc, base, train=1000, test=1000, grid=GRID, samples=4, processes=1)
    assert len(result.windows) == 2 and result.candidates == 4
    step = TIMEFRAME_MS["5m"]
    for w in result.windows:
        assert w.test_start_ms - w.train_start_ms == 1000 * step  # the training window ends where the test begins
        assert w.params in candidates(GRID, 4, 0)
        # the window's figures are a plain backtest of the chosen parameters over that window (after a warmup)
        start = w.test_start_ms - step - base.warmup * step
        again = run_backtest(_slice(eth_btc, start, w.test_end_ms),
                             BacktestConfig(timeframes=base.timeframes, rules=RulesParams(**w.params)))
        assert again.strategy.total_return == pytest.approx(w.test.total_return)
        assert again.end_ms == w.test_end_ms and again.bars == 1000
    # out of sample is the test windows chained, and nothing else
    chained = math.prod(1 + w.test.total_return for w in result.windows) - 1
    assert result.strategy.total_return == pytest.approx(chained)
    assert result.trades == sum(w.test_trades for w in result.windows)


def test_the_same_seed_chooses_the_same_parameters(eth_btc):
    base = BacktestConfig(timeframes=("5m", "15m"))
    first = walk_forward(eth_btc, base, train=1200, test=900, grid=GRID, samples=3, seed=5, processes=1)
    second = walk_forward(eth_btc, base, train=1200, test=900, grid=GRID, samples=3, seed=5, processes=1)
    assert [w.params for w in first.windows] == [w.params for w in second.windows]
    assert np.isclose(first.strategy.sharpe, second.strategy.sharpe)


def test_quorum_walk_forward_prints_the_windows_and_only_out_of_sample_figures(capsys):
    path = data_dir() / "ohlcv" / "ADA_BTC-5m.csv"
    assert main(["walk-forward", "--data", str(path), "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "chosen on the window before" in out and "out of sample (the test windows chained)" in out
    assert out.count("train Sharpe") == 3
    assert "walk-forward" in out and "buy & hold" in out and "do nothing" in out


def test_too_short_a_file_is_explained(capsys, tmp_path):
    small = tmp_path / "ETH_BTC-5m.csv"
    lines = (data_dir() / "ohlcv" / "ETH_BTC-5m.csv").read_text().splitlines()[:400]
    small.write_text("\n".join(lines) + "\n")
    assert main(["walk-forward", "--data", str(small), "--train", "500", "--test", "200"]) == 2
    assert "walk-forward needs" in capsys.readouterr().err
