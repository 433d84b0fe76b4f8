"""OpenAPI documentation of the problem-details responses each route can give."""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPI, Schema

from api.errors import PROBLEM_JSON, Problem

BEARER_SCHEME = "BearerToken"
# Routes that need `Authorization: Bearer <access token or API key>` declare this.
BEARER: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}]

# What any route that reads a JSON body or touches PostgreSQL/Redis may answer.
BODY = (400, 413, 422)
AUTHENTICATED = (401, 403, 429)  # 429: an API key over its per-key rate limit
BACKEND = (503,)


def problems(*groups: int | tuple[int, ...]) -> dict[int, ResponseSpec]:
    statuses: set[int] = set()
    for group in groups:
        statuses.update(group if isinstance(group, tuple) else (group,))
    return {
        status: ResponseSpec(
            data_container=Problem, media_type=PROBLEM_JSON, description=HTTPStatus(status).phrase,
            generate_examples=False,
        )
        for status in sorted(statuses)
    }


def forbid_unknown_properties(openapi: OpenAPI) -> None:
    """Say in the schema what the server enforces: request bodies reject fields they do not declare."""
    strict = {cls.__name__ for cls in _struct_subclasses(msgspec.Struct) if cls.__struct_config__.forbid_unknown_fields}
    for name, schema in (openapi.components.schemas or {}).items():
        if name in strict and isinstance(schema, Schema):
            schema.additional_properties = False


def _struct_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _struct_subclasses(sub)
    return found
