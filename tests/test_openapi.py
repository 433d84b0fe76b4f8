"""openapi.json is exported from the code; this fails when the checked-in file drifts from it."""

from __future__ import annotations

from api.openapi_export import render_openapi
from tests.conftest import REPO_ROOT


def test_checked_in_openapi_matches_the_code() -> None:
    checked_in = (REPO_ROOT / "openapi.json").read_text()
    assert checked_in == render_openapi(), "openapi.json is stale: run `uv run quorum openapi --write`"
