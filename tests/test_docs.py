"""The interactive docs load everything from the API itself: they work on a machine without internet."""

from __future__ import annotations

import re

import pytest
from litestar.testing import AsyncTestClient


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_docs_page_loads_its_assets_from_the_api_not_a_cdn(client: AsyncTestClient, path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "swagger-ui" in html
    assert not re.search(r"(src|href)=['\"]https?://", html), "the page must not fetch anything from elsewhere"
    assets = re.findall(r"(?:src|href)=['\"](/schema/assets/[^'\"]+)['\"]", html)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css",
                                                     "swagger-ui-standalone-preset.js"}
    for asset in assets:
        response = await client.get(asset)  # public, like the schema itself: no token
        assert response.status_code == 200, asset
        assert len(response.content) > 1000 or asset.endswith(".png")
