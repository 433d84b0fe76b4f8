"""Crypto news headlines from RSS 2.0 / Atom feeds and the CryptoPanic API, deduplicated and dated.

Parsing is pure (bytes in, `Headline`s out); `NewsSource` does the HTTP with one httpx client.
`headlines_before` is the only way a decision should read news: it drops anything published after
the decision time, so backtests cannot peek at the future.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree.ElementTree import Element  # noqa: S405 (type only; parsing goes through defusedxml)

import defusedxml.ElementTree as SafeET
import httpx
import msgspec

from workers.agents.insight import Headline

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
CRYPTOPANIC_BASE_URL = "https://cryptopanic.com/api/v1"
_TOKEN_IN_URL = re.compile(r"(auth_token=)[^&\s\"']+")


class _RedactTokens(logging.Filter):
    """httpx logs every request URL at INFO; the CryptoPanic token travels in the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(str(a)) if "auth_token=" in str(a) else a for a in record.args)
        if isinstance(record.msg, str) and "auth_token=" in record.msg:
            record.msg = _redact(record.msg)
        return True


logging.getLogger("httpx").addFilter(_RedactTokens())


def _redact(text: str) -> str:
    return _TOKEN_IN_URL.sub(r"\1***", text)


# --- parsing ----------------------------------------------------------------------------------------


def parse_feed(document: bytes | str, fallback_source: str = "") -> list[Headline]:
    """Headlines of an RSS 2.0 or Atom document; items without a title or a parseable date are skipped.

    `source` is the feed's own title, or `fallback_source` when it has none.

    Entity declarations and external references are refused (defusedxml), so a hostile feed can
    neither expand nor fetch; a plain DOCTYPE line, as old RSS feeds carry, is allowed.
    """
    root = SafeET.fromstring(document)
    if root.tag == f"{ATOM}feed":
        return _parse_atom(root, _plain(_text(root.find(f"{ATOM}title"))) or fallback_source)
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ValueError(f"not an RSS 2.0 or Atom feed (root element {root.tag!r})")
    source = _plain(_text(channel.find("title"))) or fallback_source
    headlines = []
    for item in channel.iterfind("item"):
        title = _plain(_text(item.find("title")))
        published = _rfc822_ms(_text(item.find("pubDate")))
        if title and published is not None:
            url = _text(item.find("link")) or _permalink_guid(item)
            headlines.append(Headline(title=title, published_at=published, source=source, url=url))
    return headlines


def _parse_atom(feed: Element, source: str) -> list[Headline]:
    headlines = []
    for entry in feed.iterfind(f"{ATOM}entry"):
        title = _plain(_text(entry.find(f"{ATOM}title")))
        published = _iso_ms(_text(entry.find(f"{ATOM}published")) or _text(entry.find(f"{ATOM}updated")))
        if title and published is not None:
            headlines.append(Headline(title=title, published_at=published, source=source, url=_atom_link(entry)))
    return headlines


class _CryptoPanicSource(msgspec.Struct):
    title: str = ""
    domain: str = ""


class _CryptoPanicPost(msgspec.Struct):
    title: str = ""
    published_at: str = ""
    url: str = ""
    source: _CryptoPanicSource | None = None


class _CryptoPanicPage(msgspec.Struct):
    results: list[_CryptoPanicPost] = []


def parse_cryptopanic(document: bytes | str) -> list[Headline]:
    """Headlines of one CryptoPanic /posts/ response page."""
    page = msgspec.json.decode(document, type=_CryptoPanicPage)
    headlines = []
    for post in page.results:
        title = _plain(post.title)
        published = _iso_ms(post.published_at)
        if title and published is not None:
            source = (post.source.title or post.source.domain) if post.source else "CryptoPanic"
            headlines.append(Headline(title=title, published_at=published, source=source, url=post.url))
    return headlines


# --- deduplication and look-ahead -------------------------------------------------------------------


