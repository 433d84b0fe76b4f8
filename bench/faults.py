"""Fault drill: restart Redis, then PostgreSQL, under write and read load; the service must heal by itself.

Starts its own embedded PostgreSQL and Redis (never a shared server), then the API and a Celery worker as
real processes, and a local fake of Bybit's API for key checks. Paced lanes register accounts, create and
rename bots, link exchange keys (the worker checks them through Redis), log in and read, while a poller asks
GET /ready five times a second. Mid-load Redis is stopped for a few seconds and started again on the same
port and data folder; once /ready is 200 again, PostgreSQL likewise. Nothing else is restarted.

It prints the /ready timeline, the answers by status in each window, how long each path took to recover,
and the acknowledged writes (2xx) against those found in the database afterwards. It exits 1 when an
acknowledged write is missing, the API answered a 5xx other than 503 or stopped answering, /ready did not
report an outage (503 naming the dependency) or did not come back, a path never succeeded again after a
restart, or the API or worker process had to be replaced.

    uv run python bench/faults.py [--down 4] [--settle 8] [--api-workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import psycopg  # noqa: E402
from raw_http import RawConnection, RawResponse, build_request  # noqa: E402

from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, wait_for_port  # noqa: E402
from quorum.settings import load_settings  # noqa: E402
from tenants.db_commands import bootstrap  # noqa: E402
from tests.fakes.bybit_v5 import FakeBybitV5  # noqa: E402

PASSWORD = "fault drill password 123"
REQUEST_TIMEOUT = 15.0


# -- the service under test ---------------------------------------------------------------------------------


@dataclass
class Service:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    base_url: str
    owner_url: str
    fake_bybit: FakeBybitV5
    logs: Path


@contextmanager
def running_service(api_workers: int = 1) -> Iterator[Service]:
    """PostgreSQL and Redis of its own (embedded, so they can be stopped), migrations, API and worker."""
    scratch = Path(tempfile.mkdtemp(prefix="quorum-faults-"))
    pg = EmbeddedPostgres(scratch / "postgres", free_port())
    redis = EmbeddedRedis(scratch / "redis", free_port())
    processes: list[subprocess.Popen[bytes]] = []
    try:
        pg.start()
        redis.start()
        owner_url = pg.url.rsplit("/", 1)[0] + "/quorum"
        port = free_port()
        fake = FakeBybitV5().__enter__()
        env = {
            **os.environ, "DATABASE_URL": owner_url, "REDIS_URL": redis.url, "PORT": str(port),
            "ENVIRONMENT": "development", "LOG_LEVEL": "WARNING", "SECRET_KEY": "fault-drill-" + "k" * 40,
            "LOGIN_ATTEMPTS_PER_ACCOUNT": "1000000", "LOGIN_ATTEMPTS_PER_IP": "1000000",
            "REGISTRATIONS_PER_IP": "1000000", "REGISTRATIONS_GLOBAL": "1000000",
            "EXCHANGE_API_OVERRIDES": f"bybit={fake.origin}", "KEY_CHECK_TIMEOUT_SECONDS": "5",
            "MARKET_DATA": "replay", "PASSWORD_HASH_THREADS": "1", "PYTHONPATH": str(REPO_ROOT),
        }
        bootstrap(load_settings(env))
        quorum = [sys.executable, "-m", "quorum.cli"]
        for name, argv in (("api", [*quorum, "serve", "--workers", str(api_workers)]),
                           ("worker", [*quorum, "worker", "--threads", "4", "--name", f"drill-{os.getpid()}@%h"])):
            log = (scratch / f"{name}.log").open("wb")
            processes.append(subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        wait_for_port(port, 90)
        yield Service(pg, redis, processes[0], processes[1], f"http://127.0.0.1:{port}", owner_url, fake, scratch)
    finally:
        for proc in processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        redis.stop()
        pg.destroy()
        shutil.rmtree(scratch, ignore_errors=True)


# -- what the clients saw -------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every answer by window, route and status; and every write the API acknowledged."""

    window: str = "before"
    answers: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    successes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # route: times of 2xx
    registered: list[str] = field(default_factory=list)  # emails answered 201
    bots: list[str] = field(default_factory=list)  # ids answered 201
    keys: list[str] = field(default_factory=list)  # ids answered 201
    renames: dict[str, list[tuple[str, bool]]] = field(default_factory=lambda: defaultdict(list))  # bot: (name, acked)
    ready: list[tuple[float, int, str]] = field(default_factory=list)  # (t, status, detail) when it changes
    started: float = field(default_factory=time.perf_counter)

    def now(self) -> float:
        return time.perf_counter() - self.started

    def record(self, route: str, response: RawResponse | None, error: str = "") -> None:
        status = str(response.status_code) if response is not None else error
        self.answers[(self.window, route, status)] += 1
        if response is not None and 200 <= response.status_code < 300:
            self.successes[route].append(self.now())


