"""One call that scopes a transaction to a tenant and says whether the caller's session is live.

Every authenticated request did this in two statements (set the tenant, check the session); most of
a read's cost was statements, so they become one.

Revision ID: 0003_begin_tenant_session
Revises: 0002_vault_bots_api_keys_audit
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

from tenants.migrations.rls import app_role

revision = "0003_begin_tenant_session"
down_revision = "0002_vault_bots_api_keys_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SECURITY DEFINER only for the liveness check, which must see the session before the tenant is
    # trusted; it answers a yes or no about exactly the (tenant, session, user) the token names.
    op.execute(
        "CREATE FUNCTION begin_tenant_session(p_tenant uuid, p_session uuid, p_user uuid) RETURNS boolean "
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
        "BEGIN "
        "  PERFORM set_config('app.tenant_id', p_tenant::text, true); "
        "  RETURN EXISTS (SELECT 1 FROM auth_sessions s JOIN users u ON u.id = s.user_id "
        "    JOIN tenants t ON t.id = u.tenant_id WHERE s.id = p_session AND u.id = p_user "
        "    AND u.tenant_id = p_tenant AND s.revoked_at IS NULL AND u.is_active AND t.is_active); "
        "END $$"
    )
    op.execute("REVOKE ALL ON FUNCTION begin_tenant_session(uuid, uuid, uuid) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION begin_tenant_session(uuid, uuid, uuid) TO "{app_role()}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION begin_tenant_session(uuid, uuid, uuid)")
