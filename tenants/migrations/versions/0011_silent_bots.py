"""A bot that goes silent is noticed: `bots.started_at` and `bots.silent_since`, and the watcher's window.

An active bot with no completed cycle for three of its intervals (workers down, queue stuck, its lock held)
is silent: `silent_since` marks the outage once, so it is told once; the next completed cycle ends it.
`silent_bots` looks across tenants for both turns (going silent, coming back) and returns ids only. The
last completed cycle is read newest first on the (tenant, bot, id) index, so no cycle writes anything for this.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

from tenants.migrations.rls import app_role

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = DateTimeUTC(timezone=True)
SIGNATURE = "silent_bots(timestamptz, uuid, integer)"


def upgrade() -> None:
    op.add_column("bots", sa.Column("started_at", TS, nullable=True))
    op.add_column("bots", sa.Column("silent_since", TS, nullable=True))
    op.execute("UPDATE bots SET started_at = updated_at WHERE is_active")
    op.execute(
        "CREATE FUNCTION silent_bots(p_now timestamptz, p_after uuid, p_limit integer) "
        "RETURNS TABLE (tenant_id uuid, bot_id uuid, turn text, last_cycle_at timestamptz) "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
        "  SELECT b.tenant_id, b.id, "
        "    CASE WHEN b.silent_since IS NULL THEN 'silent' ELSE 'back' END, last.finished_at "
        "  FROM bots b JOIN tenants t ON t.id = b.tenant_id "
        "  LEFT JOIN LATERAL (SELECT c.finished_at FROM cycles c "
        "    WHERE c.tenant_id = b.tenant_id AND c.bot_id = b.id AND c.status = 'completed' "
        "    ORDER BY c.id DESC LIMIT 1) last ON true "
        "  WHERE b.is_active AND t.is_active AND b.id > p_after AND ( "
        "    (b.silent_since IS NULL AND GREATEST(last.finished_at, b.started_at, b.created_at) "
        "       < p_now - 3 * make_interval(secs => b.cycle_interval_seconds)) "
        "    OR (b.silent_since IS NOT NULL AND last.finished_at > b.silent_since)) "
        "  ORDER BY b.id LIMIT p_limit $$"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {SIGNATURE} TO "{app_role()}"')


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.drop_column("bots", "silent_since")
    op.drop_column("bots", "started_at")
