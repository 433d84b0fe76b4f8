"""Daily summaries and webhook secret rotation with an overlap.

`daily_summaries` holds one row per tenant and UTC day once that day's summary event is recorded; its
unique (tenant, day) index is what makes the summary once-only, whoever runs it and however often.
Which tenants are due is asked across tenants through one SECURITY DEFINER function that returns ids.

A rotated webhook secret keeps the previous one (encrypted under the vault like the current one) until
`previous_secret_expires_at`; deliveries are signed with both meanwhile. The sweep erases expired ones
through a SECURITY DEFINER function that returns only a count.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

from tenants.migrations.rls import app_role, enable_tenant_rls, grant_to_app

revision = "0006"
down_revision = "0005_notifications"
branch_labels = None
depends_on = None

TS = DateTimeUTC(timezone=True)

_FUNCTIONS: dict[str, str] = {
    # Tenants whose bots decided on `p_day` (UTC) and who have no summary of it yet, in id order from `p_after`.
    "daily_summary_tenants(p_day date, p_after uuid, p_limit integer)":
        "RETURNS TABLE (tenant_id uuid) LANGUAGE sql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public AS $$ "
        "  SELECT t.id FROM tenants t "
        "  WHERE t.is_active AND t.id > p_after "
        "    AND EXISTS (SELECT 1 FROM decisions d WHERE d.tenant_id = t.id "
        "      AND d.created_at >= (p_day::timestamp AT TIME ZONE 'UTC') "
        "      AND d.created_at < ((p_day + 1)::timestamp AT TIME ZONE 'UTC')) "
        "    AND NOT EXISTS (SELECT 1 FROM daily_summaries s WHERE s.tenant_id = t.id AND s.day = p_day) "
        "  ORDER BY t.id LIMIT p_limit $$",
    # The end of a rotation's overlap: the previous secret stops existing, not only stops being used.
    "drop_expired_webhook_secrets()":
        "RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
        "DECLARE v_count integer; "
        "BEGIN "
        "  UPDATE webhook_endpoints SET previous_secret_ciphertext = NULL, previous_secret_expires_at = NULL, "
        "    updated_at = now() WHERE previous_secret_expires_at IS NOT NULL AND previous_secret_expires_at <= now(); "
        "  GET DIAGNOSTICS v_count = ROW_COUNT; RETURN v_count; "
        "END $$",
}


def _signature_types(signature: str) -> str:
    """`f(p_a uuid, p_b integer)` -> `f(uuid, integer)`, how DROP and GRANT name a function."""
    name, _, params = signature.partition("(")
    return f"{name}({', '.join(p.split()[1] for p in params.rstrip(')').split(', ') if p)})"


def upgrade() -> None:
    op.create_table(
        "daily_summaries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("bots", sa.Integer(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_daily_summaries_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_summaries")),
    )
    op.create_index("uq_daily_summaries_day", "daily_summaries", ["tenant_id", "day"], unique=True)
    enable_tenant_rls("daily_summaries")
    grant_to_app("daily_summaries", "SELECT, INSERT")

    op.add_column("webhook_endpoints", sa.Column("previous_secret_ciphertext", sa.LargeBinary(), nullable=True))
    op.add_column("webhook_endpoints", sa.Column("previous_secret_expires_at", TS, nullable=True))
    op.create_index(
        "ix_webhook_endpoints_previous_secret", "webhook_endpoints", ["tenant_id", "previous_secret_expires_at"],
        unique=False, postgresql_where=sa.text("previous_secret_expires_at IS NOT NULL"),
    )

    for signature, body in _FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")
        op.execute(f"REVOKE ALL ON FUNCTION {_signature_types(signature)} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {_signature_types(signature)} TO "{app_role()}"')


def downgrade() -> None:
    for signature in reversed(_FUNCTIONS):
        op.execute(f"DROP FUNCTION {_signature_types(signature)}")
    op.drop_index("ix_webhook_endpoints_previous_secret", table_name="webhook_endpoints",
                  postgresql_where=sa.text("previous_secret_expires_at IS NOT NULL"))
    op.drop_column("webhook_endpoints", "previous_secret_expires_at")
    op.drop_column("webhook_endpoints", "previous_secret_ciphertext")
    op.drop_index("uq_daily_summaries_day", table_name="daily_summaries")
    op.drop_table("daily_summaries")
