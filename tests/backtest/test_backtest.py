"""The backtest: real candles through the real agents and rules brain, fills, and no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quorum.settings import data_dir
from workers.agents.analysis import SymbolAnalysis, analyse_symbol
from workers.agents.insight import AgentName, Insight, Level, OpenPosition, PositionSide
from workers.backtest import BacktestConfig, default_timeframes, run_backtest
from workers.brain.decision import Action
from workers.brain.rules import RulesParams
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.replay import read_candles
from workers.market.resample import resample

DATA_DIR = data_dir()
# A strategy that trades on the 5m files (the shipped default rarely does): no regime filter, no cost gate.
TRADING = RulesParams(regime_trend=None, min_edge=0.0, min_reward_risk=1.5)
FIVE_MIN = TIMEFRAME_MS["5m"]


@pytest.fixture(scope="module")
def eth_btc() -> Candles:
    return read_candles(DATA_DIR / "ohlcv" / "ETH_BTC-5m.csv")


def test_backtest_on_real_eth_btc_gives_finite_figures_next_to_buy_and_hold(eth_btc: Candles):
    result = run_backtest(eth_btc, BacktestConfig())
    for perf in (result.strategy, result.buy_and_hold):
        assert math.isfinite(perf.total_return) and math.isfinite(perf.sharpe)
        assert 0.0 <= perf.max_drawdown < 1.0
    assert 0.0 <= result.win_rate <= 1.0
    assert np.all(np.isfinite(result.equity_curve)) and np.all(result.equity_curve > 0)
    assert result.bars == len(eth_btc) - 300 == len(result.decisions)
    # buy-and-hold is the closes' own move, less one round trip of fees and slippage
    first, last = eth_btc.close[300], eth_btc.close[-1]
    assert result.buy_and_hold.total_return == pytest.approx(last / first - 1, abs=0.004)
    for trade in result.trades:
        assert trade.entry_time < trade.exit_time and trade.size > 0
        assert trade.fees > 0


def test_backtest_handles_gaps_in_real_ada_btc():
    ada = read_candles(DATA_DIR / "ohlcv" / "ADA_BTC-5m.csv")
    assert np.any(np.diff(ada.timestamp) > FIVE_MIN)  # the file really has gaps
    result = run_backtest(ada.head(1500), BacktestConfig())
    assert math.isfinite(result.strategy.total_return) and math.isfinite(result.strategy.sharpe)


def test_the_analysis_read_at_t_is_the_analysis_of_the_candles_closed_by_t(eth_btc: Candles):
    """The backtest computes every series once over all the candles and reads it at t; cut the candles after
    t instead (each higher timeframe to its buckets closed by t) and every insight is the same, exactly."""
    five = eth_btc.head(1400)
    series = {tf: resample(five, tf) for tf in ("5m", "15m", "1h", "4h")}
    analysis = SymbolAnalysis("ETH/BTC", series)
    position = OpenPosition("ETH/BTC", PositionSide.LONG, float(five.close[600]), 1.0,
                            int(five.timestamp[600]) + FIVE_MIN, float(five.close[600]) * 0.98, None)
    for t in (0, 1, 13, 40, 120, 301, 600, 601, 777, 1000, 1399):
        now = analysis.close_ms(t)
        views = {tf: s.upto(now) for tf, s in series.items()}
        held = (position,) if t > 600 else ()
        assert views["5m"].timestamp[-1] == five.timestamp[t]
        assert analysis.at(t, positions=held) == analyse_symbol("ETH/BTC", views, positions=held, now_ms=now), t


@pytest.mark.parametrize("cut", [700, 1000, 1350])
def test_garbage_after_t_does_not_change_any_decision_up_to_t(eth_btc: Candles, cut: int):
    candles = eth_btc.head(1500)  # candles after index `cut` are replaced by garbage
    rng = np.random.default_rng(7)
    noise = lambda a: np.r_[a[: cut + 1], rng.uniform(0.01, 10.0, len(a) - cut - 1)]  # noqa: E731
    high = noise(candles.high)
    garbage = Candles(
        candles.symbol,
        candles.timeframe,
        candles.timestamp,
        np.minimum(noise(candles.open), high),
        high,
        np.minimum(noise(candles.low), high),
        np.minimum(noise(candles.close), high),
        noise(candles.volume),
    )
    config = BacktestConfig(timeframes=("5m", "15m", "1h"), rules=TRADING)
    clean = run_backtest(candles, config)
    dirty = run_backtest(garbage, config)

    t = int(candles.timestamp[cut]) + FIVE_MIN
    before_clean = [d for d in clean.decisions if d[0] <= t]
    before_dirty = [d for d in dirty.decisions if d[0] <= t]
    assert len(before_clean) == cut + 1 - config.warmup
    assert before_clean == before_dirty
    assert [tr for tr in clean.trades if tr.exit_time <= t] == [tr for tr in dirty.trades if tr.exit_time <= t]
    # the comparison is not vacuous: the brain acted before t, and the garbage does reach it after t
    assert any(d.action != Action.WAIT for _, d in before_clean)
    assert [d for d in clean.decisions if d[0] > t] != [d for d in dirty.decisions if d[0] > t]


def test_backtest_is_deterministic(eth_btc: Candles):
    first = run_backtest(eth_btc.head(900), BacktestConfig(rules=TRADING))
    second = run_backtest(eth_btc.head(900), BacktestConfig(rules=TRADING))
    assert first.decisions == second.decisions
    assert first.trades == second.trades
    assert np.array_equal(first.equity_curve, second.equity_curve)


# ---- fills, on hand-built candles with a scripted analyst ------------------------------------------
# The analyst below is bullish exactly once, at the first decision, with ATR 2, support 97 and
# resistance 110 around a price of 100: the rules brain then opens a long with its stop at
# 97 - 0.25 x ATR = 96.5 and its take-profit at 110, filled at the next (flat) candle's open. The candle
# after that decides what the fill simulation does.

START = 1_700_000_000_000 - 1_700_000_000_000 % FIVE_MIN
WARMUP = 5


def flat_then(next_candle: tuple[float, float, float, float]) -> Candles:
    """WARMUP + 2 flat candles at 100, then `next_candle` (open, high, low, close), then flat at its close."""
    rows = [(100.0, 100.5, 99.5, 100.0)] * (WARMUP + 2) + [next_candle] + [(next_candle[3],) * 4] * 3
    o, h, lo, c = (np.array(col) for col in zip(*rows, strict=True))
    ts = START + FIVE_MIN * np.arange(len(rows), dtype=np.int64)
    return Candles("TEST/USD", "5m", ts, o, h, lo, c, np.ones(len(rows)))


def per_candle(analyse):
    """A scripted analyst written as a function of the candles up to each decision, as the backtest's analyst."""

    class PerCandle:
        def __init__(self, symbol, series):
            self.symbol, self.series = symbol, series

        def at(self, t, headlines=(), positions=(), now_ms=None):
            views = {tf: s.upto(now_ms) for tf, s in self.series.items()}
            return analyse(self.symbol, views, headlines=headlines, positions=positions, now_ms=now_ms)

    return PerCandle


