"""Exchange errors that say what the caller should do (freqtrade's taxonomy, Hummingbot's order lookup).

Every adapter turns its library's errors into these, so a trading cycle branches on `error.action`
and never on a library's exception classes or an exchange's numeric codes:

    PAUSE_BOT        the key is wrong, expired or lacks a permission: stop the bot, tell the user
    BACK_OFF         rate limited: wait `retry_after` seconds (when known) before the next request
    SKIP_AND_NOTIFY  not enough funds: drop this trade, tell the user, carry on next cycle
    RETRY_READ       a read failed for a passing reason: `retry_read` may try it again
    LOOK_UP_ORDER    an order may exist although we did not hear so: fetch it by client order id
    FAIL             nothing to retry: record the failure and carry on

Order creation is never retried: a create whose answer was lost raises `OrderOutcomeUnknown`, and
the caller resolves it by `fetch_order_by_client_id`, not by sending it again.

Messages never carry an API secret or a signed payload: adapters build them from the exchange's
code and message, passed through `redact`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypeVar

from workers.metrics import observe_exchange_error

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class ErrorAction(StrEnum):
    PAUSE_BOT = "pause_bot"
    BACK_OFF = "back_off"
    SKIP_AND_NOTIFY = "skip_and_notify"
    RETRY_READ = "retry_read"
    LOOK_UP_ORDER = "look_up_order"
    FAIL = "fail"


class ExchangeError(Exception):
    """Base of every exchange error; `action` says what to do, `code` is the exchange's own code if any."""

    action: ErrorAction = ErrorAction.FAIL

    def __init__(self, message: str, *, exchange: str | None = None, code: str | None = None) -> None:
        self.exchange = exchange
        self.code = code
        super().__init__(f"{exchange}: {message}" if exchange else message)
        # Every adapter classifies through these classes, so this counts each error once, as classified.
        observe_exchange_error(exchange, type(self).__name__, self.action.value)


class AuthenticationFailed(ExchangeError):
    """The exchange refused the key or its signature (wrong secret, revoked or expired key)."""

    action = ErrorAction.PAUSE_BOT


class PermissionDenied(ExchangeError):
    """The key is valid but may not do this (read-only key, missing trade permission, IP not whitelisted)."""

    action = ErrorAction.PAUSE_BOT


class RateLimited(ExchangeError):
    """Too many requests; `retry_after` is in seconds when the exchange said when to come back."""

    action = ErrorAction.BACK_OFF

    def __init__(
        self, message: str, *, exchange: str | None = None, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, exchange=exchange, code=code)
        self.retry_after = retry_after


class InsufficientFunds(ExchangeError):
    """The account cannot pay for the order (balance or margin)."""

    action = ErrorAction.SKIP_AND_NOTIFY


class TemporaryError(ExchangeError):
    """A failure that may pass by itself; safe to retry for reads only."""

    action = ErrorAction.RETRY_READ


class NetworkError(TemporaryError):
    """No usable answer: connection refused or dropped, timeout."""


class ExchangeUnavailable(TemporaryError):
    """The exchange answered that it cannot serve now (5xx, maintenance, overloaded)."""


class InvalidOrder(ExchangeError):
    """The exchange rejected the order as such (size, price, reduce-only, market rules)."""


class DuplicateClientOrderId(InvalidOrder):
    """An order with this client order id already exists: it is the one to look up, not an error to repeat."""

    action = ErrorAction.LOOK_UP_ORDER


class OrderNotFound(ExchangeError):
    """No order with this id (for example cancelling one that never existed)."""


class OrderOutcomeUnknown(ExchangeError):
    """A create request was sent but its answer was lost: the order may or may not exist.

    Deliberately not a TemporaryError, so nothing retries it; resolve it with `fetch_order_by_client_id`.
    """

    action = ErrorAction.LOOK_UP_ORDER


# Bybit echoes the string it expected us to sign in some error messages: that is a signed payload.
# Everything after it goes too (the payload may itself contain "]").
_ECHOED_PAYLOAD = re.compile(r"origin_string\[.*", re.DOTALL)
_MAX_MESSAGE = 500


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret and any echoed signing payload masked, cut to a readable length."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _ECHOED_PAYLOAD.sub("origin_string[***]", text)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def writes_to_exchange(method: F) -> F:
    """Mark an adapter method that changes state on the exchange; `retry_read` refuses to retry it."""
    method.writes_to_exchange = True  # type: ignore[attr-defined]
    return method


def _is_write(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return bool(getattr(fn, "writes_to_exchange", False))


async def retry_read(
    read: Callable[..., Awaitable[T]],
    *args: Any,
    attempts: int = 3,
    backoff: float = 0.5,
    **kwargs: Any,
) -> T:
    """Await `read(*args, **kwargs)`, retrying TemporaryError up to `attempts` times in all.

    Waits `backoff`, then twice that, and so on between attempts. Every other error is raised at once.
    Refuses methods marked `writes_to_exchange` (order creation, cancel, leverage): those are never retried.
    """
    if _is_write(read):
        raise TypeError(f"retry_read refuses {getattr(read, '__name__', read)!r}: it writes to the exchange")
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return await read(*args, **kwargs)
        except TemporaryError as exc:
            if attempt == attempts:
                raise
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "exchange read failed, retrying",
                extra={"error": type(exc).__name__, "attempt": attempt, "delay_s": delay},
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
