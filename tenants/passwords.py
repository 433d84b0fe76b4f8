"""Passwords: how strong a new one is (zxcvbn), and argon2id hashing; both run in worker threads so the
event loop keeps serving other requests."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

# zxcvbn's score 3 of 4, "safely unguessable": about 10^10 guesses, out of reach of online guessing and
# costly offline against argon2id.
MIN_STRENGTH = 3
# zxcvbn refuses longer input and its cost grows with length (35 ms at 72 characters); a password whose
# first 72 characters are hard to guess is hard to guess.
_JUDGED_LENGTH = 72
_SERVICE_WORDS = ("quorum",)  # what an attacker tries first against this service's accounts

# OWASP's argon2id baseline (m=19 MiB, t=2, p=1): strong, and ~20 ms per hash on one core.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# A real hash of a random password: verifying against it costs what a real check costs,
# so a login for an unknown email takes as long as one with a wrong password.
_DUMMY_HASH = _hasher.hash("quorum-timing-equaliser")


def weakness(password: str, hints: Sequence[str] = ()) -> str | None:
    """Why `password` is too easy to guess, in words a person can act on (zxcvbn's warning and suggestions),
    or None when it is strong enough. `hints`: what the caller knows about the user (email, old password)."""
    verdict = zxcvbn(password[:_JUDGED_LENGTH], user_inputs=[*hints, *_SERVICE_WORDS])
    if verdict["score"] >= MIN_STRENGTH:
        return None
    feedback = verdict["feedback"]
    warning = f": {feedback['warning']}" if feedback["warning"] else "."
    return " ".join(["too easy to guess" + warning, *feedback["suggestions"]])


async def judge_new_password(password: str, hints: Sequence[str] = ()) -> str | None:
    """`weakness`, off the event loop (zxcvbn is pure Python and takes milliseconds)."""
    return await anyio.to_thread.run_sync(weakness, password, hints)


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
