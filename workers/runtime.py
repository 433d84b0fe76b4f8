"""One event loop and one set of clients per worker process, kept for the life of the process.

Celery tasks are synchronous functions; they run their async work on this loop instead of creating
a loop per task (`asyncio.run`), so connection pools and exchange clients are reused.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from quorum.database import Database, create_app_engine
from quorum.settings import get_settings
from tenants.vault import LocalMasterKeys, Vault

T = TypeVar("T")


class WorkerRuntime:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="quorum-loop", daemon=True)
        self._thread.start()
        settings = get_settings()
        self.settings = settings
        self.database = Database(create_app_engine(settings))
        self.vault = Vault(LocalMasterKeys.from_setting(settings.master_keys))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the process's loop and wait for its result from the calling (task) thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def runtime() -> WorkerRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime()
        return _runtime
