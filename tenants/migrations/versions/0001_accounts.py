"""Tenants, users, sessions and refresh tokens, under row-level security.

Revision ID: 0001_accounts
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

from tenants.migrations.rls import app_role, enable_tenant_rls, grant_to_app

revision = "0001_accounts"
down_revision = None
branch_labels = None
depends_on = None

TS = DateTimeUTC(timezone=True)


def _audit_columns() -> list[sa.Column]:
    return [
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    ]


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    # The tenant of the current transaction; NULL (so no row matches) when none was set.
    op.execute(
        "CREATE FUNCTION current_tenant_id() RETURNS uuid LANGUAGE sql STABLE AS "
        "$$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$"
    )

    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("password_changed_at", TS, nullable=False),
        sa.Column("last_login_at", TS, nullable=True),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        _tenant_fk("users"),
    )
    op.create_index("uq_users_email", "users", ["email"], unique=True)
    op.create_index("ix_users_tenant_id", "users", ["tenant_id"])
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_auth_sessions"),
        _tenant_fk("auth_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_auth_sessions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_auth_sessions_tenant_user", "auth_sessions", ["tenant_id", "user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        _tenant_fk("refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["auth_sessions.id"], name="fk_refresh_tokens_session_id_auth_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_refresh_tokens_tenant_session", "refresh_tokens", ["tenant_id", "session_id"])

    enable_tenant_rls("tenants", column="id")
    for table in ("users", "auth_sessions", "refresh_tokens"):
        enable_tenant_rls(table)
    grant_to_app("tenants", "SELECT, INSERT, UPDATE")
    for table in ("users", "auth_sessions", "refresh_tokens"):
        grant_to_app(table)

    # The one narrow cross-tenant path of login: from an email to (user, tenant) ids, nothing else.
    # It runs as the owner, which bypasses row-level security; the app role may only execute it.
    op.execute(
        "CREATE FUNCTION auth_find_login(p_email text) RETURNS TABLE (user_id uuid, tenant_id uuid) "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS "
        "$$ SELECT id, tenant_id FROM users WHERE email = p_email $$"
    )
    op.execute("REVOKE ALL ON FUNCTION auth_find_login(text) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION auth_find_login(text) TO "{app_role()}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION auth_find_login(text)")
    for table in ("refresh_tokens", "auth_sessions", "users", "tenants"):
        op.drop_table(table)
    op.execute("DROP FUNCTION current_tenant_id()")
