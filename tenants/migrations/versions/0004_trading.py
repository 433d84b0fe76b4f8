"""Trading: cycles, decisions, orders, fills, positions, the paper exchange's books and the event outbox.

Every table is tenant-owned under row-level security. The dispatcher, which must see every tenant's
due bots, does it through one SECURITY DEFINER function that returns ids only.

Revision ID: 0004_trading
Revises: 0003_begin_tenant_session
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

from tenants.migrations.rls import app_role, enable_tenant_rls, grant_to_app

revision = "0004_trading"
down_revision = "0003_begin_tenant_session"
branch_labels = None
depends_on = None

TS = DateTimeUTC(timezone=True)
TABLES = (
    "paper_accounts",
    "paper_orders",
    "paper_positions",
    "cycles",
    "decisions",
    "orders",
    "fills",
    "positions",
    "events",
)


def upgrade() -> None:
    op.create_table(
        "cycles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("equity", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("unrealized_pnl", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_cycles_bot_id_bots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_cycles_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cycles")),
    )
    op.create_index("ix_cycles_tenant_bot", "cycles", ["tenant_id", "bot_id", "id"], unique=False)
    op.create_index("uq_cycles_bot_slot", "cycles", ["tenant_id", "bot_id", "slot"], unique=True)
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_events_bot_id_bots"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_tenant", "events", ["tenant_id", "id"], unique=False)
    op.create_table(
        "paper_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("balances", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name=op.f("fk_paper_accounts_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_paper_accounts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_accounts")),
    )
    op.create_index("uq_paper_accounts_bot", "paper_accounts", ["tenant_id", "bot_id"], unique=True)
    op.create_table(
        "positions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("side", sa.String(length=5), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("entry_price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("leverage", sa.Numeric(precision=6, scale=2), nullable=False),
        sa.Column("stop_loss", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("take_profit", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("mark_price", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("unrealized_pnl", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("exit_price", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("realized_pnl", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("fees", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("opened_market_ms", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_positions_bot_id_bots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_positions_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
    )
    op.create_index("ix_positions_tenant_bot", "positions", ["tenant_id", "bot_id", "id"], unique=False)
    op.create_index(
        "uq_positions_open",
        "positions",
        ["tenant_id", "bot_id", "symbol"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("cycle_id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("requested_brain", sa.String(length=8), nullable=False),
        sa.Column("brain", sa.String(length=8), nullable=False),
        sa.Column("fallback", sa.String(length=32), nullable=True),
        sa.Column("fallback_detail", sa.String(length=500), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("prompt_hash", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=80), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=14, scale=8), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("record", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_decisions_bot_id_bots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycles.id"], name=op.f("fk_decisions_cycle_id_cycles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_decisions_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index("ix_decisions_tenant_bot", "decisions", ["tenant_id", "bot_id", "id"], unique=False)
    op.create_index("ix_decisions_tenant_day", "decisions", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "paper_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("client_order_id", sa.String(length=36), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("filled", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("average", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("fee", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("stop_loss", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("take_profit", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["paper_accounts.id"],
            name=op.f("fk_paper_orders_account_id_paper_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_paper_orders_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_orders")),
    )
    op.create_index(
        "uq_paper_orders_client_id", "paper_orders", ["tenant_id", "account_id", "client_order_id"], unique=True
    )
    op.create_table(
        "paper_positions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("side", sa.String(length=5), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("entry_price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("leverage", sa.Numeric(precision=6, scale=2), nullable=False),
        sa.Column("stop_loss", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("take_profit", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("checked_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["paper_accounts.id"],
            name=op.f("fk_paper_positions_account_id_paper_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_paper_positions_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_positions")),
    )
    op.create_index("uq_paper_positions_symbol", "paper_positions", ["tenant_id", "account_id", "symbol"], unique=True)
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("cycle_id", sa.Uuid(), nullable=True),
        sa.Column("decision_id", sa.Uuid(), nullable=True),
        sa.Column("client_order_id", sa.String(length=36), nullable=False),
        sa.Column("exchange", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("leg", sa.String(length=16), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("stop_loss", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("take_profit", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("leverage", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("exchange_order_id", sa.String(length=80), nullable=True),
        sa.Column("filled", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("average_price", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("fee", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_orders_bot_id_bots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycles.id"], name=op.f("fk_orders_cycle_id_cycles"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_orders_decision_id_decisions"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_orders_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_index("ix_orders_tenant_bot", "orders", ["tenant_id", "bot_id", "id"], unique=False)
    op.create_index("uq_orders_client_id", "orders", ["tenant_id", "client_order_id"], unique=True)
    op.create_table(
        "fills",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("fee", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_fills_bot_id_bots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_fills_order_id_orders"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_fills_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
    )
    op.create_index("ix_fills_tenant_bot", "fills", ["tenant_id", "bot_id", "id"], unique=False)
    for table in TABLES:
        enable_tenant_rls(table)
        grant_to_app(table)
    # The outbox and fills are append-only for the application.
    op.execute(f'REVOKE UPDATE, DELETE ON events, fills FROM "{app_role()}"')
    # The dispatcher's one window across tenants: active bots with no cycle for their current slot, or
    # whose cycle for it was left running by a worker that died (not touched since `p_stale_before`).
    # A slot is the bot's interval-aligned start time in seconds since the epoch. Ids only come out.
    op.execute(
        "CREATE FUNCTION due_bot_cycles(p_now timestamptz, p_stale_before timestamptz, p_after uuid, p_limit integer) "
        "RETURNS TABLE (tenant_id uuid, bot_id uuid, slot bigint) "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
        "  SELECT b.tenant_id, b.id, s.slot FROM bots b JOIN tenants t ON t.id = b.tenant_id "
        "  CROSS JOIN LATERAL (SELECT (floor(extract(epoch FROM p_now) / b.cycle_interval_seconds) "
        "    * b.cycle_interval_seconds)::bigint AS slot) s "
        "  WHERE b.is_active AND t.is_active AND b.id > p_after AND NOT EXISTS (SELECT 1 FROM cycles c "
        "    WHERE c.tenant_id = b.tenant_id AND c.bot_id = b.id AND c.slot = s.slot "
        "    AND (c.status <> 'running' OR c.updated_at > p_stale_before)) "
        "  ORDER BY b.id LIMIT p_limit $$"
    )
    signature = "due_bot_cycles(timestamptz, timestamptz, uuid, integer)"
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{app_role()}"')

def downgrade() -> None:
    op.execute("DROP FUNCTION due_bot_cycles(timestamptz, timestamptz, uuid, integer)")

    op.drop_index("ix_fills_tenant_bot", table_name="fills")
    op.drop_table("fills")
    op.drop_index("uq_orders_client_id", table_name="orders")
    op.drop_index("ix_orders_tenant_bot", table_name="orders")
    op.drop_table("orders")
    op.drop_index("uq_paper_positions_symbol", table_name="paper_positions")
    op.drop_table("paper_positions")
    op.drop_index("uq_paper_orders_client_id", table_name="paper_orders")
    op.drop_table("paper_orders")
    op.drop_index("ix_decisions_tenant_day", table_name="decisions")
    op.drop_index("ix_decisions_tenant_bot", table_name="decisions")
    op.drop_table("decisions")
    op.drop_index("uq_positions_open", table_name="positions", postgresql_where=sa.text("status = 'open'"))
    op.drop_index("ix_positions_tenant_bot", table_name="positions")
    op.drop_table("positions")
    op.drop_index("uq_paper_accounts_bot", table_name="paper_accounts")
    op.drop_table("paper_accounts")
    op.drop_index("ix_events_tenant", table_name="events")
    op.drop_table("events")
    op.drop_index("uq_cycles_bot_slot", table_name="cycles")
    op.drop_index("ix_cycles_tenant_bot", table_name="cycles")
    op.drop_table("cycles")