def bullish_once(symbol, candles, headlines=(), positions=(), now_ms=None):
    first_decision = START + (WARMUP + 1) * FIVE_MIN
    score = 0.9 if now_ms == first_decision else 0.0
    close = float(next(iter(candles.values())).close[-1])
    return [
        Insight(AgentName.TECHNICAL, symbol, score, 0.9, values={"close": close, "atr": 2.0, "regime_trend": 0.6}),
        Insight(
            AgentName.FIBONACCI,
            symbol,
            score,
            0.9,
            levels=(Level("support", 97.0), Level("resistance", 110.0)),
        ),
    ]


def fills_config(fee_bps: float = 0.0, slippage_bps: float = 0.0) -> BacktestConfig:
    # 1.5 R targets, so the 110 resistance (3.5 of risk, 10 of reward) is the target
    return BacktestConfig(timeframes=("5m",), warmup=WARMUP, fee_bps=fee_bps, slippage_bps=slippage_bps,
                          rules=RulesParams(min_reward_risk=1.5))


def test_candle_touching_both_stop_and_target_counts_as_stopped_out():
    result = run_backtest(flat_then((100.0, 111.0, 96.0, 105.0)), fills_config(), analysis=per_candle(bullish_once))
    (trade,) = result.trades
    assert trade.exit_reason == "stop" and trade.exit_price == pytest.approx(96.5)
    # the stop loses exactly the 1 % risk budget
    assert trade.pnl == pytest.approx(-100.0)
    assert result.strategy.total_return == pytest.approx(-0.01)


