"""Client order ids, order intents and market rules: the pure parts of the exchange interface."""

from __future__ import annotations

import re
import uuid

import pytest

from workers.exchanges.base import MarketRules, OrderIntent, OrderType, Side, client_order_id

# Bybit orderLinkId and Binance newClientOrderId: at most 36; OKX clOrdId: at most 32, alphanumeric.
SAFE_EVERYWHERE = re.compile(r"[a-z][a-z0-9]{1,31}")


def test_client_order_id_is_the_same_for_the_same_bot_slot_symbol_and_leg():
    bot = uuid.UUID("00000000-0000-4000-8000-000000000001")

    first = client_order_id(bot, 1_700_000_000_000, "BTC/USDT:USDT", "entry")
    again = client_order_id(str(bot), "1700000000000", "BTC/USDT:USDT", "entry")

    assert first == again


def test_client_order_id_fits_every_exchange_limit_and_charset():
    ids = [client_order_id(uuid.uuid4(), slot, "ETH/USDT:USDT", "take_profit") for slot in range(200)]

    assert all(SAFE_EVERYWHERE.fullmatch(i) for i in ids)
    assert {len(i) for i in ids} == {31}


def test_client_order_id_differs_when_any_part_differs():
    base = ("bot-1", 42, "BTC/USDT:USDT", "entry")
    variants = [
        ("bot-2", 42, "BTC/USDT:USDT", "entry"),
        ("bot-1", 43, "BTC/USDT:USDT", "entry"),
        ("bot-1", 42, "ETH/USDT:USDT", "entry"),
        ("bot-1", 42, "BTC/USDT:USDT", "stop_loss"),
        ("bot-14", 2, "BTC/USDT:USDT", "entry"),  # parts do not run into each other
    ]

    assert len({client_order_id(*base), *(client_order_id(*v) for v in variants)}) == 1 + len(variants)


def test_order_intent_refuses_what_no_exchange_would_take():
    cid = client_order_id("bot-1", 1, "BTC/USDT:USDT", "entry")
    common = {"symbol": "BTC/USDT:USDT", "side": Side.BUY}

    with pytest.raises(ValueError, match="limit order needs a price"):
        OrderIntent(client_order_id=cid, type=OrderType.LIMIT, amount=1.0, **common)
    with pytest.raises(ValueError, match="amount"):
        OrderIntent(client_order_id=cid, type=OrderType.MARKET, amount=0.0, **common)
    with pytest.raises(ValueError, match="client_order_id"):
        OrderIntent(client_order_id="x" * 37, type=OrderType.MARKET, amount=1.0, **common)
    with pytest.raises(ValueError, match="client_order_id"):
        OrderIntent(client_order_id="has space", type=OrderType.MARKET, amount=1.0, **common)
    with pytest.raises(ValueError, match="stop_loss"):
        OrderIntent(client_order_id=cid, type=OrderType.MARKET, amount=1.0, stop_loss=float("nan"), **common)


def test_amounts_round_down_to_the_step_and_prices_to_the_nearest_tick():
    rules = MarketRules(symbol="BTC/USDT:USDT", min_amount=0.001, amount_step=0.001, price_tick=0.5, min_notional=5)

    assert rules.round_amount(0.0129) == 0.012
    assert rules.round_amount(0.1 + 0.2) == 0.3  # binary noise does not cost a step
    assert rules.round_price(100.26) == 100.5
    assert rules.round_price(100.24) == 100.0


def test_rounding_leaves_values_alone_where_the_exchange_sets_no_step():
    rules = MarketRules(symbol="X/Y", min_amount=None, amount_step=None, price_tick=None, min_notional=None)

    assert (rules.round_amount(0.123456789), rules.round_price(1.23456789)) == (0.123456789, 1.23456789)
