"""Wire types of the accounts API (camelCase on the wire, unknown fields rejected)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

from api.wire import Request, Response, text

# Explicit ASCII classes rather than `\s`: Python's and JSON Schema's regex engines disagree on `\s`.
EMAIL_PATTERN = (
    r"^[ \t]*[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+[ \t]*$"
)
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=EMAIL_PATTERN,
                                    description="Email address; case and surrounding spaces are ignored")]

Password = text(10, 256, description="10 to 256 characters, and not easy to guess (judged by zxcvbn: a 422 "
                                     "names the field, says why and suggests what to do)")


class RegisterRequest(Request):
    email: Email
    password: Password
    tenant_name: text(1, 120) | None = None


class LoginRequest(Request):
    email: text(1, 320)
    password: text(1, 256)


class RefreshRequest(Request):
    refresh_token: text(1, 4096)


class ChangePasswordRequest(Request):
    current_password: text(1, 256)
    new_password: Password


class TokenResponse(Response):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: Annotated[int, msgspec.Meta(description="seconds until the access token expires")]


class TenantView(Response):
    id: uuid.UUID
    name: str


class MeResponse(Response):
    id: uuid.UUID
    email: str
    role: str
    tenant: TenantView
    created_at: datetime.datetime
    last_login_at: datetime.datetime | None
