"""openapi.json is exported from the code; this fails when the checked-in file drifts from it."""

from __future__ import annotations

from api.openapi_export import render_openapi
from tests.conftest import REPO_ROOT


def test_checked_in_openapi_matches_the_code() -> None:
    checked_in = (REPO_ROOT / "openapi.json").read_text()
    assert checked_in == render_openapi(), "openapi.json is stale: run `uv run quorum openapi --write`"


def test_every_request_body_has_an_example_the_server_accepts() -> None:
    """The docs show real examples; each one decodes, strictly, into the type its route reads."""
    import json

    import msgspec

    from api.openapi import _struct_subclasses
    from api.request_body import decode_body

    document = json.loads(render_openapi())
    requests = {name: schema for name, schema in document["components"]["schemas"].items()
                if schema.get("additionalProperties") is False}
    structs = {cls.__name__: cls for cls in _struct_subclasses(msgspec.Struct) if cls.__name__ in requests}
    assert set(structs) == set(requests)
    for name, schema in requests.items():
        assert schema.get("examples"), f"{name} has no example"
        for example in schema["examples"]:
            decode_body(json.dumps(example).encode(), structs[name])  # raises on a refused example


def test_the_docs_explain_tokens_api_keys_and_every_scope() -> None:
    import json

    from tenants.principal import Scope

    scheme = json.loads(render_openapi())["components"]["securitySchemes"]["BearerToken"]
    assert "API key" in scheme["description"] and "access token" in scheme["description"]
    assert all(f"`{scope.value}`" in scheme["description"] for scope in Scope)
