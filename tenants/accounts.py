"""Accounts: registration, login, refresh-token rotation with reuse detection, logout, password change."""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid

import msgspec
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants import audit
from tenants.audit import AuditAction
from tenants.errors import Conflict, Unauthenticated
from tenants.models import AuditEvent, AuthSession, RefreshToken, Tenant, User, UserRole
from tenants.passwords import PasswordHashing
from tenants.principal import ROLE_SCOPES, Principal, PrincipalKind
from tenants.scope import TenantScope
from tenants.tokens import ACCESS, REFRESH, InvalidToken, TokenSigner

log = logging.getLogger(__name__)

_FIND_LOGIN = text("SELECT user_id, tenant_id, password_hash, is_active FROM auth_find_login(:email)")
_ME = ("SELECT u.id, u.email, u.role, u.created_at, u.last_login_at, t.id, t.name "
       "FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1")

def normalise_email(email: str) -> str:
    return email.strip().lower()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


class Me(msgspec.Struct, frozen=True):
    """The calling user and their tenant (the columns of `_ME`, in order)."""

    user_id: uuid.UUID
    email: str
    role: str
    created_at: datetime.datetime
    last_login_at: datetime.datetime | None
    tenant_id: uuid.UUID
    tenant_name: str


class ClientInfo(msgspec.Struct, frozen=True):
    ip: str = ""
    user_agent: str = ""


