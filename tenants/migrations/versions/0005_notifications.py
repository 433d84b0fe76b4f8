"""Notifications and operations: push devices and preferences, webhook endpoints and deliveries, each
event's delivery state, and platform operators.

Every tenant table is under row-level security. A trigger gives each new event a `pending` delivery
row in the same transaction, so an event committed but never enqueued is still found; delivering the
event deletes its row. The sweep and
the operators' views cross tenants only through the SECURITY DEFINER functions below: the sweep's
return ids only, and the operators' check that the caller holds a live session of a platform admin.

Revision ID: 0005_notifications
Revises: 0004_trading
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

from tenants.migrations.rls import app_role, enable_tenant_rls, grant_to_app

revision = "0005_notifications"
down_revision = "0004_trading"
branch_labels = None
depends_on = None

TS = DateTimeUTC(timezone=True)
TENANT_TABLES = ("devices", "notification_preferences", "webhook_endpoints", "webhook_deliveries", "event_deliveries")

# Functions the application role may execute: (signature, body).
_FUNCTIONS: dict[str, str] = {
    # The sweep: events committed a while ago and still not handed on, or held by a worker that died.
    "pending_event_deliveries(p_before timestamptz, p_limit integer)":
        "RETURNS TABLE (tenant_id uuid, event_id uuid) LANGUAGE sql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public AS $$ "
        "  SELECT d.tenant_id, d.id FROM event_deliveries d "
        "  WHERE (d.status = 'pending' AND d.created_at < p_before) "
        "     OR (d.status = 'delivering' AND d.locked_until < now()) "
        "  ORDER BY d.created_at LIMIT p_limit $$",
    # The sweep: webhook deliveries whose task was lost (never enqueued, or its worker died).
    "due_webhook_deliveries(p_before timestamptz, p_limit integer)":
        "RETURNS TABLE (tenant_id uuid, delivery_id uuid) LANGUAGE sql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public AS $$ "
        "  SELECT d.tenant_id, d.id FROM webhook_deliveries d "
        "  WHERE d.status IN ('pending', 'sending', 'retrying') AND ( "
        "     (d.status = 'pending' AND d.created_at < p_before) "
        "     OR (d.status = 'retrying' AND d.next_attempt_at < p_before) "
        "     OR (d.status = 'sending' AND d.locked_until < now())) "
        "  ORDER BY d.created_at LIMIT p_limit $$",
    # A phone signed in to another tenant's account keeps its FCM token: whoever registers the token now
    # holds the phone, so the token leaves every other tenant (their notifications must not reach it).
    "release_device_token(p_token varchar)":
        "RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
        "DECLARE v_count integer; "
        "BEGIN "
        "  DELETE FROM devices d WHERE d.token = p_token AND d.tenant_id IS DISTINCT FROM current_tenant_id(); "
        "  GET DIAGNOSTICS v_count = ROW_COUNT; RETURN v_count; "
        "END $$",
    # A yes or no: is this the live session of a platform admin? The operators' functions start here.
    "is_platform_admin(p_user uuid, p_session uuid)":
        "RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public AS $$ "
        "  SELECT EXISTS (SELECT 1 FROM platform_admins a JOIN users u ON u.id = a.user_id "
        "    JOIN auth_sessions s ON s.user_id = u.id JOIN tenants t ON t.id = u.tenant_id "
        "    WHERE a.user_id = p_user AND s.id = p_session AND s.revoked_at IS NULL AND u.is_active "
        "    AND t.is_active) $$",
    "admin_list_tenants(p_user uuid, p_session uuid, p_limit integer, p_before uuid)":
        "RETURNS TABLE (id uuid, name varchar, is_active boolean, created_at timestamptz, users bigint, "
        "  bots bigint, active_bots bigint) LANGUAGE plpgsql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public AS $$ "
        "BEGIN "
        "  IF NOT is_platform_admin(p_user, p_session) THEN "
        "    RAISE EXCEPTION 'not a platform admin' USING ERRCODE = '42501'; END IF; "
        "  RETURN QUERY SELECT t.id, t.name, t.is_active, t.created_at, "
        "    (SELECT count(*) FROM users u WHERE u.tenant_id = t.id), "
        "    (SELECT count(*) FROM bots b WHERE b.tenant_id = t.id), "
        "    (SELECT count(*) FROM bots b WHERE b.tenant_id = t.id AND b.is_active) "
        "  FROM tenants t WHERE p_before IS NULL OR t.id < p_before ORDER BY t.id DESC LIMIT p_limit; "
        "END $$",
    "admin_list_users(p_user uuid, p_session uuid, p_tenant uuid, p_limit integer, p_before uuid)":
        "RETURNS TABLE (id uuid, tenant_id uuid, email varchar, role varchar, is_active boolean, "
        "  created_at timestamptz, last_login_at timestamptz, platform_admin boolean) "
        "LANGUAGE plpgsql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public AS $$ "
        "BEGIN "
        "  IF NOT is_platform_admin(p_user, p_session) THEN "
        "    RAISE EXCEPTION 'not a platform admin' USING ERRCODE = '42501'; END IF; "
        "  RETURN QUERY SELECT u.id, u.tenant_id, u.email, u.role, u.is_active, u.created_at, u.last_login_at, "
        "    EXISTS (SELECT 1 FROM platform_admins a WHERE a.user_id = u.id) "
        "  FROM users u WHERE (p_tenant IS NULL OR u.tenant_id = p_tenant) "
        "    AND (p_before IS NULL OR u.id < p_before) ORDER BY u.id DESC LIMIT p_limit; "
        "END $$",
    # Deactivating ends every session at once; access tokens, refresh tokens and API keys all check
    # `users.is_active` (begin_tenant_session, refresh, auth_find_api_key). Audited in the user's tenant.
    "admin_set_user_active(p_user uuid, p_session uuid, p_target uuid, p_active boolean, p_audit_id uuid, "
    "p_client_ip text)":
        "RETURNS TABLE (id uuid, tenant_id uuid, email varchar, role varchar, is_active boolean, "
        "  created_at timestamptz, last_login_at timestamptz, platform_admin boolean) "
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
        "DECLARE v_tenant uuid; "
        "BEGIN "
        "  IF NOT is_platform_admin(p_user, p_session) THEN "
        "    RAISE EXCEPTION 'not a platform admin' USING ERRCODE = '42501'; END IF; "
        "  UPDATE users u SET is_active = p_active, updated_at = now() WHERE u.id = p_target "
        "    RETURNING u.tenant_id INTO v_tenant; "
        "  IF v_tenant IS NULL THEN RETURN; END IF; "
        "  IF NOT p_active THEN "
        "    UPDATE auth_sessions s SET revoked_at = now(), revoked_reason = 'deactivated', updated_at = now() "
        "      WHERE s.user_id = p_target AND s.revoked_at IS NULL; "
        "  END IF; "
        "  INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, action, target_type, target_id, "
        "    client_ip, details, created_at, updated_at) "
        "  VALUES (p_audit_id, v_tenant, 'platform_admin', p_user, "
        "    CASE WHEN p_active THEN 'user_activated' ELSE 'user_deactivated' END, 'user', p_target, "
        "    left(coalesce(p_client_ip, ''), 64), '{}'::jsonb, now(), now()); "
        "  RETURN QUERY SELECT u.id, u.tenant_id, u.email, u.role, u.is_active, u.created_at, u.last_login_at, "
        "    EXISTS (SELECT 1 FROM platform_admins a WHERE a.user_id = u.id) FROM users u WHERE u.id = p_target; "
        "END $$",
}


def _signature_types(signature: str) -> str:
    """`f(p_a uuid, p_b integer)` -> `f(uuid, integer)`, how DROP and GRANT name a function."""
    name, _, params = signature.partition("(")
    return f"{name}({', '.join(p.split()[1] for p in params.rstrip(')').split(', ') if p)})"


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("token", sa.String(length=1024), nullable=False),
        sa.Column("app_version", sa.String(length=32), nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_devices_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_devices_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index("uq_devices_token", "devices", ["tenant_id", "token"], unique=True)
    op.create_index("ix_devices_tenant_user", "devices", ["tenant_id", "user_id"], unique=False)
    op.create_index("ix_devices_token_any_tenant", "devices", ["token"], unique=False)
    op.create_table(
        "notification_preferences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("push", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_notification_preferences_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_preferences")),
    )
    op.create_index(
        "uq_notification_preferences_user", "notification_preferences", ["tenant_id", "user_id"], unique=True
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("event_types", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=200), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_failure_at", TS, nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_endpoints_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_tenant", "webhook_endpoints", ["tenant_id", "id"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["webhook_endpoints.id"], name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_deliveries_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "uq_webhook_deliveries_event", "webhook_deliveries", ["tenant_id", "endpoint_id", "event_id"], unique=True
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint", "webhook_deliveries", ["tenant_id", "endpoint_id", "id"], unique=False
    )
    op.create_index(
        "ix_webhook_deliveries_unfinished", "webhook_deliveries", ["tenant_id", "next_attempt_at"], unique=False,
        postgresql_where=sa.text("status IN ('pending', 'sending', 'retrying')"),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_event_deliveries_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
    )
    op.create_index(
        "ix_event_deliveries_undelivered", "event_deliveries", ["tenant_id", "created_at"], unique=False,
        postgresql_where=sa.text("status IN ('pending', 'delivering')"),
    )
    op.create_table(
        "platform_admins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("granted_by", sa.String(length=120), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_platform_admins_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_admins")),
    )
    op.create_index("uq_platform_admins_user", "platform_admins", ["user_id"], unique=True)

    for table in TENANT_TABLES:
        enable_tenant_rls(table)
        grant_to_app(table)
    # No policy and no grant: only the owner (the CLI, the functions below) reads or writes operators.
    op.execute("ALTER TABLE platform_admins ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE platform_admins FORCE ROW LEVEL SECURITY")

    # Each new event gets its delivery row in the inserting transaction (as the inserting role, under
    # the same tenant scope, so row-level security checks it like any insert).
    op.execute(
        "CREATE FUNCTION add_event_delivery() RETURNS trigger LANGUAGE plpgsql "
        "SET search_path = pg_catalog, public AS $$ BEGIN "
        "  INSERT INTO event_deliveries (id, tenant_id, status, attempts, created_at, updated_at) "
        "  VALUES (NEW.id, NEW.tenant_id, 'pending', 0, NEW.created_at, NEW.created_at); "
        "  RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER events_add_delivery AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION add_event_delivery()"
    )
    for signature, body in _FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")
        op.execute(f"REVOKE ALL ON FUNCTION {_signature_types(signature)} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {_signature_types(signature)} TO "{app_role()}"')


def downgrade() -> None:
    for signature in reversed(_FUNCTIONS):
        op.execute(f"DROP FUNCTION {_signature_types(signature)}")
    op.execute("DROP TRIGGER events_add_delivery ON events")
    op.execute("DROP FUNCTION add_event_delivery()")
    op.drop_index("uq_platform_admins_user", table_name="platform_admins")
    op.drop_table("platform_admins")
    op.drop_index("ix_event_deliveries_undelivered", table_name="event_deliveries",
                  postgresql_where=sa.text("status IN ('pending', 'delivering')"))
    op.drop_table("event_deliveries")
    op.drop_index("ix_webhook_deliveries_unfinished", table_name="webhook_deliveries",
                  postgresql_where=sa.text("status IN ('pending', 'sending', 'retrying')"))
    op.drop_index("ix_webhook_deliveries_endpoint", table_name="webhook_deliveries")
    op.drop_index("uq_webhook_deliveries_event", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_endpoints_tenant", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("uq_notification_preferences_user", table_name="notification_preferences")
    op.drop_table("notification_preferences")
    op.drop_index("ix_devices_token_any_tenant", table_name="devices")
    op.drop_index("ix_devices_tenant_user", table_name="devices")
    op.drop_index("uq_devices_token", table_name="devices")
    op.drop_table("devices")
