"""argon2id password hashing, run in worker threads so the event loop keeps serving other requests."""

from __future__ import annotations

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's argon2id baseline (m=19 MiB, t=2, p=1): strong, and ~20 ms per hash on one core.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# A real hash of a random password: verifying against it costs what a real check costs,
# so a login for an unknown email takes as long as one with a wrong password.
_DUMMY_HASH = _hasher.hash("quorum-timing-equaliser")


class PasswordHashing:
    def __init__(self, threads: int) -> None:
        self._limiter = anyio.CapacityLimiter(max(threads, 1))

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(_hasher.hash, password, limiter=self._limiter)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await anyio.to_thread.run_sync(_verify, password_hash, password, limiter=self._limiter)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
