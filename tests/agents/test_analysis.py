"""analyse_symbol: every agent on real candles, finite readings in range, positions and sentiment wired in."""

from __future__ import annotations

import math

import pytest

from workers.agents.analysis import analyse_symbol
from workers.agents.insight import AgentName, Headline, Insight, OpenPosition, PositionSide
from workers.market.candles import TIMEFRAME_MS
from workers.market.resample import resample


def assert_finite_and_in_range(insight: Insight) -> None:
    assert -1.0 <= insight.score <= 1.0, insight
    assert 0.0 <= insight.confidence <= 1.0, insight
    assert all(math.isfinite(v) for v in insight.values.values()), insight.values
    assert all(math.isfinite(lv.price) for lv in insight.levels), insight.levels


def agents_of(insights: list[Insight]) -> list[AgentName]:
    return [i.agent for i in insights]


@pytest.mark.parametrize("name", ["ETH_BTC-5m", "ADA_BTC-5m", "XRP_USDT_USDT-1h"])
def test_every_agent_reads_real_candles_with_finite_scores_in_range(series, name):
    trading = series(name)
    higher = ["15m", "1h", "4h"] if trading.timeframe == "5m" else ["4h"]
    candles = {trading.timeframe: trading, **{tf: resample(trading, tf) for tf in higher}}
    insights = analyse_symbol(trading.symbol, candles)
    agents = agents_of(insights)
    assert agents == [AgentName.TECHNICAL, AgentName.FIBONACCI, AgentName.GANN, AgentName.SENTIMENT]
    for insight in insights:
        assert insight.symbol == trading.symbol
        assert_finite_and_in_range(insight)


def test_walking_forward_through_history_every_reading_stays_finite(eth_timeframes):
    five = eth_timeframes["5m"]
    for end in range(300, len(five), 450):
        now = int(five.timestamp[end - 1]) + TIMEFRAME_MS["5m"]
        visible = {tf: c.upto(now) for tf, c in eth_timeframes.items()}
        for insight in analyse_symbol("ETH/BTC", visible, now_ms=now):
            assert_finite_and_in_range(insight)


def test_first_timeframe_is_the_trading_timeframe(eth_timeframes):
    reordered = {"1h": eth_timeframes["1h"], "5m": eth_timeframes["5m"]}
    insights = analyse_symbol("ETH/BTC", reordered)
    for insight in insights[:3]:
        assert insight.values["close"] == eth_timeframes["1h"].close[-1]


def test_open_position_adds_the_positions_agent_with_its_stops(eth_timeframes):
    five = eth_timeframes["5m"]
    entry_bar = len(five) - 100
    position = OpenPosition(
        "ETH/BTC",
        PositionSide.LONG,
        entry_price=float(five.close[entry_bar]),
        amount=2.0,
        opened_at=int(five.timestamp[entry_bar]),
        stop_loss=float(five.close[entry_bar]) * 0.97,
    )
    other = OpenPosition("ADA/BTC", PositionSide.SHORT, 5e-5, 100.0, int(five.timestamp[entry_bar]))
    insights = analyse_symbol("ETH/BTC", eth_timeframes, positions=[position, other])
    managed = [i for i in insights if i.agent is AgentName.POSITIONS]
    assert len(managed) == 1 and managed[0].symbol == "ETH/BTC"
    levels = {lv.name for lv in managed[0].levels}
    assert {"trailing_stop", "break_even", "stop_loss"} <= levels
    assert managed[0].values["bars_held"] == 100
    assert managed[0].values["best_price"] >= five.high[entry_bar:].max()
    assert_finite_and_in_range(managed[0])


def test_headlines_reach_the_sentiment_agent(eth_timeframes):
    now = int(eth_timeframes["5m"].timestamp[-1]) + TIMEFRAME_MS["5m"]
    news = [Headline("Ethereum rallies as upgrade ships on time", published_at=now - 600_000)]
    insights = analyse_symbol("ETH/BTC", eth_timeframes, headlines=news, now_ms=now)
    sentiment = [i for i in insights if i.agent is AgentName.SENTIMENT]
    assert len(sentiment) == 1
    assert sentiment[0].confidence > 0  # it read the fresh headline
    assert_finite_and_in_range(sentiment[0])


def test_few_candles_still_give_every_agent_a_finite_reading(series):
    xrp = series("XRP_USDT_USDT-1h")
    for count in (0, 1, 10, 40):
        insights = analyse_symbol("XRP/USDT:USDT", {"1h": xrp.head(count)})
        assert agents_of(insights)[:3] == [AgentName.TECHNICAL, AgentName.FIBONACCI, AgentName.GANN]
        for insight in insights:
            assert_finite_and_in_range(insight)