async def send(conn: RawConnection, request: bytes) -> tuple[RawResponse | None, str]:
    try:
        return await asyncio.wait_for(conn.send(request), REQUEST_TIMEOUT), ""
    except TimeoutError:
        await conn.close()
        return None, "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError):
        await conn.close()
        return None, "connection-error"


@dataclass
class Account:
    email: str
    access: str
    bot_id: str


async def register(conn: RawConnection, host: str) -> Account:
    email = f"drill-{uuid.uuid4().hex[:12]}@example.com"
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    response = await conn.send(build_request("POST", "/v1/auth/register", host, body=body))
    assert response.status_code == 201, response.body
    access = response.json()["accessToken"]  # type: ignore[index]
    auth = {"Authorization": f"Bearer {access}"}
    created = await conn.send(build_request("POST", "/v1/bots", host, auth, json.dumps({"name": "drill"}).encode()))
    assert created.status_code == 201, created.body
    return Account(email, access, created.json()["id"])  # type: ignore[index]


class Traffic:
    def __init__(self, base: str, ledger: Ledger, accounts: list[Account], fake: FakeBybitV5, rate: float) -> None:
        self.base, self.host = base, base.split("//", 1)[1]
        self.ledger, self.accounts, self.fake, self.rate = ledger, accounts, fake, rate
        self.stopping = False

    def auth(self, n: int) -> tuple[Account, dict[str, str]]:
        account = self.accounts[n % len(self.accounts)]
        return account, {"Authorization": f"Bearer {account.access}"}

    async def lane(self, per_second: float, step: Callable[[RawConnection, int], Awaitable[None]]) -> None:
        conn, n, interval = RawConnection(self.base), 0, 1 / (per_second * self.rate)
        while not self.stopping:
            started = time.perf_counter()
            await step(conn, n)
            n += 1
            await asyncio.sleep(max(interval - (time.perf_counter() - started), 0))
        await conn.close()

    async def register(self, conn: RawConnection, n: int) -> None:
        email = f"drill-new-{uuid.uuid4().hex[:12]}@example.com"
        body = json.dumps({"email": email, "password": PASSWORD}).encode()
        response, error = await send(conn, build_request("POST", "/v1/auth/register", self.host, body=body))
        self.ledger.record("POST /v1/auth/register", response, error)
        if response is not None and response.status_code == 201:
            self.ledger.registered.append(email)

    async def create_bot(self, conn: RawConnection, n: int) -> None:
        _, auth = self.auth(n)
        body = json.dumps({"name": f"drill bot {n}"}).encode()
        response, error = await send(conn, build_request("POST", "/v1/bots", self.host, auth, body))
        self.ledger.record("POST /v1/bots", response, error)
        if response is not None and response.status_code == 201:
            self.ledger.bots.append(response.json()["id"])  # type: ignore[index]

    def rename(self, lane: int) -> Callable[[RawConnection, int], Awaitable[None]]:
        # One lane per bot, one request at a time: the bot's last acknowledged name is knowable.
        account, auth = self.auth(lane)

        async def step(conn: RawConnection, n: int) -> None:
            name = f"drill {lane}-{n}"
            body = json.dumps({"name": name}).encode()
            response, error = await send(conn, build_request("PATCH", f"/v1/bots/{account.bot_id}", self.host,
                                                             auth, body))
            self.ledger.record("PATCH /v1/bots/{id}", response, error)
            self.ledger.renames[account.bot_id].append((name, response is not None and response.status_code == 200))

        return step

    async def link_key(self, conn: RawConnection, n: int) -> None:
        _, auth = self.auth(n)
        api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}"
        self.fake.add_key(api_key, secret)
        body = json.dumps({"exchange": "bybit", "label": f"drill {n}", "apiKey": api_key, "secret": secret}).encode()
        response, error = await send(conn, build_request("POST", "/v1/exchange-keys", self.host, auth, body))
        self.ledger.record("POST /v1/exchange-keys", response, error)
        if response is not None and response.status_code == 201:
            self.ledger.keys.append(response.json()["id"])  # type: ignore[index]

    async def login(self, conn: RawConnection, n: int) -> None:
        account, _ = self.auth(n)
        body = json.dumps({"email": account.email, "password": PASSWORD}).encode()
        response, error = await send(conn, build_request("POST", "/v1/auth/login", self.host, body=body))
        self.ledger.record("POST /v1/auth/login", response, error)

    async def read(self, conn: RawConnection, n: int) -> None:
        account, auth = self.auth(n)
        route, path = (("GET /v1/me", "/v1/me"), ("GET /v1/bots/{id}", f"/v1/bots/{account.bot_id}"),
                       ("GET /v1/bots", "/v1/bots"))[n % 3]
        response, error = await send(conn, build_request("GET", path, self.host, auth))
        self.ledger.record(route, response, error)

    async def poll_ready(self) -> None:
        conn, request = RawConnection(self.base), build_request("GET", "/ready", self.host)
        while not self.stopping:
            response, error = await send(conn, request)
            status = response.status_code if response is not None else 0
            detail = error
            if response is not None:
                body = response.json()
                detail = body.get("detail", body.get("status", "")) if isinstance(body, dict) else ""
            if not self.ledger.ready or self.ledger.ready[-1][1:] != (status, detail):
                self.ledger.ready.append((self.ledger.now(), status, detail))
            await asyncio.sleep(0.2)
        await conn.close()

    def lanes(self) -> list[Awaitable[None]]:
        return [
            self.poll_ready(),
            self.lane(2, self.register), self.lane(8, self.create_bot),
            self.lane(5, self.rename(0)), self.lane(5, self.rename(1)),
            self.lane(1, self.link_key), self.lane(1, self.login),
            self.lane(20, self.read), self.lane(20, self.read),
        ]


