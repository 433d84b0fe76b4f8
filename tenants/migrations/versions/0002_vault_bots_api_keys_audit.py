"""The vault's data keys, exchange keys, bots, integrator API keys and the audit log, under RLS.

Revision ID: 0002_vault_bots_api_keys_audit
Revises: 0001_accounts
Create Date: 2026-11-21 22:15:55.200691
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

from tenants.migrations.rls import app_role, enable_tenant_rls, grant_to_app

revision = "0002_vault_bots_api_keys_audit"
down_revision = "0001_accounts"
branch_labels = None
depends_on = None

TS = DateTimeUTC(timezone=True)
TABLES = ("tenant_data_keys", "exchange_keys", "bots", "api_keys", "audit_events")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.Uuid(), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_audit_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_tenant_id", "audit_events", ["tenant_id", "id"], unique=False)
    op.create_table(
        "exchange_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("testnet", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("api_key_last4", sa.String(length=4), nullable=False),
        sa.Column("api_key_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("passphrase_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("can_withdraw", sa.Boolean(), nullable=True),
        sa.Column("ip_whitelisted", sa.Boolean(), nullable=True),
        sa.Column("can_trade", sa.Boolean(), nullable=True),
        sa.Column("warnings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_exchange_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_keys")),
    )
    op.create_index("ix_exchange_keys_tenant", "exchange_keys", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "tenant_data_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_data_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_data_keys")),
    )
    op.create_index("uq_tenant_data_keys_tenant", "tenant_data_keys", ["tenant_id"], unique=True)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "bots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("exchange_key_id", sa.Uuid(), nullable=True),
        sa.Column("symbols", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("timeframes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("leverage", sa.Numeric(precision=6, scale=2), nullable=False),
        sa.Column("risk_per_trade_pct", sa.Numeric(precision=6, scale=3), nullable=False),
        sa.Column("max_open_positions", sa.Integer(), nullable=False),
        sa.Column("daily_loss_limit_pct", sa.Numeric(precision=6, scale=3), nullable=False),
        sa.Column("cycle_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("agent_weights", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("brain", sa.String(length=16), nullable=False),
        sa.Column("brain_model", sa.String(length=80), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sa.String(length=200), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_key_id"],
            ["exchange_keys.id"],
            name=op.f("fk_bots_exchange_key_id_exchange_keys"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bots_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots")),
    )
    op.create_index("ix_bots_tenant", "bots", ["tenant_id", "created_at"], unique=False)
    op.create_index(
        "uq_bots_tenant_default", "bots", ["tenant_id"], unique=True, postgresql_where=sa.text("is_default")
    )

    for table in TABLES:
        enable_tenant_rls(table)
    grant_to_app("exchange_keys")
    grant_to_app("bots")
    grant_to_app("api_keys")
    # Data keys are created by the app and re-wrapped only by the owner's rotation command.
    grant_to_app("tenant_data_keys", "SELECT, INSERT")
    # The audit log is append-only for the application.
    grant_to_app("audit_events", "SELECT, INSERT")

    # The narrow cross-tenant path of API-key authentication: from a key id to what checking it needs.
    op.execute(
        "CREATE FUNCTION auth_find_api_key(p_id uuid) RETURNS TABLE "
        "(tenant_id uuid, user_id uuid, secret_hash bytea, scopes varchar[], rate_limit_per_minute int) "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
        "SELECT k.tenant_id, k.user_id, k.secret_hash, k.scopes, k.rate_limit_per_minute "
        "FROM api_keys k JOIN users u ON u.id = k.user_id JOIN tenants t ON t.id = k.tenant_id "
        "WHERE k.id = p_id AND k.revoked_at IS NULL AND u.is_active AND t.is_active $$"
    )
    op.execute("REVOKE ALL ON FUNCTION auth_find_api_key(uuid) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION auth_find_api_key(uuid) TO "{app_role()}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION auth_find_api_key(uuid)")
    op.drop_index("uq_bots_tenant_default", table_name="bots", postgresql_where=sa.text("is_default"))
    op.drop_index("ix_bots_tenant", table_name="bots")
    op.drop_table("bots")
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("uq_tenant_data_keys_tenant", table_name="tenant_data_keys")
    op.drop_table("tenant_data_keys")
    op.drop_index("ix_exchange_keys_tenant", table_name="exchange_keys")
    op.drop_table("exchange_keys")
    op.drop_index("ix_audit_events_tenant_id", table_name="audit_events")
    op.drop_table("audit_events")
