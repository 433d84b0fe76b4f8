"""Signed access and refresh tokens (JWT, HS256). Only the signature and expiry are checked here."""

from __future__ import annotations

import time
import uuid

import jwt
import msgspec

ISSUER = "quorum"
ACCESS = "access"
REFRESH = "refresh"
# Access tokens already verified by this process. A client sends the same one on every request for its
# lifetime, and PyJWT's decode cost more than the rest of an authenticated read; the signature covers the
# whole string, so an identical string is the same token. Expiry is checked again on every use, and
# whether its session is still live is the database's call on every request, as before.
VERIFIED_ACCESS_TOKENS = 8192


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
        self._verified: dict[str, TokenClaims] = {}  # oldest first

    def issue(self, typ: str, *, user_id: uuid.UUID, tenant_id: uuid.UUID, session_id: uuid.UUID,
              role: str, jti: uuid.UUID | None = None, expires_at: int | None = None) -> tuple[str, int]:
        """Return the token and its expiry (epoch seconds); `expires_at` re-signs one issued before."""
        ttl = self.access_ttl if typ == ACCESS else self.refresh_ttl
        exp = expires_at if expires_at is not None else int(time.time()) + ttl
        now = exp - ttl
        claims = {
            "iss": ISSUER, "iat": now, "exp": exp, "typ": typ, "role": role,
            "sub": str(user_id), "tid": str(tenant_id), "sid": str(session_id), "jti": str(jti or uuid.uuid4()),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), exp

    def verify(self, token: str, typ: str) -> TokenClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if claims.typ == ACCESS:
                if len(self._verified) >= VERIFIED_ACCESS_TOKENS:
                    del self._verified[next(iter(self._verified))]
                self._verified[token] = claims
        elif claims.exp <= time.time():  # PyJWT's own rule, with no leeway
            self._verified.pop(token, None)
            raise InvalidToken("Signature has expired")
        if claims.typ != typ:
            raise InvalidToken(f"expected a {typ} token")
        return claims

    def _decode(self, token: str) -> TokenClaims:
        try:
            raw = jwt.decode(token, self._secret, algorithms=["HS256"], issuer=ISSUER,
                             options={"require": ["exp", "iat", "sub", "tid", "sid", "jti", "typ"]})
            claims = msgspec.convert(raw, TokenClaims, strict=False)
        except (jwt.PyJWTError, msgspec.ValidationError) as exc:
            raise InvalidToken(str(exc)) from exc
        return claims