# -- the drill ------------------------------------------------------------------------------------------------


@dataclass
class Outage:
    dependency: str
    stopped_at: float = 0.0
    started_at: float = 0.0
    ready_at: float | None = None  # /ready 200 again
    reported: bool = False  # /ready answered 503 naming the dependency while it was down
    recovered: dict[str, float] = field(default_factory=dict)  # route: seconds from restart to its next 2xx


@dataclass
class Report:
    ledger: Ledger
    outages: list[Outage]
    missing: dict[str, int]
    acknowledged: dict[str, int]
    found: dict[str, int]
    processes_kept: bool
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def _outage_seen(ledger: Ledger, outage: Outage) -> tuple[bool, float | None]:
    """Whether /ready answered 503 naming the dependency after it stopped, and when it first answered 200 after
    that (which may be a moment before `server.start()` returned: it returns once the port answers)."""
    reported_at = next((t for t, status, detail in ledger.ready
                        if t >= outage.stopped_at and status == 503 and outage.dependency in detail), None)
    if reported_at is None:
        return False, None
    return True, next((t for t, status, _ in ledger.ready if t > reported_at and status == 200), None)


async def _wait_ready(ledger: Ledger, outage: Outage, within: float) -> None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        if _outage_seen(ledger, outage)[1] is not None:
            return
        await asyncio.sleep(0.1)


