"""Both Bybit adapters (ccxt's bybit and pybit) against the fake Bybit v5: real HTTP, real signatures.

Every test runs once per adapter; what it asserts is what a trading cycle would see.
"""

from __future__ import annotations

import re
import time
import traceback

import pytest

from tests.fakes.bybit_v5 import Fault
from workers.exchanges.base import (
    Exchange,
    OrderIntent,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    client_order_id,
)
from workers.exchanges.errors import (
    AuthenticationFailed,
    DuplicateClientOrderId,
    ErrorAction,
    InsufficientFunds,
    OrderNotFound,
    OrderOutcomeUnknown,
    PermissionDenied,
    RateLimited,
    TemporaryError,
    retry_read,
)

BTC = "BTC/USDT:USDT"


def intent(leg: str = "entry", **changes: object) -> OrderIntent:
    fields: dict[str, object] = {
        "client_order_id": client_order_id("bot-1", time.time_ns(), BTC, leg),
        "symbol": BTC,
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "amount": 0.01,
        "price": 50_000.0,
    }
    fields.update(changes)
    return OrderIntent(**fields)  # type: ignore[arg-type]


def assert_no_secret(error: BaseException, secret: str) -> None:
    shown = [str(error), repr(error), "".join(traceback.format_exception(error)), *map(str, error.args)]
    for text in shown:
        assert secret not in text
        assert not re.search(r"origin_string\[(?!\*\*\*\])", text), "the signed payload Bybit echoed is masked"


async def test_adapters_implement_the_one_exchange_interface(exchange):
    assert isinstance(exchange, Exchange)


async def test_order_created_with_a_client_id_is_found_by_that_id(exchange):
    wanted = intent()

    placed = await exchange.create_order(wanted)
    found = await exchange.fetch_order_by_client_id(BTC, wanted.client_order_id)

    assert placed.client_order_id == wanted.client_order_id
    assert found is not None
    assert (found.id, found.client_order_id) == (placed.id, wanted.client_order_id)
    assert (found.symbol, found.side, found.type, found.status) == (BTC, Side.BUY, OrderType.LIMIT, OrderStatus.OPEN)
    assert (found.amount, found.price) == (0.01, 50_000.0)


async def test_unknown_client_id_is_looked_up_as_none(exchange):
    assert await exchange.fetch_order_by_client_id(BTC, client_order_id("bot-1", 1, BTC, "never")) is None


async def test_lost_create_response_is_resolved_by_lookup_and_never_sent_twice(exchange, fake, key):
    wanted = intent(type=OrderType.MARKET, price=None)
    fake.inject("/v5/order/create", Fault.lose_response())
    calls_before = fake.create_calls

    with pytest.raises(OrderOutcomeUnknown) as lost:
        await exchange.create_order(wanted)
    found = await exchange.fetch_order_by_client_id(BTC, wanted.client_order_id)

    assert lost.value.action is ErrorAction.LOOK_UP_ORDER
    assert fake.create_calls == calls_before + 1
    assert [o.order_link_id for o in fake.orders(key[0])] == [wanted.client_order_id]
    assert found is not None and found.status is OrderStatus.FILLED and found.filled == 0.01


async def test_create_answered_after_the_client_gave_up_is_resolved_by_lookup(connect, fake, key):
    exchange = connect(*key, timeout_s=0.5)
    wanted = intent()
    fake.inject("/v5/order/create", Fault.delay(1.5))
    calls_before = fake.create_calls

    with pytest.raises(OrderOutcomeUnknown):
        await exchange.create_order(wanted)
    found = await exchange.fetch_order_by_client_id(BTC, wanted.client_order_id)

    assert fake.create_calls == calls_before + 1
    assert found is not None and found.client_order_id == wanted.client_order_id


async def test_duplicate_client_id_is_refused_and_the_existing_order_is_found_by_lookup(exchange, fake, key):
    wanted = intent()
    first = await exchange.create_order(wanted)

    with pytest.raises(DuplicateClientOrderId) as duplicate:
        await exchange.create_order(wanted)
    found = await exchange.fetch_order_by_client_id(BTC, wanted.client_order_id)

    assert duplicate.value.action is ErrorAction.LOOK_UP_ORDER
    assert duplicate.value.code == "110072"
    assert found is not None and found.id == first.id
    assert len(fake.orders(key[0])) == 1


async def test_wrong_secret_pauses_the_bot_and_the_secret_is_never_shown(connect, key):
    api_key, _ = key
    wrong_secret = "wrong-secret-0123456789abcdef"
    exchange = connect(api_key, wrong_secret)

    with pytest.raises(AuthenticationFailed) as refused:
        await exchange.fetch_balance()

    assert refused.value.action is ErrorAction.PAUSE_BOT
    assert refused.value.code == "10004"
    assert_no_secret(refused.value, wrong_secret)
    assert wrong_secret not in repr(exchange)


async def test_revoked_key_pauses_the_bot(exchange, fake):
    fake.inject("/v5/account/wallet-balance", Fault.auth_failure())

    with pytest.raises(AuthenticationFailed) as refused:
        await exchange.fetch_balance()

    assert refused.value.action is ErrorAction.PAUSE_BOT


async def test_read_only_key_cannot_place_orders_and_pauses_the_bot(connect, new_key, fake):
    api_key, secret = new_key(read_only=True)
    exchange = connect(api_key, secret)

    with pytest.raises(PermissionDenied) as denied:
        await exchange.create_order(intent())

    assert denied.value.action is ErrorAction.PAUSE_BOT
    assert_no_secret(denied.value, secret)
    assert fake.orders(api_key) == []


