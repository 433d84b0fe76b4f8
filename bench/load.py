"""Mixed load on the whole service: logins, refreshes, authenticated reads, bot config writes and key linking.

Prints figures (not a test): per route the count, throughput, p50/p95/p99 latency and errors, then totals
and where the machine's CPU went. By default it starts the embedded stack exactly as `quorum run` does
(PostgreSQL and Redis from wheels, migrations, API, worker, beat) in a scratch folder; `--url` aims it at a
running server instead. Phases, in one run so they share the machine's conditions:

1. ceiling: GET /health alone, on as many connections as the readers use (no database, no auth);
2. reads: the authenticated reads alone;
3. mixed (`--seconds`, 60 by default): the readers as fast as they go, beside paced logins, refreshes,
   PATCH /v1/bots/{id} and POST /v1/exchange-keys (a Bybit key: the API enqueues its check, a worker
   asks a local fake of Bybit's v5 API, the API answers with the outcome);
4. each write route alone (`--route-seconds` each, at its mixed-phase rate): the server's CPU (API and
   PostgreSQL processes) per request by route, beside a read's from phase 2.

The target for a 2-core machine: at least 1,000 authenticated reads/s with p99 under 50 ms in phase 3,
with logins limited only by argon2 (their latency is the hash; reads do not slow down for them).

    uv run python bench/load.py [--seconds 60] [--url http://127.0.0.1:8000] [--api-workers 2] [--readers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from harness import REPO_ROOT, running_stack
from raw_http import RawConnection, RawResponse, build_request

PASSWORD = "load bench password 12345"
READ_ROUTES = ("GET /v1/me", "GET /v1/bots", "GET /v1/bots/{id}", "GET /v1/bots/{id}/decisions")


# -- measurements --------------------------------------------------------------------------------------


@dataclass
class RouteStats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0


class Recorder:
    def __init__(self) -> None:
        self.routes: dict[str, RouteStats] = {}
        self.started = time.perf_counter()
        self.elapsed = 0.0

    def add(self, route: str, latency: float, status: str, ok: bool) -> None:
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats()
        stats.latencies.append(latency)
        stats.statuses[status] += 1
        stats.errors += not ok

    def finish(self) -> None:
        self.elapsed = time.perf_counter() - self.started

    def merged(self, routes: tuple[str, ...]) -> RouteStats:
        total = RouteStats()
        for name in routes:
            if name in self.routes:
                total.latencies += self.routes[name].latencies
                total.statuses.update(self.routes[name].statuses)
                total.errors += self.routes[name].errors
        return total


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)] * 1000 if ordered else float("nan")


HEADER = (f"{'route':<34} {'count':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':>6}  statuses")


def row(name: str, stats: RouteStats, elapsed: float) -> str:
    ordered = sorted(stats.latencies)
    statuses = " ".join(f"{k}:{v}" for k, v in sorted(stats.statuses.items()))
    return (f"{name:<34} {len(ordered):>7} {len(ordered) / elapsed:>8.1f} {percentile(ordered, 0.5):>8.2f} "
            f"{percentile(ordered, 0.95):>8.2f} {percentile(ordered, 0.99):>8.2f} "
            f"{(ordered[-1] * 1000 if ordered else float('nan')):>8.1f} {stats.errors:>6}  {statuses}")


def print_phase(title: str, recorder: Recorder, summaries: dict[str, tuple[str, ...]]) -> None:
    print(f"\n{title} — {recorder.elapsed:.1f} s")
    print(HEADER)
    for name in sorted(recorder.routes):
        print(row(name, recorder.routes[name], recorder.elapsed))
    for label, routes in summaries.items():
        print(row(label, recorder.merged(routes), recorder.elapsed))


# -- CPU accounting: what our processes used, and what the rest of the machine did meanwhile ------------


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime in ticks) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _component(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    line = b" ".join(argv)
    for word, name in ((b"postgres", "PostgreSQL"), (b"redis-server", "Redis"), (b" serve", "API"),
                       (b" worker", "worker"), (b" beat", "beat")):
        if word in line:
            return name
    return "supervisor"


def _tree_ticks(roots: list[int]) -> Counter[str]:
    """CPU ticks used so far by the processes under `roots`, by component (API, PostgreSQL, worker, ...)."""
    stats = {int(p.name): s for p in Path("/proc").iterdir() if p.name.isdigit() and (s := _proc_stat(int(p.name)))}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [r for r in roots if r in stats]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    ticks: Counter[str] = Counter()
    for pid in seen:
        name, up = _component(pid), stats[pid][0]
        inherited = name == "supervisor"
        while name == "supervisor" and up in seen:  # uvicorn's and Celery's children belong to their parent
            name, up = _component(up), stats[up][0]
        ticks[name] += stats[pid][1]
        if name == "API" and inherited:
            ticks[f"API process {pid}"] += stats[pid][1]
    return ticks


def _machine_ticks() -> tuple[int, int]:
    """(busy, stolen) jiffies of the whole machine since boot; stolen: the hypervisor ran someone else."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4], values[7]  # without idle, iowait and guest time


