"""Which exchanges a key may be linked to: the paper exchange and every exchange ccxt speaks.

A static list so the API need not import ccxt; tests/test_exchange_keys.py fails when it drifts from
the installed ccxt. Bybit trades through pybit, the others through ccxt.
"""

from __future__ import annotations

PAPER = "paper"

CCXT_EXCHANGES: frozenset[str] = frozenset({
    "alpaca", "apex", "aster", "backpack", "bequant", "bigone", "binance", "binancecoinm", "binanceus",
    "binanceusdm", "bingx", "bit2c", "bitbank", "bitbns", "bitfinex", "bitflyer", "bitget", "bithumb",
    "bitopro", "bitrue", "bitso", "bitstamp", "bitteam", "bittrade", "bitvavo", "blockchaincom", "blofin",
    "btcbox", "btcmarkets", "btcturk", "btse", "bullish", "bybit", "bybiteu", "bybitid", "bydfi", "cex",
    "coinbase", "coinbaseexchange", "coinbaseinternational", "coincheck", "coinmate", "coinone", "coinsph",
    "coinspot", "cryptocom", "cryptomus", "deepcoin", "delta", "deribit", "derive", "digifinex", "dydx",
    "extended", "fmfwio", "foxbit", "gate", "gateeu", "gemini", "grvt", "hashkey", "hibachi", "hitbtc",
    "hollaex", "htx", "hyperliquid", "independentreserve", "indodax", "kraken", "krakenfutures", "kucoin",
    "kucoinfutures", "latoken", "lbank", "lighter", "luno", "mercado", "mexc", "modetrade", "mudrex", "myokx",
    "nado", "ndax", "okx", "okxus", "onetrading", "p2b", "pacifica", "paradex", "paymium", "phemex",
    "poloniex", "polymarket", "revolutx", "tokocrypto", "toobit", "upbit", "weex", "whitebit", "woo",
    "woofipro", "xt", "zaif", "zebpay",
})

SUPPORTED_EXCHANGES: frozenset[str] = CCXT_EXCHANGES | {PAPER}


def is_supported(exchange: str) -> bool:
    return exchange in SUPPORTED_EXCHANGES