def dedupe(items: Iterable[Headline]) -> list[Headline]:
    """One headline per story, oldest first: the same normalised title or URL counts as the same story.

    The earliest report is kept, so a story re-published later does not look like fresh news.
    """
    seen: set[str] = set()
    unique = []
    for item in sorted(items, key=lambda h: h.published_at):
        keys = {"t:" + normalise_title(item.title)}
        if item.url:
            keys.add("u:" + normalise_url(item.url))
        if keys.isdisjoint(seen):
            unique.append(item)
        seen |= keys
    return unique


def headlines_before(items: Iterable[Headline], decision_ms: int, limit: int | None = None) -> list[Headline]:
    """The headlines published at or before `decision_ms`, oldest first (the last `limit` if given)."""
    visible = sorted((h for h in items if h.published_at <= decision_ms), key=lambda h: h.published_at)
    return visible if limit is None else visible[-limit:] if limit > 0 else []


def normalise_title(title: str) -> str:
    folded = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", folded).split())


def normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query) if not k.lower().startswith("utm_")))
    return urlunsplit(("", host, parts.path.rstrip("/"), query, ""))


# --- fetching ---------------------------------------------------------------------------------------


class NewsSource:
    """Fetches configured feeds and CryptoPanic concurrently; a failing feed is logged and skipped."""

    def __init__(
        self,
        *,
        feed_urls: Sequence[str] = (),
        cryptopanic_token: str | None = None,
        cryptopanic_base_url: str = CRYPTOPANIC_BASE_URL,
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._feed_urls = list(feed_urls)
        self._cryptopanic_token = cryptopanic_token
        self._cryptopanic_base_url = cryptopanic_base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=True, headers={"User-Agent": "Quorum news reader"}
        )

    async def fetch(self, currencies: Sequence[str] = ()) -> list[Headline]:
        """Every headline currently offered, deduplicated, oldest first; CryptoPanic filtered by `currencies`."""
        jobs = [self._fetch_feed(url) for url in self._feed_urls]
        if self._cryptopanic_token:
            jobs.append(self._fetch_cryptopanic(currencies))
        batches = await asyncio.gather(*jobs)
        return dedupe(h for batch in batches for h in batch)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> NewsSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _fetch_feed(self, url: str) -> list[Headline]:
        try:
            response = await self._client.get(url)
            response.raise_for_status()
            return parse_feed(response.content, fallback_source=urlsplit(url).netloc)
        except (httpx.HTTPError, SafeET.ParseError, ValueError) as exc:
            log.warning("news feed failed", extra={"feed": url, "error": f"{type(exc).__name__}: {exc}"})
            return []

    async def _fetch_cryptopanic(self, currencies: Sequence[str]) -> list[Headline]:
        params = {"auth_token": self._cryptopanic_token or "", "public": "true", "kind": "news"}
        if currencies:
            params["currencies"] = ",".join(c.upper() for c in currencies)
        try:
            response = await self._client.get(f"{self._cryptopanic_base_url}/posts/", params=params)
            response.raise_for_status()
            return parse_cryptopanic(response.content)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            # httpx puts the request URL, token included, into its error messages.
            error = _redact(f"{type(exc).__name__}: {exc}")
            log.warning("cryptopanic failed", extra={"error": error})
            return []


# --- small helpers ----------------------------------------------------------------------------------


def _text(element: Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def _plain(text: str) -> str:
    """Titles sometimes carry HTML (Atom type="html", escaped RSS): keep the words only."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", text)).split())


def _permalink_guid(item: Element) -> str:
    guid = item.find("guid")
    if guid is None or guid.get("isPermaLink", "true").lower() == "false":
        return ""
    return _text(guid)


def _atom_link(entry: Element) -> str:
    links = entry.findall(f"{ATOM}link")
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href", "")
    return links[0].get("href", "") if links else ""


def _rfc822_ms(value: str) -> int | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _utc_ms(moment)


def _iso_ms(value: str) -> int | None:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return _utc_ms(moment)


def _utc_ms(moment: datetime) -> int:
    # A date without a zone is taken as UTC: feeds that omit it are usually UTC servers.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