class CpuMeter:
    """Where the machine's CPU went during a phase: the service by component, this client, everything else."""

    def __init__(self, stack_roots: Callable[[], list[int]]) -> None:
        self.stack_roots = stack_roots
        self.tick = os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self.t0, self.client0 = time.perf_counter(), time.process_time()
        self.stack0, (self.busy0, self.steal0) = _tree_ticks(self.stack_roots()), _machine_ticks()

    def service_ms(self, requests: int) -> float:
        """API and PostgreSQL CPU per request since `start`, in ms (what a route costs the server)."""
        used = _tree_ticks(self.stack_roots())
        used.subtract(self.stack0)
        return (max(used["API"], 0) + max(used["PostgreSQL"], 0)) / self.tick / max(requests, 1) * 1000

    def report(self, requests: int) -> str:
        wall = time.perf_counter() - self.t0
        busy, steal = _machine_ticks()
        machine, stolen = (busy - self.busy0) / self.tick, (steal - self.steal0) / self.tick
        client = time.process_time() - self.client0
        used = _tree_ticks(self.stack_roots())
        used.subtract(self.stack0)
        parts = {name: max(t, 0) / self.tick for name, t in used.items() if name != "gone"}
        api_split = " + ".join(f"{v / wall:.2f}" for name, v in sorted(parts.items()) if name.startswith("API process"))
        parts = {name: v for name, v in parts.items() if not name.startswith("API process")}
        stack = sum(parts.values())
        other = max(machine - client - stack - stolen, 0.0)
        detail = ", ".join(f"{name} {v / wall:.2f}" + (f" [{api_split}]" if name == "API" and api_split else "")
                           for name, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v >= 0.005 * wall)
        api_and_db = parts.get("API", 0) + parts.get("PostgreSQL", 0)
        per_request = f"; API + PostgreSQL: {api_and_db / requests * 1000:.2f} ms a request" if requests else ""
        return (f"CPU (cores) over {wall:.0f} s on {os.cpu_count()} CPUs: machine busy {machine / wall:.2f} = "
                f"service {stack / wall:.2f} ({detail or 'not measured'}) + this client {client / wall:.2f} "
                f"+ everything else on the machine {other / wall:.2f} + stolen by the hypervisor {stolen / wall:.2f}"
                f"{per_request}")


# -- the traffic ------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    email: str
    access: str
    bot_ids: list[str]


async def call(conn: RawConnection, request: bytes) -> tuple[RawResponse | None, float]:
    started = time.perf_counter()
    try:
        response = await conn.send(request)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        await conn.close()
        response = None
    return response, time.perf_counter() - started


async def setup(base: str, users: int, bots_per_user: int) -> list[Tenant]:
    """Register `users` tenants (in parallel, as argon2 allows) and give each `bots_per_user` bots."""
    gate = asyncio.Semaphore(4)

    async def one(i: int) -> Tenant:
        async with gate:
            conn = RawConnection(base)
            email = f"load-{uuid.uuid4().hex[:10]}-{i}@example.com"
            body = json.dumps({"email": email, "password": PASSWORD}).encode()
            registered = await conn.request("POST", "/v1/auth/register", body=body)
            assert registered.status_code == 201, registered.body
            access = registered.json()["accessToken"]  # type: ignore[index]
            auth = {"Authorization": f"Bearer {access}"}
            bot_ids = []
            for b in range(bots_per_user):
                bot = json.dumps({"name": f"load bot {b}", "symbols": ["BTC/USDT"]}).encode()
                created = await conn.request("POST", "/v1/bots", auth, bot)
                assert created.status_code == 201, created.body
                bot_ids.append(created.json()["id"])  # type: ignore[index]
            await conn.close()
            return Tenant(email, access, bot_ids)

    return list(await asyncio.gather(*(one(i) for i in range(users))))


