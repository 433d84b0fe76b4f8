"""A query string holds only what the route documents, in the form it documents.

Litestar ignores query parameters a handler does not declare, so a misspelt filter (`?sybmol=`) silently
answers everything, and it converts values leniently (a time given as `0.5` becomes a Unix timestamp).
The published OpenAPI schema is the contract: each route's query names and date-time parameters are read
from it once, and a request that names another parameter, or gives a time that is not ISO 8601, is a 400
naming each offending parameter.
"""

from __future__ import annotations

import datetime
from typing import Any

from litestar import Request
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPI, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIFormat


def _is_date_time(schema: Any) -> bool:
    """Whether a parameter's schema is a date-time, alone or as an option (`date-time | null`)."""
    if not isinstance(schema, Schema):
        return False
    options = [*(schema.one_of or []), *(schema.any_of or [])]
    return schema.format == OpenAPIFormat.DATE_TIME or any(_is_date_time(option) for option in options)


class QueryIndex:
    """Each documented operation's (query names, date-time names), keyed by (method, route template)."""

    def __init__(self, rules: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]]) -> None:
        self.rules = rules

    @classmethod
    def from_schema(cls, schema: OpenAPI) -> QueryIndex:
        rules: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}
        for path, item in (schema.paths or {}).items():
            for method in ("get", "put", "post", "delete", "patch"):
                operation = getattr(item, method, None)
                if operation is None:
                    continue
                query = [p for p in (operation.parameters or []) if isinstance(p, Parameter) and p.param_in == "query"]
                rules[(method.upper(), path)] = (
                    frozenset(p.name for p in query), frozenset(p.name for p in query if _is_date_time(p.schema)),
                )
        return cls(rules)

    def check(self, method: str, template: str, query: Any) -> None:
        """Raise a 400 naming every undocumented parameter and every date-time that is not ISO 8601."""
        rule = self.rules.get(("GET" if method == "HEAD" else method, template))
        if rule is None or not query:
            return
        names, times = rule
        errors = [{"key": name, "message": "unknown query parameter"} for name in query if name not in names]
        for name in times & set(query):
            for value in query.getall(name):
                try:
                    datetime.datetime.fromisoformat(value)
                except ValueError:
                    errors.append({"key": name, "message": "must be an ISO 8601 date-time, e.g. 2026-12-03T15:00:00Z"})
        if errors:
            raise ValidationException(detail="Invalid query parameters", extra=errors)


async def check_query(request: Request[Any, Any, Any]) -> None:
    """The app's `before_request` hook: the index is the app's, built once with its schema."""
    index: QueryIndex = request.app.state.query_index
    index.check(request.method, request.scope.get("path_template", ""), request.query_params)


__all__ = ["QueryIndex", "check_query"]
