"""Point a ccxt client's API URLs at another origin (tests use it to reach local fake exchanges)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def with_api_origin(api: Any, origin: str) -> Any:
    """`urls['api']` with every URL's scheme and host replaced by `origin`'s; paths and queries kept."""
    if isinstance(api, dict):
        return {name: with_api_origin(url, origin) for name, url in api.items()}
    if isinstance(api, str):
        scheme, netloc, *_ = urlsplit(origin)
        _, _, path, query, fragment = urlsplit(api)
        return urlunsplit((scheme, netloc, path, query, fragment))
    return api