async def _wait_for_worker(conn: RawConnection, host: str, account: Account, fake: FakeBybitV5) -> None:
    """Link one key (the worker checks it) so the load starts once the worker has warmed up and consumes."""
    auth = {"Authorization": f"Bearer {account.access}"}
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}"
        fake.add_key(api_key, secret)
        body = json.dumps({"exchange": "bybit", "label": "warm-up", "apiKey": api_key, "secret": secret}).encode()
        if (await conn.send(build_request("POST", "/v1/exchange-keys", host, auth, body))).status_code == 201:
            return
    raise TimeoutError("the worker did not check a key within 120 s")


async def drill(service: Service, *, down: float, settle: float, rate: float = 1.0, tenants: int = 6) -> Report:
    ledger = Ledger()
    setup = RawConnection(service.base_url)
    host = service.base_url.split("//", 1)[1]
    accounts = [await register(setup, host) for _ in range(tenants)]
    await _wait_for_worker(setup, host, accounts[0], service.fake_bybit)
    await setup.close()
    traffic = Traffic(service.base_url, ledger, accounts, service.fake_bybit, rate)
    ledger.started = time.perf_counter()
    load = asyncio.gather(*traffic.lanes())
    outages = []
    try:
        ledger.window = "before"
        await asyncio.sleep(settle)
        for dependency, server in (("redis", service.redis), ("postgres", service.postgres)):
            outage = Outage(dependency)
            outages.append(outage)
            ledger.window = f"{dependency} down"
            outage.stopped_at = ledger.now()
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(down)
            await asyncio.to_thread(server.start)
            outage.started_at = ledger.now()
            await _wait_ready(ledger, outage, 60)
            outage.reported, outage.ready_at = _outage_seen(ledger, outage)
            ledger.window = f"after {dependency}"
            await asyncio.sleep(settle)
            outage.recovered = {route: next(t for t in times if t >= outage.started_at) - outage.started_at
                                for route, times in ledger.successes.items() if times[-1] >= outage.started_at}
    finally:
        traffic.stopping = True
        await load
    return await asyncio.to_thread(_check, service, ledger, outages)


def _check(service: Service, ledger: Ledger, outages: list[Outage]) -> Report:
    with psycopg.connect(service.owner_url) as db:  # the owner (a superuser here): every tenant's rows
        users = {r[0] for r in db.execute("SELECT email FROM users WHERE email = ANY(%s)", (ledger.registered,))}
        bots = {str(r[0]) for r in db.execute("SELECT id FROM bots WHERE id = ANY(%s::uuid[])", (ledger.bots,))}
        keys = {str(r[0]) for r in db.execute("SELECT id FROM exchange_keys WHERE id = ANY(%s::uuid[]) "
                                              "AND status = 'active'", (ledger.keys,))}
        names = {str(r[0]): r[1] for r in db.execute("SELECT id, name FROM bots WHERE id = ANY(%s::uuid[])",
                                                     (list(ledger.renames),))}
    acknowledged = {"registrations": len(ledger.registered), "bots created": len(ledger.bots),
                    "exchange keys linked": len(ledger.keys)}
    found = {"registrations": len(users), "bots created": len(bots), "exchange keys linked": len(keys)}
    # A rename is kept when the bot's name is its last acknowledged one, or one sent after it whose
    # answer was lost (it may have committed just before the connection went).
    renames_acked = sum(acked for attempts in ledger.renames.values() for _, acked in attempts)
    renames_kept = 0
    for bot_id, attempts in ledger.renames.items():
        last = max((i for i, (_, acked) in enumerate(attempts) if acked), default=None)
        if last is not None and names.get(bot_id) in {name for name, _ in attempts[last:]}:
            renames_kept += 1
    acknowledged["bots whose last acknowledged rename is kept"] = sum(
        any(acked for _, acked in attempts) for attempts in ledger.renames.values())
    found["bots whose last acknowledged rename is kept"] = renames_kept
    missing = {k: acknowledged[k] - found[k] for k in acknowledged if acknowledged[k] != found[k]}

    failures = []
    if missing:
        failures.append(f"acknowledged writes missing: {missing}")
    if not renames_acked:
        failures.append("no rename was acknowledged at all")
    bad = {k: n for k, n in ledger.answers.items()
           if k[2] in ("timeout", "connection-error") or (k[2].startswith("5") and k[2] != "503")}
    if bad:
        failures.append(f"answers other than 2xx/4xx/503: {dict(bad)}")
    routes = {route for _, route, _ in ledger.answers}
    for outage in outages:
        if not outage.reported:
            failures.append(f"/ready never answered 503 naming {outage.dependency} while it was down")
        if outage.ready_at is None:
            failures.append(f"/ready did not answer 200 again within 60 s of {outage.dependency} restarting")
        never = sorted(routes - set(outage.recovered))
        if never:
            failures.append(f"after {outage.dependency} restarted, never succeeded again: {', '.join(never)}")
    kept = service.api.poll() is None and service.worker.poll() is None
    if not kept:
        failures.append("the API or the worker process exited")
    return Report(ledger, outages, missing, acknowledged, found, kept, failures)