def read_requests(base_host: str, tenant: Tenant) -> list[tuple[str, bytes]]:
    auth = {"Authorization": f"Bearer {tenant.access}"}
    bot = tenant.bot_ids[0]
    paths = ("/v1/me", "/v1/bots?limit=20", f"/v1/bots/{bot}", f"/v1/bots/{bot}/decisions?limit=20")
    return [(name, build_request("GET", path, base_host, auth)) for name, path in zip(READ_ROUTES, paths, strict=True)]


async def open_readers(base: str, count: int) -> list[RawConnection]:
    """Keep-alive connections, opened one at a time and kept for every phase. The API processes share one
    listening socket and one of them may accept a whole burst of connections; opened one by one, each is
    taken by whichever process wakes first, so they spread (the CPU lines show each process's share)."""
    connections = []
    host = base.split("//", 1)[1]
    for _ in range(count):
        conn = RawConnection(base)
        await conn.send(build_request("GET", "/health", host))
        connections.append(conn)
        await asyncio.sleep(0.02)
    return connections


async def reader(conn: RawConnection, requests: list[tuple[str, bytes]], offset: int, stop: float,
                 rec: Recorder) -> None:
    for name, request in itertools.islice(itertools.cycle(requests), offset, None):
        if time.perf_counter() >= stop:
            break
        response, latency = await call(conn, request)
        status = str(response.status_code) if response else "conn-error"
        rec.add(name, latency, status, response is not None and response.status_code == 200)


Step = Callable[[RawConnection, int, int], Awaitable[tuple[str, RawResponse | None, float, int]]]


async def paced(base: str, step: Step, rate: float, connections: int, stop: float, rec: Recorder) -> None:
    """`rate` requests/s in total over `connections` keep-alive connections (fewer if the server is slower)."""
    if rate <= 0:
        return
    interval = connections / rate
    counter = itertools.count()

    async def loop(lane: int) -> None:
        conn = RawConnection(base)
        next_at = time.perf_counter() + lane * interval / connections
        while True:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= stop:
                break
            name, response, latency, expected = await step(conn, next(counter), lane)
            status = str(response.status_code) if response else "conn-error"
            rec.add(name, latency, status, response is not None and response.status_code == expected)
            next_at = max(next_at + interval, time.perf_counter() - interval)  # no catch-up bursts
        await conn.close()

    await asyncio.gather(*(loop(lane) for lane in range(connections)))