class AccountService:
    def __init__(self, db: Database, signer: TokenSigner, passwords: PasswordHashing,
                 refresh_grace_seconds: int = 30) -> None:
        self.refresh_grace_seconds = refresh_grace_seconds
        self.db = db
        self.signer = signer
        self.passwords = passwords
        self._pending_audits: set[asyncio.Task[None]] = set()

    # -- sessions for authenticated callers ------------------------------------------------------

    def principal_from_access_token(self, token: str) -> Principal:
        """Check signature and expiry only; `transaction` checks the session is still live."""
        try:
            claims = self.signer.verify(token, ACCESS)
        except InvalidToken as exc:
            raise Unauthenticated("the access token is invalid or expired") from exc
        return Principal(
            kind=PrincipalKind.USER, tenant_id=claims.tid, user_id=claims.sub, role=claims.role,
            scopes=ROLE_SCOPES.get(claims.role, frozenset()), session_id=claims.sid,
        )

    async def audit_page(self, principal: Principal, *, limit: int, before: uuid.UUID | None) -> list[AuditEvent]:
        """The tenant's audit log, newest first (`audit.page`)."""
        async with TenantScope.of(principal).session(self.db) as session:
            return await audit.page(session, limit=limit, before=before)

    # -- registration and login --------------------------------------------------------------------

    async def register(self, email: str, password: str, tenant_name: str | None, client: ClientInfo) -> TokenPair:
        email = normalise_email(email)
        password_hash = await self.passwords.hash(password)
        tenant = Tenant(id=uuid7(), name=tenant_name or email.split("@")[0])
        try:
            # The new tenant's own scope: row-level security checks every insert against it.
            async with TenantScope.of(tenant.id).session(self.db) as session:
                user = User(tenant_id=tenant.id, email=email, password_hash=password_hash,
                            role=UserRole.OWNER, password_changed_at=utcnow())
                session.add(tenant)
                await session.flush()
                session.add(user)
                await session.flush()
                pair = await self._open_session(session, user, client)
        except IntegrityError as exc:
            if "uq_users_email" in str(exc.orig):
                raise Conflict("an account with this email already exists") from None
            raise
        log.info("account registered", extra={"tenant_id": str(tenant.id)})
        return pair

    async def login(self, email: str, password: str, client: ClientInfo) -> TokenPair:
        """Every failure answers alike after the same work (one lookup, one argon2 verify); only the
        right password may learn that the account is deactivated."""
        email = normalise_email(email)
        async with TenantScope.of(None).session(self.db) as session:
            found = (await session.execute(_FIND_LOGIN, {"email": email})).first()
        # An unknown email verifies against the dummy hash: the same cost as a wrong password.
        if not await self.passwords.verify(found.password_hash if found else None, password):
            if found is not None:
                self._audit_later(found.tenant_id, found.user_id, client)
            raise Unauthenticated("wrong email or password")
        if not found.is_active:
            raise Unauthenticated("this account is deactivated")
        user_id, tenant_id = found.user_id, found.tenant_id
        async with TenantScope.of(tenant_id).session(self.db) as session:
            user = await session.get(User, user_id)
            if user is None or not user.is_active:  # deleted or deactivated since the lookup
                raise Unauthenticated("wrong email or password")
            await session.execute(update(User).where(User.id == user_id).values(last_login_at=utcnow()))
            audit.record(session, tenant_id=tenant_id, actor_id=user_id, action=AuditAction.LOGIN,
                         target_type="user", target_id=user_id, client_ip=client.ip,
                         details={"userAgent": client.user_agent[:120]})
            return await self._open_session(session, user, client)

    def _audit_later(self, tenant_id: uuid.UUID, user_id: uuid.UUID, client: ClientInfo) -> None:
        """Record a failed login after answering, so the answer's timing does not say the email exists."""
        async def record() -> None:
            try:
                async with TenantScope.of(tenant_id).session(self.db) as session:
                    audit.record(session, tenant_id=tenant_id, actor_id=user_id, action=AuditAction.LOGIN_FAILED,
                                 target_type="user", target_id=user_id, client_ip=client.ip)
            except Exception:
                log.exception("could not audit a failed login")

        task = asyncio.get_running_loop().create_task(record())
        self._pending_audits.add(task)
        task.add_done_callback(self._pending_audits.discard)

    async def refresh(self, refresh_token: str, client: ClientInfo) -> TokenPair:
        """Rotate: each refresh token works once; presenting a used one revokes its whole family."""
        try:
            claims = self.signer.verify(refresh_token, REFRESH)
        except InvalidToken as exc:
            raise Unauthenticated("the refresh token is invalid or expired") from exc
        async with TenantScope.of(claims.tid).session(self.db) as session:
            row = (await session.execute(
                select(RefreshToken, AuthSession, User)
                .join(AuthSession, AuthSession.id == RefreshToken.session_id)
                .join(User, User.id == AuthSession.user_id)
                .where(RefreshToken.id == claims.jti)
                .with_for_update(of=[RefreshToken, AuthSession])
            )).first()
            if row is None:
                raise Unauthenticated("the refresh token is not recognised")
            token, auth_session, user = row
            if auth_session.revoked_at is not None or not user.is_active:
                raise Unauthenticated("the session has ended; log in again")
            successor = await self._successor_in_grace(session, token)
            if successor is not None:
                reuse_detected = False
                pair = self._pair(user, auth_session.id, successor)
            elif token.used_at is not None:
                auth_session.revoked_at = utcnow()
                auth_session.revoked_reason = "refresh_token_reuse"
                audit.record(session, tenant_id=claims.tid, actor_id=user.id, action=AuditAction.REFRESH_TOKEN_REUSE,
                             target_type="session", target_id=auth_session.id, client_ip=client.ip)
                reuse_detected = True
            else:
                token.used_at = utcnow()
                reuse_detected = False
                pair = await self._issue(session, user, auth_session.id)
                token.replaced_by = self.signer.verify(pair.refresh_token, REFRESH).jti
        if reuse_detected:
            # Committed above: the family stays revoked even though this request fails.
            log.warning("refresh token reuse: session revoked",
                        extra={"tenant_id": str(claims.tid), "session_id": str(claims.sid)})
            raise Unauthenticated("this refresh token was already used; the session has been revoked")
        return pair

    async def logout(self, principal: Principal) -> None:
        async with TenantScope.of(principal).session(self.db) as session:
            await session.execute(
                update(AuthSession).where(AuthSession.id == principal.session_id)
                .values(revoked_at=utcnow(), revoked_reason="logout")
            )

    async def me(self, principal: Principal) -> Me:
        # The hottest authenticated read (the app asks on every start): the driver path, one query.
        async with TenantScope.of(principal).connection(self.db, read_only=True) as connection:
            row = await connection.fetchrow(_ME, principal.user_id)
        if row is None:
            raise Unauthenticated("the session has ended; log in again")
        return Me(*row)

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Set a new password and end every other session of the user."""
        async with TenantScope.of(principal).session(self.db) as session:
            user = await session.get(User, principal.user_id)
        assert user is not None
        if not await self.passwords.verify(user.password_hash, current):
            raise Unauthenticated("the current password is wrong")
        new_hash = await self.passwords.hash(new)
        async with TenantScope.of(principal).session(self.db) as session:
            await session.execute(
                update(User).where(User.id == user.id).values(password_hash=new_hash, password_changed_at=utcnow())
            )
            await session.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user.id, AuthSession.id != principal.session_id,
                       AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason="password_changed")
            )
            audit.record(session, tenant_id=principal.tenant_id, actor=principal, action=AuditAction.PASSWORD_CHANGED,
                         target_type="user", target_id=user.id)

    # -- internals -------------------------------------------------------------------------------

    async def _open_session(self, session: AsyncSession, user: User, client: ClientInfo) -> TokenPair:
        auth_session = AuthSession(tenant_id=user.tenant_id, user_id=user.id,
                                   user_agent=client.user_agent[:255], client_ip=client.ip[:64])
        session.add(auth_session)
        await session.flush()
        return await self._issue(session, user, auth_session.id)

    async def _issue(self, session: AsyncSession, user: User, session_id: uuid.UUID) -> TokenPair:
        refresh = RefreshToken(id=uuid7(), tenant_id=user.tenant_id, session_id=session_id,
                               expires_at=utcnow() + datetime.timedelta(seconds=self.signer.refresh_ttl))
        session.add(refresh)
        await session.flush()
        return self._pair(user, session_id, refresh)

    def _pair(self, user: User, session_id: uuid.UUID, refresh: RefreshToken) -> TokenPair:
        """Sign the pair for a stored refresh token; signing it again gives the same refresh token."""
        refresh_token, _ = self.signer.issue(REFRESH, user_id=user.id, tenant_id=user.tenant_id, session_id=session_id,
                                             role=user.role, jti=refresh.id,
                                             expires_at=int(refresh.expires_at.timestamp()))
        access, _ = self.signer.issue(ACCESS, user_id=user.id, tenant_id=user.tenant_id,
                                      session_id=session_id, role=user.role)
        return TokenPair(access_token=access, refresh_token=refresh_token, expires_in=self.signer.access_ttl)

    async def _successor_in_grace(self, session: AsyncSession, token: RefreshToken) -> RefreshToken | None:
        """The token issued for `token` if it was used moments ago and its successor is still unused."""
        if token.used_at is None or token.replaced_by is None:
            return None
        if utcnow() - token.used_at > datetime.timedelta(seconds=self.refresh_grace_seconds):
            return None
        successor = await session.get(RefreshToken, token.replaced_by, with_for_update=True)
        return successor if successor is not None and successor.used_at is None else None
