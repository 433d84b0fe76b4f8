"""Domain errors. Each carries the HTTP status the API answers with and a stable problem slug."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


class Unauthenticated(DomainError):
    status, slug, title = 401, "unauthenticated", "Authentication required"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class Unprocessable(DomainError):
    status, slug, title = 422, "validation-error", "Invalid input"


class TooManyRequests(DomainError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(int(retry_after), 1))})
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    status, slug, title = 503, "dependency-unavailable", "Temporarily unavailable"

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
