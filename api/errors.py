"""Every error answers as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from tenants.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://quorum.dev/problems/"


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details; `errors` lists the fields that failed validation."""

    type: str
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    errors: list[FieldError] = []
    request_id: str | None = msgspec.field(default=None, name="requestId")


def problem_response(
    request: Request[Any, Any, Any], status: int, detail: str, *, slug: str | None = None,
    title: str | None = None, errors: list[FieldError] | None = None, headers: dict[str, str] | None = None,
) -> Response[Problem]:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    problem = Problem(
        type=PROBLEM_BASE + slug if slug else "about:blank",
        title=title or phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors or [],
        request_id=request.scope.get("state", {}).get("request_id"),
    )
    return Response(problem, status_code=status, media_type=PROBLEM_JSON, headers=headers or {})


# "at `$.a.b`", or "at `key` in `$.a`" for a bad key of a mapping (msgspec's decoder says the latter).
_JSON_PATH = re.compile(r"at (?:`key` in )?`\$\.?([^`]*)`")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]*)`")


def _field_errors(extra: Any) -> list[FieldError]:
    """Turn Litestar/msgspec validation details into `{field, message}` pairs that name the field."""
    items = extra if isinstance(extra, list) else [extra] if extra else []
    errors: list[FieldError] = []
    for item in items:
        if not isinstance(item, dict):
            errors.append(FieldError(field="", message=str(item)))
            continue
        message = str(item.get("message", ""))
        field = str(item.get("key") or "")
        named = _UNKNOWN_FIELD.search(message) or _MISSING_FIELD.search(message)
        path = _JSON_PATH.search(message)
        if named:
            field = ".".join(p for p in (path.group(1) if path else "", named.group(1)) if p)
        elif path and path.group(1):
            field = path.group(1)
        elif field in ("data", "body"):
            field = ""  # the body as a whole (Litestar names it after the handler's `data` parameter)
        message = _JSON_PATH.sub("", message).strip().rstrip(" -")
        if "matching regex" in message:
            message = "must be an email address" if field.endswith("email") else "has an invalid format"
        errors.append(FieldError(field=field, message=message))
    return errors


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    detail = str(exc.detail or "")
    errors = _field_errors(exc.extra)
    status = 422 if errors and request.method in ("POST", "PUT", "PATCH") else 400
    summary = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors) or detail
    return problem_response(request, status, summary or "The request is invalid.", slug="validation-error",
                            title="Invalid input", errors=errors)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if isinstance(exc.__cause__, SerializationException):
        return problem_response(request, 400, f"The request body is not valid JSON ({exc.__cause__}).",
                                slug="malformed-json", title="Malformed JSON")
    if status >= 500:
        log.error("server error", exc_info=exc)
        detail = "The server could not complete the request."
    else:
        detail = exc.detail if exc.detail and exc.detail != HTTPStatus(status).phrase else _default_detail(status)
    headers = dict(exc.headers or {})
    return problem_response(request, status, detail, headers=headers)


def _default_detail(status: int) -> str:
    return {
        404: "No resource exists at this path.",
        405: "This method is not allowed on this resource.",
        413: "The request body is too large.",
        401: "Authentication required.",
        403: "Not allowed.",
    }.get(status, HTTPStatus(status).description or HTTPStatus(status).phrase)


def handle_domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    errors = [FieldError(field=e.get("field", ""), message=e.get("message", "")) for e in exc.errors]
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="quorum"')
    return problem_response(request, exc.status, exc.detail, slug=exc.slug, title=exc.title,
                            errors=errors, headers=headers)


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """PostgreSQL or Redis is unreachable: a temporary 503 the client may retry, not a server bug."""
    log.warning("dependency unavailable: %s", type(exc).__name__)
    return problem_response(request, 503, "A backing service is temporarily unavailable; retry shortly.",
                            slug="dependency-unavailable", headers={"Retry-After": "2"})


def handle_database_error(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[Problem]:
    """A value PostgreSQL refuses (SQLSTATE class 22, data exception) is the client's input, not a crash."""
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", ""))
    if sqlstate.startswith("22"):
        return problem_response(request, 400, "A value in the request cannot be stored.", slug="invalid-value")
    if exc.connection_invalidated:
        return handle_unavailable(request, exc)
    return handle_unexpected(request, exc)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(request, 500, "The server could not complete the request.")


EXCEPTION_HANDLERS = {
    RedisConnectionError: handle_unavailable,
    RedisTimeoutError: handle_unavailable,
    DisconnectionError: handle_unavailable,
    OperationalError: handle_unavailable,
    InterfaceError: handle_unavailable,
    ConnectionError: handle_unavailable,
    TimeoutError: handle_unavailable,
    DBAPIError: handle_database_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    DomainError: handle_domain,
    Exception: handle_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "Problem", "problem_response"]
