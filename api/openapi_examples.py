"""What the API documentation shows: a real example of every request body, and how to authenticate.

Without examples, a docs page invents values from each field's pattern (`8$KtC'1hBIl^a~…` for an email).
tests/test_openapi.py checks that every request schema has one and that each decodes, strictly, into the
type its route reads: an example that the server would refuse fails the tests.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import OpenAPI, Schema, SecurityScheme

from api.openapi import BEARER_SCHEME
from tenants.principal import Scope

BOT = {
    "name": "BTC swing", "mode": "paper", "symbols": ["BTC/USDT"], "timeframes": ["15m", "1h"], "brain": "rules",
    "leverage": 1, "riskPerTradePct": 1, "maxOpenPositions": 1, "dailyLossLimitPct": 3, "cycleIntervalSeconds": 900,
}

# Component name -> one example body, as a client would send it.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "RegisterRequest": {"email": "ada@example.com", "password": "plum orbit cactus velvet",
                        "tenantName": "Ada's desk"},
    "CloseBotRequest": {"stopBot": True},
    "CloseAllRequest": {"password": "plum orbit cactus velvet"},
    "LoginRequest": {"email": "ada@example.com", "password": "plum orbit cactus velvet"},
    "RefreshRequest": {"refreshToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMTkzIn0.c2lnbmF0dXJl"},
    "ChangePasswordRequest": {"currentPassword": "plum orbit cactus velvet",
                              "newPassword": "tidal marble orchard lantern"},
    "BotRequest": BOT,
    "BotPatchRequest": {"riskPerTradePct": 0.5, "maxOpenPositions": 2},
    "CreateApiKeyRequest": {"name": "portfolio dashboard", "scopes": ["bots:read", "activity:read"],
                            "rateLimitPerMinute": 120},
    "LinkExchangeKeyRequest": {"exchange": "bybit", "label": "main account", "apiKey": "XBYB1tKeyExample01",
                               "secret": "s3cr3tExampleSecretValue0123456789ab", "testnet": True},
    "DeviceRequest": {"platform": "ios", "token": "fcm-token-from-the-device", "appVersion": "1.4.0"},
    "NotificationPreferencesRequest": {"push": {"trade.opened": True, "bot.status": False}},
    "WebhookRequest": {"url": "https://hooks.example.com/quorum", "description": "trades to our ledger",
                       "eventTypes": ["trade.opened", "trade.closed"]},
    "WebhookPatchRequest": {"active": True, "eventTypes": ["trade.closed", "bot.paused"]},
    "RotateSecretRequest": {"overlapHours": 24},
}

SCOPE_DOCS: dict[Scope, str] = {
    Scope.ACCOUNT: "your profile, password and sessions (signed-in users only; never an API key)",
    Scope.BOTS_READ: "read bots and their settings",
    Scope.BOTS_WRITE: "create, change, start, stop and delete bots",
    Scope.POSITIONS_CLOSE: "close a position or a bot's positions now, at market (closing everything needs a "
                           "signed-in user's password)",
    Scope.KEYS_READ: "list linked exchange keys (never their secrets)",
    Scope.KEYS_WRITE: "link and remove exchange keys",
    Scope.ACTIVITY_READ: "read decisions, orders, positions and performance",
    Scope.WEBHOOKS_READ: "list webhook endpoints and their deliveries",
    Scope.WEBHOOKS_WRITE: "add, change, test, rotate and remove webhook endpoints",
    Scope.AUDIT_READ: "read the tenant's audit log (owners)",
}

AUTHENTICATION = (
    "Every route but registering, logging in and refreshing needs `Authorization: Bearer <credential>`, where "
    "the credential is one of:\n\n"
    "- **an access token** (a JWT) from `POST /v1/auth/login` or `/v1/auth/register`. It lives for minutes "
    "(`expiresIn` says how many seconds); trade the refresh token for a new pair at `POST /v1/auth/refresh` "
    "(each refresh token works once). A signed-in user holds every scope their role allows.\n"
    "- **an API key** (`qk_…`) for integrators, made with `POST /v1/api-keys` and shown once. It holds only the "
    "scopes chosen for it, never more than its creator's role, and is limited to `rateLimitPerMinute` requests "
    "(429 with `Retry-After` beyond).\n\n"
    "Scopes:\n\n" + "\n".join(f"- `{scope.value}`: {text}" for scope, text in SCOPE_DOCS.items())
)


def document(openapi: OpenAPI) -> None:
    """Put the examples and the authentication guide into the schema the app serves and exports."""
    schemas = openapi.components.schemas or {}
    for name, example in REQUEST_EXAMPLES.items():
        schema = schemas.get(name)
        if isinstance(schema, Schema):
            schema.examples = [example]
    scheme = (openapi.components.security_schemes or {}).get(BEARER_SCHEME)
    if isinstance(scheme, SecurityScheme):
        scheme.description = AUTHENTICATION