def print_report(report: Report) -> None:
    ledger = report.ledger
    print("\n/ready timeline (seconds since the load started):")
    marks = [(o.stopped_at, f"--- {o.dependency} stopped") for o in report.outages]
    marks += [(o.started_at, f"--- {o.dependency} started again") for o in report.outages]
    events = sorted([(t, f"{status or '---'} {detail}") for t, status, detail in ledger.ready] + marks)
    for t, text in events:
        print(f"  {t:7.2f}  {text}")
    print("\nanswers by window, route and status:")
    windows = list(dict.fromkeys(w for w, _, _ in ledger.answers))
    for window in windows:
        print(f"  {window}")
        per_route: dict[str, list[str]] = defaultdict(list)
        for (w, route, status), n in sorted(ledger.answers.items()):
            if w == window:
                per_route[route].append(f"{status}:{n}")
        for route, counts in sorted(per_route.items()):
            print(f"    {route:<28} {' '.join(counts)}")
    for outage in report.outages:
        ready = f"{max(outage.ready_at - outage.started_at, 0):.1f} s" if outage.ready_at is not None else "never"
        print(f"\n{outage.dependency}: down {outage.started_at - outage.stopped_at:.1f} s; /ready reported it: "
              f"{'yes' if outage.reported else 'NO'}; /ready 200 again {ready} after the restart")
        for route, seconds in sorted(outage.recovered.items(), key=lambda kv: kv[1]):
            print(f"    {route:<28} first 2xx {seconds:5.1f} s after the restart")
    print("\nacknowledged writes (2xx) and what the database holds afterwards:")
    for name, count in report.acknowledged.items():
        print(f"    {name:<45} acknowledged {count:>5}   found {report.found[name]:>5}")
    print(f"API and worker processes: {'the same ones throughout' if report.processes_kept else 'NOT the same'}")
    print("\nRESULT: " + ("the service recovered by itself and lost no acknowledged write" if report.ok
                          else "FAILED\n  " + "\n  ".join(report.failures)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down", type=float, default=4, help="seconds each server stays down")
    parser.add_argument("--settle", type=float, default=8, help="seconds of load before, between and after")
    parser.add_argument("--rate", type=float, default=1.0, help="scale every lane's request rate")
    parser.add_argument("--api-workers", type=int, default=1)
    args = parser.parse_args()
    with running_service(args.api_workers) as service:
        print(f"faults: API {service.base_url} (pid {service.api.pid}), worker pid {service.worker.pid}, "
              f"PostgreSQL :{service.postgres.port}, Redis :{service.redis.port}; load average "
              f"{os.getloadavg()[0]:.2f}")
        report = asyncio.run(drill(service, down=args.down, settle=args.settle, rate=args.rate))
        print_report(report)
        if not report.ok:
            kept = Path(tempfile.mkdtemp(prefix="quorum-faults-logs-"))
            for name in ("api", "worker"):
                shutil.copy(service.logs / f"{name}.log", kept)
            print(f"(the API's and the worker's logs are kept in {kept})", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
