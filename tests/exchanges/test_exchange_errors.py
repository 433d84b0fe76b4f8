"""The error taxonomy: what each error asks the caller to do, and that only reads are ever retried."""

from __future__ import annotations

import functools

import pytest

from workers.exchanges.bybit import bybit_error
from workers.exchanges.errors import (
    AuthenticationFailed,
    DuplicateClientOrderId,
    ErrorAction,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    NetworkError,
    OrderNotFound,
    OrderOutcomeUnknown,
    PermissionDenied,
    RateLimited,
    TemporaryError,
    redact,
    retry_read,
    writes_to_exchange,
)


class FlakyRead:
    """A read that fails with `error` for its first `failures` calls, then answers."""

    def __init__(self, failures: int, error: ExchangeError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "balance"


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (AuthenticationFailed("x"), ErrorAction.PAUSE_BOT),
        (PermissionDenied("x"), ErrorAction.PAUSE_BOT),
        (RateLimited("x", retry_after=2.0), ErrorAction.BACK_OFF),
        (InsufficientFunds("x"), ErrorAction.SKIP_AND_NOTIFY),
        (NetworkError("x"), ErrorAction.RETRY_READ),
        (ExchangeUnavailable("x"), ErrorAction.RETRY_READ),
        (OrderOutcomeUnknown("x"), ErrorAction.LOOK_UP_ORDER),
        (DuplicateClientOrderId("x"), ErrorAction.LOOK_UP_ORDER),
        (InvalidOrder("x"), ErrorAction.FAIL),
        (OrderNotFound("x"), ErrorAction.FAIL),
    ],
)
def test_each_error_says_what_to_do(error, action):
    assert error.action is action


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (10003, AuthenticationFailed),
        (10004, AuthenticationFailed),
        (33004, AuthenticationFailed),
        (10005, PermissionDenied),
        (10010, PermissionDenied),
        (10006, RateLimited),
        (10018, RateLimited),
        (110007, InsufficientFunds),
        (110012, InsufficientFunds),
        (110001, OrderNotFound),
        (110072, DuplicateClientOrderId),
        (10002, TemporaryError),
        (10016, ExchangeUnavailable),
        (110017, InvalidOrder),
    ],
)
def test_bybit_ret_codes_map_onto_the_taxonomy(code, kind):
    assert type(bybit_error(code, "msg", creating=False)) is kind


def test_bybit_server_error_on_create_is_an_unknown_outcome_not_a_retry():
    error = bybit_error(10016, "Internal server error", creating=True)

    assert isinstance(error, OrderOutcomeUnknown) and not isinstance(error, TemporaryError)


async def test_retry_read_retries_a_temporary_failure_until_the_read_answers():
    read = FlakyRead(failures=2, error=NetworkError("connection reset"))

    assert await retry_read(read, attempts=3, backoff=0) == "balance"
    assert read.calls == 3


async def test_retry_read_gives_up_after_its_attempts_with_the_last_error():
    read = FlakyRead(failures=5, error=ExchangeUnavailable("502"))

    with pytest.raises(ExchangeUnavailable):
        await retry_read(read, attempts=2, backoff=0)
    assert read.calls == 2


@pytest.mark.parametrize(
    "error", [RateLimited("slow down"), AuthenticationFailed("bad key"), OrderOutcomeUnknown("lost")]
)
async def test_retry_read_does_not_retry_what_is_not_temporary(error):
    read = FlakyRead(failures=1, error=error)

    with pytest.raises(type(error)):
        await retry_read(read, attempts=3, backoff=0)
    assert read.calls == 1


async def test_retry_read_refuses_anything_that_writes_to_the_exchange():
    sent = []

    @writes_to_exchange
    async def create_order(intent: str) -> None:
        sent.append(intent)

    with pytest.raises(TypeError):
        await retry_read(create_order, "buy")
    with pytest.raises(TypeError):
        await retry_read(functools.partial(create_order, "buy"))
    assert sent == []


def test_redact_masks_secrets_and_the_signing_payload_bybit_echoes():
    text = 'key s3cr3t-value: {"retCode":10004,"retMsg":"error sign! origin_string[1700000000000k5000category=linear]"}'

    shown = redact(text, "s3cr3t-value", None)

    assert "s3cr3t-value" not in shown
    assert "category=linear" not in shown
    assert "retCode" in shown and "origin_string[***]" in shown
