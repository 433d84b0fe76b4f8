"""The news-sentiment agent: headline scores a trader would agree with, and an Insight without look-ahead."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quorum.settings import data_dir
from workers.agents.insight import AgentName, Headline
from workers.agents.sentiment import (
    HALF_LIFE_MS,
    MODEL,
    fit_sentiment_model,
    score_headline,
    sentiment_insight,
)

DATA_DIR = data_dir()
HOUR = 3_600_000
NOW = 1_700_000_000_000


@pytest.fixture(scope="module")
def dev_headlines() -> list[dict]:
    path = DATA_DIR / "news" / "headlines_dev.json"
    assert path.is_file(), f"SemEval dev headlines not found at {path}; set QUORUM_DATA_DIR"
    return json.loads(path.read_text(encoding="utf-8"))


def pearson_and_sign_accuracy(predicted: list[float], gold: list[float]) -> tuple[float, float]:
    p, g = np.asarray(predicted), np.asarray(gold)
    signed = np.abs(g) >= 0.1
    return float(np.corrcoef(p, g)[0, 1]), float((np.sign(p[signed]) == np.sign(g[signed])).mean())


@pytest.mark.parametrize(
    "title",
    [
        "Company beats profit estimates and raises full-year guidance",
        "Shares surge to record high after strong quarterly results",
        "Bitcoin rallies as SEC approves spot ETF",
        "Analysts upgrade Ethereum outlook as network adoption grows",
        "Solana price jumps 20% after ETF approval",
        "Broker upgrades stock to buy",
        "Insurer narrows losses",
        "Airline cuts costs",
        "SEC drops lawsuit against Ripple",
        "Court dismisses case against Coinbase",
        "Crypto lender avoids bankruptcy after rescue deal",
        "Solana network recovers after outage",
        "Regulator lifts ban on crypto trading",
        "Bitcoin breaks above $70,000",
        "Spot bitcoin ETF inflows surge",
    ],
)
def test_good_news_scores_positive(title: str):
    assert score_headline(title) > 0.1


@pytest.mark.parametrize(
    "title",
    [
        "Shares plunge after profit warning",
        "Crypto exchange hacked, $200 million in bitcoin stolen",
        "Binance to delist token amid SEC lawsuit",
        "Retailer files for bankruptcy protection",
        "Bank misses earnings estimates and cuts dividend",
        "DeFi protocol drained in $50m exploit",
        "Ethereum slumps as liquidations mount",
        "Broker downgrades stock to sell",
        "Insurer losses widen",
        "SEC sues Coinbase over unregistered securities",
        "Exchange halts withdrawals amid liquidity crunch",
        "Stablecoin loses its dollar peg",
        "Bitcoin breaks below $20,000",
        "Shares drop as lawsuit looms",
        "Bitcoin ETF sees record outflows",
        "Ethereum falls after Fed signals more rate hikes",
    ],
)
def test_bad_news_scores_negative(title: str):
    assert score_headline(title) < -0.1


@pytest.mark.parametrize(
    ("plain", "negated"),
    [
        ("Company expected to beat estimates", "Company not expected to beat estimates"),
        ("Miner beats forecasts", "Miner fails to beat forecasts"),
        ("Bitcoin falls", "Bitcoin does not fall"),
    ],
)
def test_negation_flips_the_sign(plain: str, negated: str):
    assert math.copysign(1, score_headline(plain)) != math.copysign(1, score_headline(negated))


def test_the_same_move_reads_opposite_on_profits_and_on_losses():
    assert score_headline("Profit falls at chipmaker") < 0 < score_headline("Losses fall at chipmaker")


@pytest.mark.parametrize(
    "title",
    ["", "   ", "!!!", "\U0001f680\U0001f680\U0001f680", "1234 5678", "not not not no never", "surge " * 2000],
)
def test_odd_headlines_still_score_inside_the_range(title: str):
    score = score_headline(title)
    assert math.isfinite(score) and -1.0 <= score <= 1.0


def test_every_dev_headline_scores_inside_the_range(dev_headlines: list[dict]):
    scores = [score_headline(row["title"]) for row in dev_headlines]
    assert all(math.isfinite(s) and -1.0 <= s <= 1.0 for s in scores)


def test_cross_validated_quality_on_dev_headlines_meets_the_targets(dev_headlines: list[dict]):
    """5-fold CV: every headline is scored by a ridge model that never saw it (r >= 0.6, sign >= 0.75).

    Folds split distinct titles, since SemEval repeats a headline once per company it names.
    """
    titles = sorted({row["title"] for row in dev_headlines})
    order = np.random.default_rng(0).permutation(len(titles))
    predicted = [0.0] * len(dev_headlines)
    for fold in np.array_split(order, 5):
        held_titles = {titles[k] for k in fold}
        train = [row for row in dev_headlines if row["title"] not in held_titles]
        model = fit_sentiment_model(
            [r["title"] for r in train],
            [r["sentiment"] for r in train],
            excluded_terms=[r["company"] for r in train],
        )
        for i, row in enumerate(dev_headlines):
            if row["title"] in held_titles:
                predicted[i] = model.predict(row["title"])
    r, sign_accuracy = pearson_and_sign_accuracy(predicted, [row["sentiment"] for row in dev_headlines])
    assert r >= 0.6
    assert sign_accuracy >= 0.75


def test_shipped_weights_are_what_the_training_script_produces(dev_headlines: list[dict]):
    retrained = fit_sentiment_model(
        [r["title"] for r in dev_headlines],
        [r["sentiment"] for r in dev_headlines],
        excluded_terms=[r["company"] for r in dev_headlines],
    )
    assert retrained.ngrams.keys() == MODEL.ngrams.keys()
    assert max(abs(retrained.ngrams[k] - MODEL.ngrams[k]) for k in MODEL.ngrams) < 1e-5
    assert retrained.dense == pytest.approx(MODEL.dense, abs=1e-5)
    r, sign_accuracy = pearson_and_sign_accuracy(
        [score_headline(row["title"]) for row in dev_headlines], [row["sentiment"] for row in dev_headlines]
    )
    assert r >= 0.6 and sign_accuracy >= 0.75


# --- sentiment_insight


def test_no_headlines_gives_a_silent_insight():
    insight = sentiment_insight("BTC/USDT", [], NOW)
    assert insight.agent is AgentName.SENTIMENT
    assert (insight.score, insight.confidence) == (0.0, 0.0)


def test_headlines_published_after_now_are_ignored():
    past = [Headline("Bitcoin surges as ETF inflows jump", NOW - HOUR)]
    future = [Headline("Bitcoin crashes after exchange hack", NOW + 1), Headline("Ether plunges", NOW + HOUR)]
    assert sentiment_insight("BTC/USDT", past + future, NOW) == sentiment_insight("BTC/USDT", past, NOW)
    only_future = sentiment_insight("BTC/USDT", future, NOW)
    assert (only_future.score, only_future.confidence) == (0.0, 0.0)


def test_newer_headline_outweighs_an_older_one_of_equal_strength():
    good, bad = "Bitcoin surges to record high", "Bitcoin plunges to record low"
    fresh_good = sentiment_insight("BTC/USDT", [Headline(good, NOW - HOUR), Headline(bad, NOW - 12 * HOUR)], NOW)
    fresh_bad = sentiment_insight("BTC/USDT", [Headline(good, NOW - 12 * HOUR), Headline(bad, NOW - HOUR)], NOW)
    assert fresh_good.score > 0 > fresh_bad.score


def test_recency_weight_halves_every_half_life():
    good, bad = "Bitcoin surges to record high", "Bitcoin plunges after exchange hack"
    s_good, s_bad = score_headline(good), score_headline(bad)
    insight = sentiment_insight("BTC/USDT", [Headline(good, NOW), Headline(bad, NOW - HALF_LIFE_MS)], NOW)
    assert insight.score == pytest.approx((1.0 * s_good + 0.5 * s_bad) / 1.5)


def test_headlines_naming_the_asset_count_more_than_general_news():
    about_btc = Headline("Bitcoin surges as ETF inflows jump", NOW - HOUR)
    general = Headline("Stocks plunge as recession fears grow", NOW - HOUR)
    for_btc = sentiment_insight("BTC/USDT", [about_btc, general], NOW)
    for_sol = sentiment_insight("SOL/USDT", [about_btc, general], NOW)
    assert for_btc.score > for_sol.score


def test_confidence_grows_with_the_number_of_agreeing_headlines():
    titles = [
        "Bitcoin surges to record high",
        "Ether rallies as ETF approval nears",
        "Crypto funds see record inflows",
        "Analysts upgrade bitcoin outlook",
        "Bitcoin miners report strong profit growth",
    ]
    confidences = [
        sentiment_insight("BTC/USDT", [Headline(t, NOW - HOUR) for t in titles[:n]], NOW).confidence
        for n in range(1, len(titles) + 1)
    ]
    assert confidences == sorted(confidences) and confidences[-1] > confidences[0]


def test_conflicting_headlines_give_less_confidence_than_agreeing_ones():
    agreeing = ["Bitcoin surges to record high", "Analysts upgrade bitcoin outlook"]
    conflicting = ["Bitcoin surges to record high", "Bitcoin plunges after exchange hack"]
    at = NOW - HOUR
    agree = sentiment_insight("BTC/USDT", [Headline(t, at) for t in agreeing], NOW)
    conflict = sentiment_insight("BTC/USDT", [Headline(t, at) for t in conflicting], NOW)
    assert conflict.confidence < agree.confidence


def test_the_same_story_from_two_feeds_counts_once():
    one = [Headline("Bitcoin surges to record high", NOW - HOUR, source="a")]
    two = [*one, Headline("Bitcoin  surges to record HIGH", NOW - 2 * HOUR, source="b")]
    assert sentiment_insight("BTC/USDT", two, NOW).confidence == sentiment_insight("BTC/USDT", one, NOW).confidence


def test_reasons_quote_the_most_influential_headline_shortened():
    long_title = "Bitcoin plunges after the largest exchange hack in history " + "and more details " * 10
    insight = sentiment_insight(
        "BTC/USDT",
        [Headline(long_title, NOW - HOUR), Headline("Stocks little changed", NOW - 20 * HOUR)],
        NOW,
    )
    quotes = insight.reasons[1:]
    assert "Bitcoin plunges after the largest exchange hack" in quotes[0]
    assert all(len(q) < 120 for q in insight.reasons)


def test_insight_score_and_confidence_stay_in_range_for_any_mix_of_headlines(dev_headlines: list[dict]):
    rng = np.random.default_rng(7)
    for _ in range(200):
        picked = rng.choice(len(dev_headlines), size=int(rng.integers(1, 31)), replace=False)
        headlines = [
            Headline(dev_headlines[i]["title"], NOW - int(rng.integers(-10 * HOUR, 200 * HOUR))) for i in picked
        ]
        insight = sentiment_insight(str(rng.choice(["BTC/USDT", "ETHUSDT", "BP"])), headlines, NOW)
        assert math.isfinite(insight.score) and -1.0 <= insight.score <= 1.0
        assert math.isfinite(insight.confidence) and 0.0 <= insight.confidence <= 1.0
