"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from sqlalchemy import text

from api.auth import PUBLIC
from api.errors import FieldError, problem_response
from api.openapi import problems


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str]


@get("/health", opt=PUBLIC, tags=["health"], summary="The process is alive")
async def health() -> Health:
    return Health(status="ok")


async def _check_postgres(request: Request[Any, Any, Any]) -> None:
    async with request.app.state.database.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


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
