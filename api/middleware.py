"""ASGI middleware: the request id (taken from `X-Request-ID` or made), the client IP, and one access-log line."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from typing import Any

from quorum.logs import request_id_var

log = logging.getLogger("quorum.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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

    def __init__(self, routes: list[tuple[re.Pattern[str], str]]) -> None:
        self.routes = routes

    @classmethod
    def from_app(cls, app: Any) -> MethodIndex:
        merged: dict[str, set[str]] = {}
        for route in app.routes:
            merged.setdefault(route.path, set()).update(getattr(route, "methods", ()))
        patterns = []
        for template, methods in merged.items():
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            patterns.append((re.compile(f"^{regex}/?$"), ", ".join(sorted(methods | {"OPTIONS"}))))
        return cls(patterns)

    def allowed(self, path: str) -> str | None:
        for pattern, allow in self.routes:
            if pattern.match(path):
                return allow
        return None


class RequestContextMiddleware:
    def __init__(self, app: Any, proxies: TrustedProxies, methods: MethodIndex | None = None) -> None:
        self.app = app
        self.proxies = proxies
        self.methods = methods

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
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            allow = self.methods.allowed(scope["path"]) if self.methods and scope["method"] == "OPTIONS" else None
            if allow is not None:
                await send_with_id({"type": "http.response.start", "status": 204,
                                    "headers": [(b"allow", allow.encode())]})
                await send_with_id({"type": "http.response.body", "body": b""})
                return
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s", scope["method"], scope["path"], status,
                extra={"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
            )
            request_id_var.reset(token)