class Writers:
    """The paced, state-changing traffic: each step builds its request from the current state."""

    def __init__(self, base_host: str, tenants: list[Tenant], refresh_tokens: list[str], fake_bybit: object | None):
        self.host = base_host
        self.tenants = tenants
        self.refresh_tokens = refresh_tokens  # one rotating family per refresh lane
        self.fake_bybit = fake_bybit

    async def login(self, conn: RawConnection, n: int, _lane: int) -> tuple[str, RawResponse | None, float, int]:
        tenant = self.tenants[n % len(self.tenants)]
        body = json.dumps({"email": tenant.email, "password": PASSWORD}).encode()
        response, latency = await call(conn, build_request("POST", "/v1/auth/login", self.host, body=body))
        return "POST /v1/auth/login", response, latency, 200

    async def refresh(self, conn: RawConnection, _n: int, lane: int) -> tuple[str, RawResponse | None, float, int]:
        # Each lane owns its token family: a refresh token presented twice would revoke the family.
        body = json.dumps({"refreshToken": self.refresh_tokens[lane]}).encode()
        response, latency = await call(conn, build_request("POST", "/v1/auth/refresh", self.host, body=body))
        if response is not None and response.status_code == 200:
            self.refresh_tokens[lane] = response.json()["refreshToken"]  # type: ignore[index]
        return "POST /v1/auth/refresh", response, latency, 200

    async def patch_bot(self, conn: RawConnection, n: int, _lane: int) -> tuple[str, RawResponse | None, float, int]:
        tenant = self.tenants[n % len(self.tenants)]
        bot = tenant.bot_ids[(n // len(self.tenants)) % len(tenant.bot_ids)]
        body = json.dumps({"name": f"load bot {n}", "maxOpenPositions": 1 + n % 5}).encode()
        request = build_request("PATCH", f"/v1/bots/{bot}", self.host,
                                {"Authorization": f"Bearer {tenant.access}"}, body)
        response, latency = await call(conn, request)
        return "PATCH /v1/bots/{id}", response, latency, 200

    async def link_key(self, conn: RawConnection, n: int, _lane: int) -> tuple[str, RawResponse | None, float, int]:
        tenant = self.tenants[n % len(self.tenants)]
        if self.fake_bybit is not None:
            api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}"
            self.fake_bybit.add_key(api_key, secret)  # type: ignore[attr-defined]
            payload = {"exchange": "bybit", "label": f"load {n}", "apiKey": api_key, "secret": secret}
        else:
            payload = {"exchange": "paper", "label": f"load {n}"}
        request = build_request("POST", "/v1/exchange-keys", self.host,
                                {"Authorization": f"Bearer {tenant.access}"}, json.dumps(payload).encode())
        response, latency = await call(conn, request)
        return "POST /v1/exchange-keys", response, latency, 201


def argon2_verify_ms() -> float:
    """What one login's hash costs on this machine, alone (the floor of a login's latency)."""
    from tenants.passwords import _hasher

    hashed = _hasher.hash(PASSWORD)
    started = time.perf_counter()
    for _ in range(5):
        _hasher.verify(hashed, PASSWORD)
    return (time.perf_counter() - started) / 5 * 1000


async def run(base: str, args: argparse.Namespace, fake_bybit: object | None, cpu: CpuMeter) -> bool:
    host = base.split("//", 1)[1]
    tenants = await setup(base, args.users, 2)
    refresh_tokens = []
    for lane in range(args.refresh_connections):
        conn = RawConnection(base)
        body = json.dumps({"email": tenants[lane % len(tenants)].email, "password": PASSWORD}).encode()
        refresh_tokens.append((await conn.request("POST", "/v1/auth/login", body=body)).json()["refreshToken"])  # type: ignore[index]
        await conn.close()
    per_reader = [read_requests(host, tenants[i % len(tenants)]) for i in range(args.readers)]
    connections = await open_readers(base, args.readers)

    async def readers(seconds: float, rec: Recorder) -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(reader(connections[i], per_reader[i], i, stop, rec) for i in range(args.readers)))

    await readers(3, Recorder())  # warm every API process's pool and caches
    print(f"\nload: {args.users} tenants with 2 bots each; {args.readers} reader connections; "
          f"load average before: {os.getloadavg()[0]:.2f}")

    ceiling = Recorder()
    health = [("GET /health", build_request("GET", "/health", host))]
    cpu.start()
    stop = time.perf_counter() + args.baseline_seconds
    await asyncio.gather(*(reader(conn, health, 0, stop, ceiling) for conn in connections))
    ceiling.finish()
    print_phase("1. ceiling: GET /health alone", ceiling, {})
    print(cpu.report(len(ceiling.routes["GET /health"].latencies)))

    reads_alone = Recorder()
    cpu.start()
    await readers(args.baseline_seconds, reads_alone)
    reads_alone.finish()
    print_phase("2. authenticated reads alone", reads_alone, {"= all authenticated reads": READ_ROUTES})
    print(cpu.report(len(reads_alone.merged(READ_ROUTES).latencies)))
    read_ms = cpu.service_ms(len(reads_alone.merged(READ_ROUTES).latencies))

    writers = Writers(host, tenants, refresh_tokens, fake_bybit)
    mixed = Recorder()
    cpu.start()
    stop = time.perf_counter() + args.seconds
    await asyncio.gather(
        readers(args.seconds, mixed),
        paced(base, writers.login, args.login_rate, args.login_connections, stop, mixed),
        paced(base, writers.refresh, args.refresh_rate, args.refresh_connections, stop, mixed),
        paced(base, writers.patch_bot, args.patch_rate, 2, stop, mixed),
        paced(base, writers.link_key, args.link_rate, 2, stop, mixed),
    )
    mixed.finish()
    print_phase(f"3. mixed load ({args.login_rate:g} logins/s, {args.refresh_rate:g} refreshes/s, "
                f"{args.patch_rate:g} bot PATCHes/s, {args.link_rate:g} key links/s asked)", mixed,
                {"= all authenticated reads": READ_ROUTES, "= everything": tuple(mixed.routes)})
    print(cpu.report(sum(len(r.latencies) for r in mixed.routes.values())))
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    print(f"\n4. server CPU (API + PostgreSQL) per request, each write route alone for {args.route_seconds:g} s")
    print(f"  {'route':<28} {'requests':>8} {'ms a request':>13} {'× a read':>9}")
    print(f"  {'authenticated reads':<28} {len(reads_alone.merged(READ_ROUTES).latencies):>8} {read_ms:>13.2f} "
          f"{1:>9.1f}")
    alone = (("POST /v1/auth/login", writers.login, args.login_rate, args.login_connections),
             ("POST /v1/auth/refresh", writers.refresh, args.refresh_rate, args.refresh_connections),
             ("PATCH /v1/bots/{id}", writers.patch_bot, args.patch_rate, 2),
             ("POST /v1/exchange-keys", writers.link_key, args.link_rate, 2))
    for name, step, rate, lanes in alone:
        rec = Recorder()
        cpu.start()
        await paced(base, step, rate, lanes, time.perf_counter() + args.route_seconds, rec)
        count = len(rec.routes[name].latencies) if name in rec.routes else 0
        ms = cpu.service_ms(count)
        print(f"  {name:<28} {count:>8} {ms:>13.2f} {ms / read_ms if read_ms else 0:>9.1f}")

    reads = mixed.merged(READ_ROUTES)
    ordered = sorted(reads.latencies)
    rps, p99 = len(ordered) / mixed.elapsed, percentile(ordered, 0.99)
    logins = sorted(mixed.routes.get("POST /v1/auth/login", RouteStats()).latencies)
    health_rps = len(ceiling.routes["GET /health"].latencies) / ceiling.elapsed
    met = rps >= 1000 and p99 < 50 and reads.errors == 0
    print(f"\nauthenticated reads under mixed load: {rps:.0f}/s, p99 {p99:.1f} ms, {reads.errors} errors — "
          f"target ≥ 1000/s with p99 < 50 ms: {'met' if met else 'NOT met'}")
    print(f"  ({rps / health_rps:.0%} of the GET /health ceiling of {health_rps:.0f}/s measured in this run)")
    print(f"logins: p50 {percentile(logins, 0.5):.0f} ms against {argon2_verify_ms():.0f} ms for one argon2id "
          f"verify alone in this process")
    for conn in connections:
        await conn.close()
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="length of the mixed phase")
    parser.add_argument("--baseline-seconds", type=float, default=10, help="length of phases 1 and 2")
    parser.add_argument("--route-seconds", type=float, default=10, help="length of each route of phase 4")
    parser.add_argument("--url", help="a running server to load instead of starting the embedded stack")
    parser.add_argument("--api-workers", type=int, default=2, help="API processes of the embedded stack")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--readers", type=int, default=16, help="keep-alive connections reading flat out")
    parser.add_argument("--login-rate", type=float, default=5)
    parser.add_argument("--login-connections", type=int, default=2)
    parser.add_argument("--refresh-rate", type=float, default=10)
    parser.add_argument("--refresh-connections", type=int, default=2)
    parser.add_argument("--patch-rate", type=float, default=20)
    parser.add_argument("--link-rate", type=float, default=2)
    args = parser.parse_args()

    with ExitStack() as stack:
        if args.url:
            base, roots = args.url.rstrip("/"), (lambda: [])
            fake = None
        else:
            sys.path.insert(0, str(REPO_ROOT))
            from tests.fakes.bybit_v5 import FakeBybitV5

            fake = stack.enter_context(FakeBybitV5())
            overrides = {"EXCHANGE_API_OVERRIDES": f"bybit={fake.origin}"}
            service = stack.enter_context(running_stack(args.api_workers, **overrides))
            base, roots = service.base_url, service.process_roots
        print(f"load: {base} ({'given URL' if args.url else f'embedded stack, {args.api_workers} API processes'})")
        uvloop.run(run(base, args, fake, CpuMeter(roots)))
    return 0  # a benchmark prints figures; it does not pass or fail


if __name__ == "__main__":
    sys.exit(main())
