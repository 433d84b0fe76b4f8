"""API latency: authenticated GET /v1/me against GET /health on one server, and /health while logins run.

Prints figures (not a test). The second comparison shows argon2 runs off the event loop: /health's p99
must stay low while 32 logins hash passwords concurrently.

    uv run python bench/api_latency.py [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import uvloop
from harness import HEADER, hammer, running_api
from raw_http import RawConnection

PASSWORD = "bench password 12345"


async def measure(base: str, seconds: float, concurrency: int) -> None:
    setup = RawConnection(base)
    body = json.dumps({"email": "bench@example.com", "password": PASSWORD}).encode()
    token = (await setup.request("POST", "/v1/auth/register", body=body)).json()["accessToken"]
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(300):  # warm up pools and caches
        await setup.request("GET", "/health")
        await setup.request("GET", "/v1/me", auth)
    await setup.close()

    health = await hammer("GET /health", base, lambda c: c.request("GET", "/health"),
                          seconds=seconds, concurrency=concurrency)
    me = await hammer("GET /v1/me (authenticated)", base, lambda c: c.request("GET", "/v1/me", auth),
                      seconds=seconds, concurrency=concurrency)
    health_idle = await hammer("GET /health, 4 clients, no logins", base, lambda c: c.request("GET", "/health"),
                               seconds=seconds, concurrency=4)
    logins_task = asyncio.create_task(hammer(
        "POST /v1/auth/login (32 concurrent)", base, lambda c: c.request("POST", "/v1/auth/login", body=body),
        seconds=seconds + 1, concurrency=32,
    ))
    await asyncio.sleep(0.5)  # let the logins fill the hashing threads
    health_under_logins = await hammer("GET /health during 32 logins", base, lambda c: c.request("GET", "/health"),
                                       seconds=seconds, concurrency=4)
    logins = await logins_task

    print(f"\nAPI latency — one uvicorn process, {os.cpu_count()} CPUs shared with this client, "
          f"{seconds:.0f}s per phase, load average {os.getloadavg()[0]:.2f}")
    print(HEADER)
    for m in (health, me, health_idle, health_under_logins, logins):
        print(m.row())
    print(f"\n/v1/me throughput as a share of /health: {me.rps / health.rps:.2f}  "
          f"(p99 {me.percentile(0.99):.2f} ms vs {health.percentile(0.99):.2f} ms)")
    print(f"/health p99 with 32 concurrent logins: {health_under_logins.percentile(0.99):.2f} ms "
          f"vs {health_idle.percentile(0.99):.2f} ms without ({logins.rps:.0f} logins/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with running_api() as base:
        uvloop.run(measure(base, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
