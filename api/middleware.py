"""ASGI middleware: the request id (taken from `X-Request-ID` or made), the client IP, one access-log line,
the request's latency in Prometheus, by route template (served at /metrics, api/health.py), and a deadline
for each piece of a request's body (the head's is api/serve.py's)."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from typing import Any

import anyio
from litestar.exceptions import HTTPException
from prometheus_client import Gauge, Histogram

from quorum.logs import request_id_var

log = logging.getLogger("quorum.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Labels come from closed sets only: the route's template (/v1/bots/{bot_id}), never the raw path,
# whose ids would make a new series per bot; methods outside HTTP's own are "other"; statuses by class.
HTTP_DURATION = Histogram(
    "quorum_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method, route template and status class",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_FLIGHT = Gauge(
    "quorum_http_requests_in_flight", "Requests being served now (open event streams included)",
    multiprocess_mode="livesum",
)
UNMATCHED_ROUTE = "unmatched"  # no route: 404s, and requests the router refused before choosing one
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_duration_by_labels: dict[tuple[str, str, int], Any] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One request in the latency histogram (its labelled child looked up once, then kept)."""
    key = (method if method in _METHODS else "other", route, status // 100)
    child = _duration_by_labels.get(key)
    if child is None:
        child = _duration_by_labels[key] = HTTP_DURATION.labels(key[0], route, f"{key[2]}xx")
    child.observe(seconds)


class TrustedProxies:
    """Forwarded headers count only when the peer is one of our proxies (see infra/nginx)."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries]

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    def client_ip(self, peer: str, forwarded_for: str | None) -> str:
        if not forwarded_for or not self.trusts(peer):
            return peer
        # Walk from the nearest hop back: the first address that is not our proxy is the client.
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if not self.trusts(hop):
                return hop
        return peer


class MethodIndex:
    """Which methods each path template allows. Litestar's automatic OPTIONS answer lists only part
    of them when a path's handlers are merged from several routes, so OPTIONS is answered from here."""

    def __init__(self, routes: list[tuple[re.Pattern[str], str, str]]) -> None:
        self.routes = routes  # (pattern, template, allowed methods)

    @classmethod
    def from_app(cls, app: Any) -> MethodIndex:
        merged: dict[str, set[str]] = {}
        formats: dict[str, str] = {}  # /v1/bots/{bot_id:uuid} -> /v1/bots/{bot_id}, the router's path_template
        for route in app.routes:
            merged.setdefault(route.path, set()).update(getattr(route, "methods", ()))
            formats[route.path] = getattr(route, "path_format", route.path)
        patterns = []
        for path, methods in merged.items():
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
            patterns.append((re.compile(f"^{regex}/?$"), formats[path], ", ".join(sorted(methods | {"OPTIONS"}))))
        return cls(patterns)

    def match(self, path: str) -> tuple[str, str] | None:
        """(the path's route template, the methods it allows), or None for a path no route serves."""
        for pattern, template, allow in self.routes:
            if pattern.match(path):
                return template, allow
        return None


# Sent by the API itself on every response, so they hold behind any proxy (or none).
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def body_read_in_time(receive: Any, seconds: float) -> Any:
    """`receive`, with each piece of the request's body due within `seconds` (else a 408); once the body is
    complete, `receive` as it is, since a streaming response waits on it for the client to disconnect."""
    body_done = False

    async def receive_in_time() -> dict[str, Any]:
        nonlocal body_done
        if body_done:
            return await receive()  # type: ignore[no-any-return]
        try:
            with anyio.fail_after(seconds):
                message = await receive()
        except TimeoutError:
            raise HTTPException(status_code=408, detail=f"the request body stalled for over {seconds:g} s",
                                headers={"Connection": "close"}) from None
        body_done = message["type"] != "http.request" or not message.get("more_body", False)
        return message  # type: ignore[no-any-return]

    return receive_in_time


class RequestContextMiddleware:
    def __init__(self, app: Any, proxies: TrustedProxies, methods: MethodIndex | None = None,
                 body_read_timeout: float = 15.0) -> None:
        self.app = app
        self.proxies = proxies
        self.methods = methods
        self.body_read_timeout = body_read_timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        peer = (scope.get("client") or ("", 0))[0] or ""
        forwarded = headers.get(b"x-forwarded-for")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self.proxies.client_ip(peer, forwarded.decode("latin-1") if forwarded else None)
        token = request_id_var.set(request_id)
        HTTP_IN_FLIGHT.inc()
        started = time.perf_counter()
        status = 500
        route = None

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode()),
                                      *SECURITY_HEADERS]
            await send(message)

        try:
            found = self.methods.match(scope["path"]) if self.methods and scope["method"] == "OPTIONS" else None
            if found is not None:
                route, allow = found
                await send_with_id({"type": "http.response.start", "status": 204,
                                    "headers": [(b"allow", allow.encode())]})
                await send_with_id({"type": "http.response.body", "body": b""})
                return
            await self.app(scope, body_read_in_time(receive, self.body_read_timeout), send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            HTTP_IN_FLIGHT.dec()
            # Litestar's router leaves the matched route's template in the scope.
            observe_request(scope["method"], route or scope.get("path_template") or UNMATCHED_ROUTE, status, elapsed)
            log.info(
                "%s %s %s", scope["method"], scope["path"], status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
            )
            request_id_var.reset(token)
