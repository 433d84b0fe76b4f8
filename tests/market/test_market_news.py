"""News headlines from RSS, Atom and CryptoPanic: one per story, dated in UTC, never from the future."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.fakes.news_feeds import ATOM_FEED, ENTITY_BOMB, RSS_FEED, NewsFeedsServer
from workers.agents.insight import Headline
from workers.market.news import NewsSource, dedupe, headlines_before, parse_cryptopanic, parse_feed


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def news_server() -> Iterator[NewsFeedsServer]:
    with NewsFeedsServer() as server:
        yield server


def news_source(server: NewsFeedsServer, *feeds: str, token: str | None = None) -> NewsSource:
    return NewsSource(
        feed_urls=[f"{server.origin}{path}" for path in feeds],
        cryptopanic_token=token,
        cryptopanic_base_url=f"{server.origin}/api/v1",
    )


def test_rss_items_become_headlines_dated_in_utc_milliseconds():
    headlines = parse_feed(RSS_FEED)

    assert [h.title for h in headlines] == [
        "Bitcoin tops $100,000 as ETF inflows surge",
        "Ether & Solana slide after exchange hack",
    ]  # the undated item is left out: it cannot be placed before or after a decision
    assert headlines[0].published_at == utc_ms("2024-12-10T12:30:00")  # 14:30 +0200
    assert headlines[1].published_at == utc_ms("2024-12-10T16:00:00")
    assert headlines[0].source == "Coin Wire"
    assert headlines[1].url == "https://coinwire.example/news/ether-solana-slide"


def test_atom_entries_become_headlines_with_html_titles_reduced_to_text():
    headlines = parse_feed(ATOM_FEED)

    assert headlines[0] == Headline(
        title="Regulators approve spot XRP fund",
        published_at=utc_ms("2024-12-10T17:45:00"),
        source="Ledger Daily",
        url="https://ledgerdaily.example/xrp-fund",
    )
    assert headlines[1].published_at == utc_ms("2024-12-10T13:05:00")  # no <published>: <updated> is used


def test_feed_declaring_entities_is_refused_instead_of_expanded():
    with pytest.raises(ValueError):
        parse_feed(ENTITY_BOMB)


def test_feed_with_a_plain_doctype_line_is_still_read():
    legacy = RSS_FEED.replace(
        b"<rss ", b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "rss-0.91.dtd">\n<rss ', 1
    )
    assert len(parse_feed(legacy)) == 2


def test_document_that_is_no_feed_is_rejected():
    with pytest.raises(ValueError, match="not an RSS"):
        parse_feed(b"<html><body>hello</body></html>")


def test_same_story_with_different_case_and_punctuation_is_kept_once_at_its_first_report():
    first = Headline("Bitcoin tops $100,000 as ETF inflows surge", utc_ms("2024-12-10T12:30:00"), "A")
    repeat = Headline("BITCOIN TOPS $100,000 AS ETF INFLOWS SURGE!", utc_ms("2024-12-10T13:05:00"), "B")
    other = Headline("Bitcoin tops $90,000", utc_ms("2024-12-09T10:00:00"), "C")

    assert dedupe([repeat, first, other]) == [other, first]


def test_same_link_with_tracking_parameters_is_one_story():
    a = Headline("Fed holds rates", 1_000, url="https://www.news.example/fed/?utm_source=x&id=7")
    b = Headline("Fed keeps rates unchanged", 2_000, url="https://news.example/fed?id=7&utm_medium=rss")
    c = Headline("Fed keeps rates unchanged in March", 3_000, url="https://news.example/fed?id=8")

    assert dedupe([b, a, c]) == [a, c]


def test_headlines_before_never_returns_news_published_after_the_decision():
    items = [Headline(f"story {t}", t) for t in (5_000, 1_000, 3_000, 3_001)]

    assert [h.published_at for h in headlines_before(items, 3_000)] == [1_000, 3_000]
    assert [h.published_at for h in headlines_before(items, 10_000, limit=2)] == [3_001, 5_000]
    assert headlines_before(items, 999) == []
    assert headlines_before(items, 10_000, limit=0) == []


async def test_feeds_and_cryptopanic_are_merged_deduplicated_and_dated(news_server: NewsFeedsServer):
    async with news_source(news_server, "/rss.xml", "/atom.xml", token=news_server.token) as source:
        headlines = await source.fetch(currencies=["btc", "eth"])

    assert [(h.title, h.published_at, h.source) for h in headlines] == [
        ("Bitcoin tops $100,000 as ETF inflows surge", utc_ms("2024-12-10T12:30:00"), "Coin Wire"),
        ("Ether & Solana slide after exchange hack", utc_ms("2024-12-10T16:00:00"), "Coin Wire"),
        ("Regulators approve spot XRP fund", utc_ms("2024-12-10T17:45:00"), "Ledger Daily"),
        ("Miners move 20,000 BTC to exchanges", utc_ms("2024-12-10T19:30:00"), "ChainBeat"),
    ]
    # What a decision at 17:00 UTC may read: nothing published later.
    before = headlines_before(headlines, utc_ms("2024-12-10T17:00:00"))
    assert [h.title for h in before] == [headlines[0].title, headlines[1].title]


async def test_cryptopanic_is_asked_for_public_news_on_the_bots_currencies(news_server: NewsFeedsServer):
    news_server.requests.clear()
    async with news_source(news_server, token=news_server.token) as source:
        headlines = await source.fetch(currencies=["btc", "eth"])

    assert [h.title for h in headlines] == [
        "Ether & Solana slide after exchange hack",
        "Miners move 20,000 BTC to exchanges",
    ]
    path, params = news_server.requests[-1]
    assert path == "/api/v1/posts/"
    assert params["currencies"] == "BTC,ETH"
    assert params["auth_token"] == news_server.token
    assert params["public"] == "true"


async def test_parsed_cryptopanic_posts_carry_their_original_source():
    page = b'{"results": [{"title": "X", "published_at": "2024-01-01T00:00:00Z", "url": "u", "source": null}]}'
    assert parse_cryptopanic(page) == [Headline("X", utc_ms("2024-01-01T00:00:00"), "CryptoPanic", "u")]


async def test_a_failing_or_hostile_feed_does_not_lose_the_others(news_server: NewsFeedsServer, caplog):
    caplog.set_level(logging.WARNING, logger="workers.market.news")
    async with news_source(news_server, "/broken.xml", "/bomb.xml", "/missing.xml", "/atom.xml") as source:
        headlines = await source.fetch()

    assert [h.source for h in headlines] == ["Ledger Daily", "Ledger Daily"]
    failed = sorted(r.feed.rsplit("/", 1)[-1] for r in caplog.records if r.getMessage() == "news feed failed")
    assert failed == ["bomb.xml", "broken.xml", "missing.xml"]


async def test_cryptopanic_token_never_reaches_the_logs(news_server: NewsFeedsServer, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "do-not-log-this-token"
    async with news_source(news_server, token=secret) as source:  # wrong token: the server answers 401
        assert await source.fetch(currencies=["BTC"]) == []

    assert any("cryptopanic failed" in r.getMessage() for r in caplog.records)
    logged = caplog.text + " ".join(str(getattr(r, "error", "")) for r in caplog.records)
    assert secret not in logged
    assert "auth_token=***" in logged
