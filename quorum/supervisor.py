"""`quorum run`: the whole service on one machine — embedded servers unless URLs are set, then API, worker, beat.

Ctrl-C (or SIGTERM) stops every process it started, the servers last; the data folder is kept for next time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from quorum.embedded import EmbeddedPostgres, EmbeddedRedis, wait_for_port
from quorum.settings import DEV_SECRET_KEY, load_settings, repo_root

EMBEDDED_DATABASE = "quorum"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("EMBEDDED_PG_PORT", "54329")))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", "63799")))
    # One API process is bound by its one event loop (~1 ms of Python per database request); two use both
    # cores of a small machine while PostgreSQL waits on the network (bench/load.py measures it).
    parser.add_argument("--api-workers", type=int,
                        default=int(os.environ.get("WEB_CONCURRENCY") or min(os.cpu_count() or 1, 2)),
                        help="API processes (default: WEB_CONCURRENCY, else 2 or the number of CPUs if fewer)")


class Supervisor:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.stopping = False

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        # Own process group: the terminal's Ctrl-C reaches only us, and we stop children in order.
        self.children.append((name, subprocess.Popen(argv, env=env, start_new_session=True)))

    def stop(self) -> None:
        self.stopping = True
        for _, proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in self.children:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"quorum: {name} did not stop in time; killing it", file=sys.stderr)
                proc.kill()
                proc.wait()
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop(quiet=True)


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
            supervisor.redis = EmbeddedRedis(data_home / "redis", args.redis_port)
            supervisor.redis.start()
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
        supervisor.spawn("api", [*quorum, "serve", "--workers", str(args.api_workers)], env)
        supervisor.spawn("worker", [*quorum, "worker"], env)
        supervisor.spawn("beat", [*quorum, "beat", "--schedule", str(data_home / "celerybeat-schedule")], env)
        wait_for_port(settings.port, 60)
        base = f"http://127.0.0.1:{settings.port}"
        print(f"\nquorum: API on {base}\nquorum: API docs at {base}/schema/swagger (also {base}/schema)\n"
              "quorum: press Ctrl-C to stop everything\n", flush=True)
        while True:
            for name, proc in supervisor.children:
                if proc.poll() is not None:
                    print(f"quorum: {name} exited with {proc.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nquorum: stopping", flush=True)
        return 0
    finally:
        supervisor.stop()


def _choose_market_data(env: dict[str, str], quorum: list[str]) -> None:
    """Live public candles when the exchanges answer, else recorded ones (unless MARKET_DATA says which):
    the market-data side decides (`quorum market-data`), so the kernel knows nothing of markets."""
    if env.get("MARKET_DATA"):
        return
    chosen = json.loads(subprocess.run([*quorum, "market-data"], env=env, check=True, stdout=subprocess.PIPE).stdout)
    for name, value in chosen.items():
        env.setdefault(name, value)
