"""Signed access and refresh tokens (JWT, HS256). Only the signature and expiry are checked here."""

from __future__ import annotations

import time
import uuid

import jwt
import msgspec

ISSUER = "quorum"
ACCESS = "access"
REFRESH = "refresh"


class TokenClaims(msgspec.Struct, frozen=True):
    sub: uuid.UUID  # user id
    tid: uuid.UUID  # tenant id
    sid: uuid.UUID  # session (refresh-token family) id
    jti: uuid.UUID
    typ: str
    role: str
    exp: int


class InvalidToken(Exception):
    pass


class TokenSigner:
    def __init__(self, secret: str, access_ttl: int, refresh_ttl: int) -> None:
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(self, typ: str, *, user_id: uuid.UUID, tenant_id: uuid.UUID, session_id: uuid.UUID,
              role: str, jti: uuid.UUID | None = None) -> tuple[str, int]:
        """Return the token and its expiry (epoch seconds)."""
        now = int(time.time())
        exp = now + (self.access_ttl if typ == ACCESS else self.refresh_ttl)
        claims = {
            "iss": ISSUER, "iat": now, "exp": exp, "typ": typ, "role": role,
            "sub": str(user_id), "tid": str(tenant_id), "sid": str(session_id), "jti": str(jti or uuid.uuid4()),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), exp

    def verify(self, token: str, typ: str) -> TokenClaims:
        try:
            raw = jwt.decode(token, self._secret, algorithms=["HS256"], issuer=ISSUER,
                             options={"require": ["exp", "iat", "sub", "tid", "sid", "jti", "typ"]})
            claims = msgspec.convert(raw, TokenClaims, strict=False)
        except (jwt.PyJWTError, msgspec.ValidationError) as exc:
            raise InvalidToken(str(exc)) from exc
        if claims.typ != typ:
            raise InvalidToken(f"expected a {typ} token")
        return claims