def test_take_profit_fills_at_the_target():
    result = run_backtest(flat_then((100.0, 111.0, 99.0, 109.0)), fills_config(), analysis=per_candle(bullish_once))
    (trade,) = result.trades
    assert trade.exit_reason == "take_profit" and trade.exit_price == pytest.approx(110.0)
    assert trade.pnl == pytest.approx(10 * 10_000 * 0.01 / 3.5)


def test_candle_opening_below_the_stop_fills_at_its_open():
    result = run_backtest(flat_then((95.0, 95.5, 94.0, 95.0)), fills_config(), analysis=per_candle(bullish_once))
    (trade,) = result.trades
    assert trade.exit_reason == "stop" and trade.exit_price == pytest.approx(95.0)


def test_fees_and_slippage_are_paid_on_entry_and_exit():
    fee, slip = 10 / 10_000, 5 / 10_000
    result = run_backtest(
        flat_then((100.0, 111.0, 99.0, 109.0)),
        fills_config(fee_bps=10, slippage_bps=5),
        analysis=per_candle(bullish_once),
    )
    (trade,) = result.trades
    entry, exit_ = 100.0 * (1 + slip), 110.0 * (1 - slip)
    assert trade.entry_price == pytest.approx(entry) and trade.exit_price == pytest.approx(exit_)
    size = 10_000 * 0.01 / (entry - 96.5)
    assert trade.size == pytest.approx(size)
    assert trade.fees == pytest.approx(size * (entry + exit_) * fee)
    assert trade.pnl == pytest.approx(size * (exit_ - entry) - trade.fees)
    assert result.equity_curve[-1] == pytest.approx(10_000 + trade.pnl)


def scripted(score: float):
    """An analyst that scores `score` once, at the first decision (as `bullish_once` does with 0.9)."""

    def analyse(symbol, candles, headlines=(), positions=(), now_ms=None):
        first_decision = START + (WARMUP + 1) * FIVE_MIN
        value = score if now_ms == first_decision else 0.0
        close = float(next(iter(candles.values())).close[-1])
        return [
            Insight(AgentName.TECHNICAL, symbol, value, 0.9,
                    values={"close": close, "atr": 2.0, "regime_trend": math.copysign(0.6, score)}),
            Insight(AgentName.FIBONACCI, symbol, value, 0.9,
                    levels=(Level("support", 90.0), Level("resistance", 103.0))),
        ]

    return analyse


def opening_at(open_: float) -> Candles:
    """The decision candle closes at 100; the next one, where its order fills, opens at `open_`."""
    candles = flat_then((100.0, 100.5, 99.5, 100.0))
    o, h, lo = candles.open.copy(), candles.high.copy(), candles.low.copy()
    o[WARMUP + 1], h[WARMUP + 1], lo[WARMUP + 1] = open_, max(open_, 100.5), min(open_, 99.5)
    return Candles(candles.symbol, "5m", candles.timestamp, o, h, lo, candles.close, candles.volume)


def test_an_order_fills_at_the_next_candles_open_not_at_the_close_that_decided_it():
    result = run_backtest(opening_at(101.0), fills_config(), analysis=per_candle(bullish_once))
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(101.0)
    assert trade.entry_time == START + (WARMUP + 1) * FIVE_MIN  # the open of the candle after the decision


def test_an_entry_whose_fill_gaps_past_its_stop_is_not_taken():
    result = run_backtest(opening_at(95.0), fills_config(), analysis=per_candle(bullish_once))
    assert result.trades == () and result.exposure == 0.0


def test_a_candle_opening_through_the_target_fills_at_its_better_open():
    result = run_backtest(flat_then((112.0, 113.0, 111.0, 112.0)), fills_config(), analysis=per_candle(bullish_once))
    (trade,) = result.trades
    assert trade.exit_reason == "take_profit" and trade.exit_price == pytest.approx(112.0)


