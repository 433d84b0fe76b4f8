"""Property: no request body, however broken, makes any JSON route answer a 5xx.

Routes are enumerated from the application itself, so a new route is fuzzed without editing this file.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.testing import TestClient

from quorum.settings import Settings
from tests.conftest import PASSWORD, unique_email

_PATH_PARAM = re.compile(r"\{[^}]+\}")


def json_routes(app: Litestar) -> list[tuple[str, str, Any]]:
    """(method, path with its parameters filled, body type) of every route that reads a JSON body."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler):
                continue
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None:
                continue
            path = _PATH_PARAM.sub(str(uuid.uuid4()), route.path)
            for method in sorted(handler.http_methods):
                found.append((method, path, data.annotation))
    return found


def wire_names(body_type: Any) -> list[str]:
    try:
        return [f.encode_name for f in msgspec.structs.fields(body_type)]
    except TypeError:
        return []


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def bodies(draw: st.DrawFn, body_type: Any) -> bytes:
    """Raw bytes, arbitrary JSON, deep nesting, and objects with the type's own field names and wrong values."""
    kind = draw(st.sampled_from(["bytes", "json", "deep", "fields"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=3000))
        opener = draw(st.sampled_from([b"[", b'{"a":']))
        closer = b"]" if opener == b"[" else b"}"
        return opener * depth + draw(st.sampled_from([b"1", b""])) + closer * depth
    names = wire_names(body_type) or ["x"]
    document = draw(st.dictionaries(st.sampled_from(names), JSON_VALUES, max_size=len(names)))
    encoded = json.dumps(document).encode()
    if draw(st.booleans()):  # an invalid byte inside an otherwise plausible body
        cut = draw(st.integers(min_value=0, max_value=len(encoded)))
        encoded = encoded[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + encoded[cut:]
    return encoded


@pytest.fixture(scope="module")
def fuzz_client(settings: Settings) -> Iterator[TestClient[Litestar]]:
    """A synchronous client on its own application instance (hypothesis drives plain functions)."""
    from api.app import create_app

    with TestClient(app=create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def fuzz_headers(fuzz_client: TestClient[Litestar]) -> dict[str, str]:
    response = fuzz_client.post("/v1/auth/register", json={"email": unique_email("fuzz"), "password": PASSWORD})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}", "content-type": "application/json"}


def test_the_fuzzer_sees_the_json_routes(fuzz_client: TestClient[Litestar]) -> None:
    paths = {path for _, path, _ in json_routes(fuzz_client.app)}
    assert "/v1/auth/login" in paths and "/v1/auth/register" in paths and "/v1/bots" in paths
    assert len(paths) >= 10


@hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])
@given(data=st.data())
def test_no_body_makes_a_json_route_answer_5xx(fuzz_client: TestClient[Litestar], fuzz_headers: dict[str, str],
                                               data: st.DataObject) -> None:
    method, path, body_type = data.draw(st.sampled_from(json_routes(fuzz_client.app)), label="route")
    body = data.draw(bodies(body_type), label="body")
    response = fuzz_client.request(method, path, content=body, headers=fuzz_headers)
    assert response.status_code < 500, (method, path, body, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
