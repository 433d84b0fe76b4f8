"""Liveness and readiness probes, and the Prometheus metrics of the API processes."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import PUBLIC
from api.errors import FieldError, problem_response
from api.openapi import problems
from quorum.metrics import QueueDepthCollector, read_queue_depths, render


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str]


@get("/health", opt=PUBLIC, tags=["health"], summary="The process is alive")
async def health() -> Health:
    return Health(status="ok")


async def _check_postgres(request: Request[Any, Any, Any]) -> None:
    await request.app.state.database.ping()


async def _check_redis(request: Request[Any, Any, Any]) -> None:
    await request.app.state.redis.ping()


@get("/ready", opt=PUBLIC, tags=["health"], responses=problems(503),
     summary="PostgreSQL and Redis are reachable (503 names the one that is not)")
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    checks = {"postgres": _check_postgres, "redis": _check_redis}
    results = await asyncio.gather(
        *(asyncio.wait_for(check(request), timeout=2.0) for check in checks.values()), return_exceptions=True
    )
    failed = {name: type(r).__name__ for name, r in zip(checks, results, strict=True) if isinstance(r, BaseException)}
    if failed:
        return problem_response(
            request, 503, "unavailable: " + ", ".join(sorted(failed)), slug="dependency-unavailable",
            errors=[FieldError(field=name, message=f"unreachable ({error})") for name, error in failed.items()],
        )
    return Response(Readiness(status="ready", checks={name: "ok" for name in checks}))


# Not in the OpenAPI schema: it is for Prometheus, not for API clients, and speaks Prometheus' text format.
@get("/metrics", opt=PUBLIC, include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    token = request.app.state.settings.metrics_token
    if token and not hmac.compare_digest(request.headers.get("authorization", "").encode(),
                                         f"Bearer {token}".encode()):
        return problem_response(request, 401, "metrics need the METRICS_TOKEN as a bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
    depths = await read_queue_depths(request.app.state.redis)
    # Reading every worker process's file takes a moment; not on the loop that serves requests.
    body = await anyio.to_thread.run_sync(render, QueueDepthCollector(depths))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