def test_spot_markets_are_long_only_and_derivatives_may_short():
    spot = run_backtest(flat_then((100.0, 100.5, 99.5, 100.0)), fills_config(), analysis=per_candle(scripted(-0.9)))
    assert spot.trades == ()
    perpetual = flat_then((100.0, 100.5, 99.5, 100.0))
    perpetual = Candles("TEST/USD:USD", "5m", perpetual.timestamp, perpetual.open, perpetual.high,
                        perpetual.low, perpetual.close, perpetual.volume)
    short = run_backtest(perpetual, fills_config(), analysis=per_candle(scripted(-0.9)))
    assert [t.side.value for t in short.trades] == ["short"]


def test_drawdown_is_measured_at_the_candles_extremes_not_only_at_closes():
    result = run_backtest(flat_then((100.0, 111.0, 99.0, 109.0)), fills_config(), analysis=per_candle(bullish_once))
    (trade,) = result.trades
    # Entered at 100; the exit candle dips to 99 before the target: the equity's worst point.
    assert result.strategy.max_drawdown == pytest.approx(trade.size * 1.0 / 10_000, rel=1e-6)
    assert result.do_nothing.total_return == 0.0 and result.do_nothing.max_drawdown == 0.0


def test_fees_slippage_and_profit_factor_add_up_over_the_trades():
    slip = 5 / 10_000
    result = run_backtest(
        flat_then((100.0, 111.0, 99.0, 109.0)),
        fills_config(fee_bps=10, slippage_bps=5),
        analysis=per_candle(bullish_once),
    )
    (trade,) = result.trades
    assert result.fees == pytest.approx(trade.fees)
    assert result.slippage == pytest.approx(trade.size * (100.0 * slip + 110.0 * slip))
    assert result.profit_factor == math.inf  # one winning trade, no loss


def test_the_timeframes_default_from_the_files_own():
    assert default_timeframes("5m") == ("5m", "15m", "1h")
    assert default_timeframes("1h") == ("1h", "4h", "1d")
    assert default_timeframes("2h") == ("2h", "1d")


# ---- the command ----------------------------------------------------------------------------------


def test_quorum_backtest_prints_the_figures_next_to_buy_and_hold(capsys):
    from quorum.cli import main

    csv = DATA_DIR / "ohlcv" / "ETH_BTC-5m.csv"
    code = main(["backtest", "--data", str(csv), "--timeframes", "15m,1h,4h", "--warmup", "100", "--fee-bps", "7.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ETH/BTC" in out and "rules brain" in out and "buy & hold" in out
    for figure in ("total return", "CAGR", "max drawdown", "sharpe (ann.)", "sortino (ann.)", "exposure",
                   "win rate", "profit factor", "fees paid", "slippage paid", "trades", "do nothing"):
        assert figure in out
    assert "fees 7.5 bps" in out
    assert out.strip().splitlines()[-1].startswith("Verdict: ")


def test_quorum_backtest_takes_a_2h_file_as_it_is(tmp_path, capsys):
    from quorum.cli import main

    two_hours = resample(read_candles(DATA_DIR / "ohlcv" / "ETH_BTC-5m.csv"), "2h")
    csv = tmp_path / "ETH_BTC-2h.csv"
    rows = zip(two_hours.timestamp, two_hours.open, two_hours.high, two_hours.low, two_hours.close,
               two_hours.volume, strict=True)
    csv.write_text("timestamp,open,high,low,close,volume\n" + "".join(f"{t},{o},{h},{lo},{c},{v}\n"
                                                                       for t, o, h, lo, c, v in rows))
    assert main(["backtest", "--data", str(csv), "--warmup", "100"]) == 0
    out = capsys.readouterr().out
    assert "ETH/BTC 2h,1d" in out and "2h candles after 100 warmup" in out


def test_quorum_backtest_explains_an_impossible_setup_instead_of_crashing(capsys):
    from quorum.cli import main

    csv = DATA_DIR / "ohlcv" / "XRP_USDT_USDT-1h.csv"
    assert main(["backtest", "--data", str(csv), "--timeframes", "1h", "--warmup", "500"]) == 2
    assert "need more than warmup=500" in capsys.readouterr().err
