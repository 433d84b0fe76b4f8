"""A local news server: an RSS 2.0 feed, an Atom feed and CryptoPanic's /api/v1/posts/ endpoint.

The sample documents follow the real formats (RSS 2.0 with RFC 822 dates, Atom with RFC 3339 dates,
CryptoPanic's JSON page of posts); some stories deliberately appear in more than one of them.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.local_server import LocalHttpServer

RSS_FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>Coin Wire</title>
    <link>https://coinwire.example/</link>
    <description>Crypto market news</description>
    <item>
      <title>Bitcoin tops $100,000 as ETF inflows surge</title>
      <link>https://coinwire.example/news/bitcoin-tops-100k?utm_source=rss&amp;utm_medium=feed</link>
      <pubDate>Tue, 10 Dec 2024 14:30:00 +0200</pubDate>
      <guid isPermaLink="false">cw-1001</guid>
    </item>
    <item>
      <title><![CDATA[Ether &amp; Solana slide after exchange hack]]></title>
      <link>https://coinwire.example/news/ether-solana-slide</link>
      <pubDate>Tue, 10 Dec 2024 16:00:00 GMT</pubDate>
    </item>
    <item>
      <title>Undated rumour with no publication time</title>
      <link>https://coinwire.example/news/rumour</link>
    </item>
  </channel>
</rss>
"""

ATOM_FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Ledger Daily</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2024-12-10T18:00:00Z</updated>
  <entry>
    <title type="html">Regulators approve &lt;b&gt;spot XRP&lt;/b&gt; fund</title>
    <link rel="alternate" href="https://ledgerdaily.example/xrp-fund"/>
    <id>urn:ld:1</id>
    <published>2024-12-10T17:45:00+00:00</published>
    <updated>2024-12-10T18:00:00Z</updated>
  </entry>
  <entry>
    <title>BITCOIN TOPS $100,000 AS ETF INFLOWS SURGE!</title>
    <link href="https://ledgerdaily.example/btc-100k"/>
    <id>urn:ld:2</id>
    <updated>2024-12-10T13:05:00Z</updated>
  </entry>
</feed>
"""

CRYPTOPANIC_POSTS = {
    "count": 2,
    "next": None,
    "previous": None,
    "results": [
        {
            "kind": "news",
            "domain": "coinwire.example",
            "source": {"title": "Coin Wire", "region": "en", "domain": "coinwire.example", "path": None},
            "title": "Ether & Solana slide after exchange hack",
            "published_at": "2024-12-10T16:02:11Z",
            "slug": "Ether-Solana-slide-after-exchange-hack",
            "id": 20001,
            "url": "https://cryptopanic.com/news/20001/Ether-Solana-slide-after-exchange-hack",
            "created_at": "2024-12-10T16:02:11Z",
            "currencies": [{"code": "ETH", "title": "Ethereum", "slug": "ethereum"}],
        },
        {
            "kind": "news",
            "domain": "chainbeat.example",
            "source": {"title": "ChainBeat", "region": "en", "domain": "chainbeat.example", "path": None},
            "title": "Miners move 20,000 BTC to exchanges",
            "published_at": "2024-12-10T19:30:00Z",
            "slug": "Miners-move-20000-BTC-to-exchanges",
            "id": 20002,
            "url": "https://cryptopanic.com/news/20002/Miners-move-20000-BTC-to-exchanges",
            "created_at": "2024-12-10T19:30:00Z",
            "currencies": [{"code": "BTC", "title": "Bitcoin", "slug": "bitcoin"}],
        },
    ],
}

# An entity-expansion bomb ("billion laughs"): a safe parser must refuse it, not expand it.
ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rss version="2.0"><channel><title>bomb</title>
<item><title>&lol3;</title><pubDate>Tue, 10 Dec 2024 14:30:00 GMT</pubDate></item>
</channel></rss>
"""


class NewsFeedsServer(LocalHttpServer):
    """Serves `/rss.xml`, `/atom.xml`, `/bomb.xml`, `/broken.xml` (HTTP 500) and `/api/v1/posts/`.

    The CryptoPanic endpoint requires `auth_token` to equal `token`, like the real one (401 otherwise).
    """

    def __init__(self, token: str = "test-cryptopanic-token") -> None:  # noqa: S107 (a test token)
        self.token = token
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.cryptopanic_status = 200
        self._lock = threading.Lock()
        super().__init__()

    def _respond(self, path: str, params: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            self.requests.append((path, params))
        if path == "/rss.xml":
            return 200, "application/rss+xml", RSS_FEED
        if path == "/atom.xml":
            return 200, "application/atom+xml", ATOM_FEED
        if path == "/bomb.xml":
            return 200, "application/rss+xml", ENTITY_BOMB
        if path == "/broken.xml":
            return 500, "text/plain", b"upstream exploded"
        if path == "/api/v1/posts/":
            if params.get("auth_token") != self.token:
                return 401, "application/json", b'{"status": "Incomplete", "info": "Token not found"}'
            if self.cryptopanic_status != 200:
                return self.cryptopanic_status, "application/json", b'{"status": "Error"}'
            return 200, "application/json", json.dumps(CRYPTOPANIC_POSTS).encode()
        return 404, "text/plain", b"not found"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, content_type, body = fake._respond(url.path, params)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        return Handler
