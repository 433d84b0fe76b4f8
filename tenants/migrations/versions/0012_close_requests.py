"""Close now: `close_requests`, one per ask to close a position, a bot's positions or everything (panic).

A request names what it closes (`targets`: the positions, each with its bot) and, once its worker has done it,
what became of each (`results`). The caller's `Idempotency-Key` names the request: the same key within a day
is the same request (`request_hash` tells a different body apart). `stale_close_requests` finds, across
tenants and by id only, requests still pending long after they were handed to a worker (one that died).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

from tenants.migrations.rls import app_role, enable_tenant_rls, grant_to_app

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = DateTimeUTC(timezone=True)
SIGNATURE = "stale_close_requests(timestamptz, integer)"


def upgrade() -> None:
    op.create_table(
        "close_requests",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("bot_id", sa.Uuid(), sa.ForeignKey("bots.id", ondelete="SET NULL"), nullable=True),
        sa.Column("position_id", sa.Uuid(), nullable=True),
        sa.Column("stop_bots", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("targets", postgresql.JSONB(), nullable=False),
        sa.Column("results", postgresql.JSONB(), nullable=False),
        sa.Column("canceled_orders", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
    )
    op.create_index("ix_close_requests_tenant", "close_requests", ["tenant_id", "id"])
    op.create_index(
        "uq_close_requests_key", "close_requests", ["tenant_id", "idempotency_key"], unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_close_requests_pending", "close_requests", ["enqueued_at"], postgresql_where=sa.text("status = 'pending'")
    )
    enable_tenant_rls("close_requests")
    grant_to_app("close_requests")
    op.execute(
        "CREATE FUNCTION stale_close_requests(p_before timestamptz, p_limit integer) "
        "RETURNS TABLE (tenant_id uuid, close_id uuid) LANGUAGE sql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public AS $$ "
        "  SELECT c.tenant_id, c.id FROM close_requests c "
        "  WHERE c.status = 'pending' AND c.enqueued_at < p_before ORDER BY c.enqueued_at LIMIT p_limit $$"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {SIGNATURE} TO "{app_role()}"')


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.drop_table("close_requests")
