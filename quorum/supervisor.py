"""`quorum run`: the whole service on one machine — embedded servers unless URLs are set, then API, worker, beat.

A child (or the embedded Redis) that dies is started again after a delay that doubles with each death in a
row (1 s up to 30 s, back to 1 s once it has stayed up a minute), and each restart is said on stderr. Startup
waits until each child really answers (the API's /ready, the worker's Celery ping), for as long as a loaded
machine needs, not a fixed time.
Ctrl-C (or SIGTERM) stops every process it started, the servers last; the data folder is kept for next time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from quorum.embedded import EmbeddedPostgres, EmbeddedRedis
from quorum.settings import DEV_SECRET_KEY, load_settings, repo_root

EMBEDDED_DATABASE = "quorum"
READY_TIMEOUT_SECONDS = 300.0  # first start on a small loaded machine: imports, migrations, warm-up

Probe = Callable[[], bool]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("EMBEDDED_PG_PORT", "54329")))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", "63799")))
    # One API process is bound by its one event loop (~1 ms of Python per database request); two use both
    # cores of a small machine while PostgreSQL waits on the network (bench/load.py measures it).
    parser.add_argument("--api-workers", type=int,
                        default=int(os.environ.get("WEB_CONCURRENCY") or min(os.cpu_count() or 1, 2)),
                        help="API processes (default: WEB_CONCURRENCY, else 2 or the number of CPUs if fewer)")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_SECONDS,
                        help=f"seconds to wait for every process to answer (default {READY_TIMEOUT_SECONDS:g})")


class RestartBackoff:
    """How long to wait before starting a dead child again: `first`, doubled for each death in a row up to `cap`;
    a child that stayed up `stable_after` seconds counts as recovered, so its next death waits `first` again."""

    def __init__(self, first: float = 1.0, cap: float = 30.0, stable_after: float = 60.0) -> None:
        self.first, self.cap, self.stable_after = first, cap, stable_after
        self.deaths_in_a_row = 0

    def delay_after(self, uptime: float) -> float:
        if uptime >= self.stable_after:
            self.deaths_in_a_row = 0
        delay = min(self.first * 2**self.deaths_in_a_row, self.cap)
        self.deaths_in_a_row += 1
        return delay


class Child:
    """One supervised process: how to start it, how to tell it is ready, and its restart state."""

    def __init__(self, name: str, launch: Callable[[], subprocess.Popen[bytes]], ready: Probe | None,
                 backoff: RestartBackoff) -> None:
        self.name, self.launch, self.ready, self.backoff = name, launch, ready, backoff
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None  # set while it is dead and waiting for its delay
        self.restarts = 0
        self.said_ready = False

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.restart_at = None
        self.proc = self.launch()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def is_ready(self) -> bool:
        if not self.running:
            return False
        try:
            return self.ready() if self.ready is not None else True
        except Exception:  # a probe that cannot reach the child yet says "not yet"
            return False


class Supervisor:
    def __init__(self, *, first_delay: float = 1.0, max_delay: float = 30.0, stable_after: float = 60.0,
                 say: Callable[[str], None] | None = None) -> None:
        self.children: list[Child] = []
        self.servers: list[Child] = []  # embedded servers: watched and restarted like children, stopped last
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.stopping = False
        self._backoff = (first_delay, max_delay, stable_after)
        self.say = say or (lambda line: print(f"quorum: {line}", file=sys.stderr, flush=True))

    def spawn(self, name: str, argv: list[str], env: dict[str, str], ready: Probe | None = None,
              log: Path | None = None) -> Child:
        """Start `argv` as the child `name`; `ready` tells when it serves (None: as soon as it runs). With `log`,
        its output is appended to that file instead of the terminal (a restart appends to the same file)."""
        def launch() -> subprocess.Popen[bytes]:
            # Own process group: the terminal's Ctrl-C reaches only the supervisor, which stops children in order.
            if log is None:
                return subprocess.Popen(argv, env=env, start_new_session=True)
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:  # the child keeps its own copy of the descriptor
                return subprocess.Popen(argv, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)

        child = Child(name, launch, ready, RestartBackoff(*self._backoff))
        child.start()
        self.children.append(child)
        return child

    def watch_redis(self, redis: EmbeddedRedis) -> None:
        """Restart the embedded Redis (already started) if it dies, as a child is; it is stopped after the children."""
        self.redis = redis

        def launch() -> subprocess.Popen[bytes]:
            redis.start()  # same port and data folder: its append-only file brings the data back
            assert redis.process is not None
            return redis.process

        server = Child("redis", launch, None, RestartBackoff(*self._backoff))
        server.proc, server.started_at = redis.process, time.monotonic()
        self.servers.append(server)

    def check(self) -> None:
        """One round: notice children that died, and start again those whose delay has passed."""
        if self.stopping:
            return
        now = time.monotonic()
        for child in [*self.servers, *self.children]:
            if child.proc is None:
                continue
            if child.restart_at is None and child.proc.poll() is not None:
                uptime = now - child.started_at
                delay = child.backoff.delay_after(uptime)
                child.restart_at = now + delay
                self.say(f"{child.name} exited with code {child.proc.returncode} after {uptime:.0f} s; "
                         f"restarting it in {delay:g} s")
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                child.said_ready = False
                try:
                    child.start()
                except Exception as exc:  # e.g. it did not listen in time: the next round looks at it again
                    self.say(f"{child.name} did not start again ({exc})")
                    continue
                self.say(f"{child.name} restarted (pid {child.pid}, restart {child.restarts})")

    def wait_ready(self, timeout: float, interval: float = 0.5) -> None:
        """Return once every child answers its probe; restart those that die meanwhile. TimeoutError names the
        children still not ready after `timeout` seconds."""
        started = time.monotonic()
        waiting = list(self.children)
        while waiting:
            self.check()
            for child in list(waiting):
                if child.is_ready():
                    waiting.remove(child)
                    child.said_ready = True
                    self.say(f"{child.name} ready after {time.monotonic() - started:.1f} s (pid {child.pid})")
            if not waiting:
                return
            if time.monotonic() - started > timeout:
                names = ", ".join(c.name for c in waiting)
                raise TimeoutError(f"not ready after {timeout:g} s: {names}")
            time.sleep(interval)

    def supervise(self, interval: float = 0.5) -> None:
        """Keep every child running until interrupted; say when a restarted one answers again."""
        while not self.stopping:
            self.check()
            for child in self.children:
                if not child.said_ready and child.is_ready():
                    child.said_ready = True
                    self.say(f"{child.name} ready again (pid {child.pid})")
            time.sleep(interval)

    def stop(self) -> None:
        self.stopping = True
        running = [c for c in self.children if c.running]
        for child in running:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in time; killing it")
                child.proc.kill()
                child.proc.wait()
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop(quiet=True)


def answers_http(url: str) -> Probe:
    """Ready when GET `url` answers 2xx."""
    def probe() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a local http URL we built
            return 200 <= response.status < 300
    return probe


def answers_celery_ping(broker_url: str, node: str) -> Probe:
    """Ready when the Celery worker `node` answers a ping through the broker: it consumes and replies."""
    from celery import Celery

    app = Celery("quorum-run", broker=broker_url)
    # A probe says "not yet" within a second or so when Redis is down, instead of retrying for seconds.
    app.conf.update(broker_connection_timeout=1.0, broker_connection_max_retries=0, task_publish_retry=False,
                    broker_transport_options={"max_retries": 0})

    def probe() -> bool:
        return bool(app.control.ping(destination=[node], timeout=1.0))
    return probe


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    data_home = Path(env.get("DATA_HOME", repo_root() / ".quorum")).resolve()
    supervisor = Supervisor()

    def on_signal(signum: int, _frame: object) -> None:
        # Ctrl-C may arrive twice (from the terminal and forwarded by `uv run`); stop once, in order.
        if not supervisor.stopping:
            supervisor.stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (e.g. from a script)
    try:
        if not env.get("DATABASE_URL"):
            supervisor.postgres = EmbeddedPostgres(data_home / "postgres", args.pg_port)
            supervisor.postgres.start()
            env["DATABASE_URL"] = supervisor.postgres.url.rsplit("/", 1)[0] + "/" + EMBEDDED_DATABASE
            print(f"quorum: embedded PostgreSQL on 127.0.0.1:{args.pg_port} (data in {data_home / 'postgres'})")
        if not env.get("REDIS_URL"):
            supervisor.redis = EmbeddedRedis(data_home / "redis", args.redis_port)  # stopped even if start fails
            supervisor.redis.start()
            supervisor.watch_redis(supervisor.redis)
            env["REDIS_URL"] = supervisor.redis.url
            print(f"quorum: embedded Redis on 127.0.0.1:{args.redis_port} (data in {data_home / 'redis'})")
        python = sys.executable
        quorum = [python, "-m", "quorum.cli"]
        _choose_market_data(env, quorum)
        # argon2id takes a whole core per hash: leave each API process's event loop a core of its own, so a
        # burst of logins queues for the hashing threads instead of slowing every other request.
        env.setdefault("PASSWORD_HASH_THREADS", str(max(1, (os.cpu_count() or 1) // args.api_workers - 1)))
        settings = load_settings(env)
        settings.check(api=True)  # it starts the API too
        if settings.secret_key == DEV_SECRET_KEY:
            print("quorum: using the development SECRET_KEY; production refuses it", file=sys.stderr)

        subprocess.run([*quorum, "db", "bootstrap"], env=env, check=True)  # roles and migrations, as the owner
        base = f"http://127.0.0.1:{settings.port}"
        worker_node = f"worker@{socket.gethostname()}"
        supervisor.spawn("api", [*quorum, "serve", "--workers", str(args.api_workers)], env,
                         ready=answers_http(f"{base}/ready"))
        logs = data_home / "logs"
        supervisor.spawn("worker", [*quorum, "worker", "--name", worker_node], env,
                         ready=answers_celery_ping(settings.redis_url, worker_node), log=logs / "worker.log")
        supervisor.spawn("beat", [*quorum, "beat", "--schedule", str(data_home / "celerybeat-schedule")], env,
                         log=logs / "beat.log")
        try:
            supervisor.wait_ready(args.ready_timeout)
        except TimeoutError as exc:
            print(f"quorum: {exc}; stopping", file=sys.stderr)
            return 1
        print(next_steps(base, logs, env.get("MARKET_DATA", "")), flush=True)
        supervisor.supervise()
        return 0
    except KeyboardInterrupt:
        print("\nquorum: stopping", flush=True)
        return 0
    finally:
        supervisor.stop()


def next_steps(base: str, logs: Path, market_data: str) -> str:
    """The block `quorum run` ends its start-up with: where things are and what to do first."""
    register = (f"curl -s {base}/v1/auth/register -H 'content-type: application/json' "
                "-d '{\"email\": \"you@example.com\", \"password\": \"<a long passphrase>\"}'")
    return "\n".join([
        "",
        "quorum: ready. What next:",
        f"  API docs     {base}/schema  (try any route from the page)",
        f"  register     {register}",
        "               then POST /v1/auth/login for tokens, POST /v1/bots for a paper bot, and read its",
        "               decisions at GET /v1/bots/{id}/decisions (each says why it trades or waits)",
        f"  the app      cd mobile && npm ci && EXPO_PUBLIC_API_URL={base} npx expo start",
        f"  market data  {market_data or 'as configured'} candles",
        f"  logs         the API here; the worker and beat in {logs}/worker.log and beat.log",
        "  stop         Ctrl-C stops everything",
        "",
    ])


def _choose_market_data(env: dict[str, str], quorum: list[str]) -> None:
    """Live public candles when the exchanges answer, else recorded ones (unless MARKET_DATA says which):
    the market-data side decides (`quorum market-data`), so the kernel knows nothing of markets."""
    if env.get("MARKET_DATA"):
        return
    chosen = json.loads(subprocess.run([*quorum, "market-data"], env=env, check=True, stdout=subprocess.PIPE).stdout)
    for name, value in chosen.items():
        env.setdefault(name, value)