async def test_rate_limit_asks_to_back_off_until_the_window_resets(exchange, fake):
    await exchange.market_rules(BTC)  # ccxt loads markets first; the limit below hits the balance read
    fake.inject("/v5/account/wallet-balance", Fault.rate_limit(reset_in_ms=3_000))

    with pytest.raises(RateLimited) as limited:
        await exchange.fetch_balance()

    assert limited.value.action is ErrorAction.BACK_OFF
    assert limited.value.retry_after is not None and 1.0 < limited.value.retry_after <= 3.0


async def test_order_beyond_the_balance_is_skipped_and_the_user_notified(connect, new_key, fake):
    api_key, secret = new_key(usdt=100.0)
    exchange = connect(api_key, secret)

    with pytest.raises(InsufficientFunds) as short:
        await exchange.create_order(intent(amount=1.0))

    assert short.value.action is ErrorAction.SKIP_AND_NOTIFY
    assert fake.orders(api_key) == []


async def test_key_that_can_withdraw_and_has_no_ip_whitelist_is_flagged(connect, new_key):
    exchange = connect(*new_key(can_withdraw=True))

    check = await exchange.check_key()

    assert (check.can_withdraw, check.ip_whitelisted, check.can_trade, check.read_only) == (True, False, True, False)
    assert check.notes


async def test_trade_only_key_bound_to_an_ip_passes_the_check(connect, new_key):
    exchange = connect(*new_key(can_withdraw=False, ips=["203.0.113.7"]))

    check = await exchange.check_key()

    assert (check.can_withdraw, check.ip_whitelisted, check.can_trade) == (False, True, True)


async def test_read_only_key_is_reported_unable_to_trade(connect, new_key):
    check = await connect(*new_key(read_only=True)).check_key()

    assert (check.can_trade, check.read_only) == (False, True)


async def test_retry_read_recovers_a_read_from_a_passing_gateway_error(exchange, fake):
    await exchange.market_rules(BTC)
    fake.inject("/v5/account/wallet-balance", Fault.http_status(502))

    with pytest.raises(TemporaryError) as once:
        await exchange.fetch_balance()
    fake.inject("/v5/account/wallet-balance", Fault.http_status(502))
    balance = await retry_read(exchange.fetch_balance, attempts=3, backoff=0.01)

    assert once.value.action is ErrorAction.RETRY_READ
    assert balance["USDT"].total == 10_000.0


async def test_retry_read_refuses_order_creation_before_anything_is_sent(exchange, fake):
    calls_before = fake.create_calls

    with pytest.raises(TypeError):
        await retry_read(exchange.create_order, intent())

    assert fake.create_calls == calls_before


async def test_gateway_error_on_create_is_an_unknown_outcome_not_a_retryable_read(exchange, fake):
    await exchange.market_rules(BTC)
    fake.inject("/v5/order/create", Fault.http_status(502))

    with pytest.raises(OrderOutcomeUnknown) as unknown:
        await exchange.create_order(intent())

    assert not isinstance(unknown.value, TemporaryError)


async def test_market_order_opens_a_position_and_uses_margin(exchange):
    await exchange.create_order(intent(type=OrderType.MARKET, price=None, amount=0.02))

    positions = await exchange.fetch_positions([BTC, "ETH/USDT:USDT"])
    balance = await exchange.fetch_balance()

    assert len(positions) == 1
    position = positions[0]
    assert (position.symbol, position.side, position.amount, position.entry_price) == (
        BTC,
        PositionSide.LONG,
        0.02,
        60_000.0,
    )
    assert balance["USDT"].total == 10_000.0
    assert balance["USDT"].free == pytest.approx(10_000.0 - 0.02 * 60_000 / 10)


async def test_reduce_only_order_closes_the_position(exchange):
    await exchange.create_order(intent("entry", type=OrderType.MARKET, price=None, amount=0.02))
    await exchange.create_order(
        intent("close", type=OrderType.MARKET, price=None, amount=0.02, side=Side.SELL, reduce_only=True)
    )

    assert await exchange.fetch_positions([BTC]) == []


async def test_limit_order_rests_until_cancelled_by_client_id(exchange):
    resting = intent()
    await exchange.create_order(resting)

    open_before = await exchange.fetch_open_orders(BTC)
    await exchange.cancel_order(BTC, client_order_id=resting.client_order_id)
    open_after = await exchange.fetch_open_orders(BTC)
    cancelled = await exchange.fetch_order_by_client_id(BTC, resting.client_order_id)

    assert [o.client_order_id for o in open_before] == [resting.client_order_id]
    assert open_after == []
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELED


async def test_cancelling_an_order_that_does_not_exist_is_order_not_found(exchange):
    with pytest.raises(OrderNotFound):
        await exchange.cancel_order(BTC, client_order_id=client_order_id("bot-1", 1, BTC, "ghost"))


async def test_market_rules_come_from_the_instrument_and_amounts_are_rounded_down_to_its_step(exchange, fake, key):
    rules = await exchange.market_rules(BTC)
    await exchange.create_order(intent(amount=0.0129))

    assert (rules.min_amount, rules.amount_step, rules.price_tick, rules.min_notional) == (0.001, 0.001, 0.1, 5.0)
    assert rules.max_leverage == 100.0
    assert [str(o.qty) for o in fake.orders(key[0])] == ["0.012"]


async def test_setting_the_leverage_it_already_has_is_not_an_error(exchange, fake, key):
    await exchange.set_leverage(BTC, 5)
    await exchange.set_leverage(BTC, 5)
    await exchange.create_order(intent(leverage=5))

    assert fake.accounts[fake.keys[key[0]].account].leverage["BTCUSDT"] == 5
