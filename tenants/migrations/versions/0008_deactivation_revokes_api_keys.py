"""Deactivating a user revokes their API keys for good; a key never acts beyond its creator's role.

Before, `auth_find_api_key` only checked that the user was active, so reactivating a user revived
every key they had. Now deactivation revokes the keys (reason in the audit row), the keys of users
deactivated before this revision are revoked here, and the lookup returns the creator's role so
authentication grants a key no scope the role lacks (a member demoted or a scope removed later).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from tenants.migrations.rls import app_role

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SET_ACTIVE = (
    "CREATE OR REPLACE FUNCTION admin_set_user_active(p_user uuid, p_session uuid, p_target uuid, "
    "p_active boolean, p_audit_id uuid, p_client_ip text) "
    "RETURNS TABLE (id uuid, tenant_id uuid, email varchar, role varchar, is_active boolean, "
    "  created_at timestamptz, last_login_at timestamptz, platform_admin boolean) "
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
    "DECLARE v_tenant uuid; v_keys integer := 0; "
    "BEGIN "
    "  IF NOT is_platform_admin(p_user, p_session) THEN "
    "    RAISE EXCEPTION 'not a platform admin' USING ERRCODE = '42501'; END IF; "
    "  UPDATE users u SET is_active = p_active, updated_at = now() WHERE u.id = p_target "
    "    RETURNING u.tenant_id INTO v_tenant; "
    "  IF v_tenant IS NULL THEN RETURN; END IF; "
    "  IF NOT p_active THEN "
    "    UPDATE auth_sessions s SET revoked_at = now(), revoked_reason = 'deactivated', updated_at = now() "
    "      WHERE s.user_id = p_target AND s.revoked_at IS NULL; "
    "    UPDATE api_keys k SET revoked_at = now(), updated_at = now() "
    "      WHERE k.tenant_id = v_tenant AND k.user_id = p_target AND k.revoked_at IS NULL; "
    "    GET DIAGNOSTICS v_keys = ROW_COUNT; "
    "  END IF; "
    "  INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, action, target_type, target_id, "
    "    client_ip, details, created_at, updated_at) "
    "  VALUES (p_audit_id, v_tenant, 'platform_admin', p_user, "
    "    CASE WHEN p_active THEN 'user_activated' ELSE 'user_deactivated' END, 'user', p_target, "
    "    left(coalesce(p_client_ip, ''), 64), "
    "    CASE WHEN p_active THEN '{}'::jsonb ELSE jsonb_build_object('apiKeysRevoked', v_keys) END, now(), now()); "
    "  RETURN QUERY SELECT u.id, u.tenant_id, u.email, u.role, u.is_active, u.created_at, u.last_login_at, "
    "    EXISTS (SELECT 1 FROM platform_admins a WHERE a.user_id = u.id) FROM users u WHERE u.id = p_target; "
    "END $$"
)

_FIND_KEY = (
    "CREATE FUNCTION auth_find_api_key(p_id uuid) RETURNS TABLE "
    "(tenant_id uuid, user_id uuid, secret_hash bytea, scopes varchar[], rate_limit_per_minute int{role}) "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$ "
    "SELECT k.tenant_id, k.user_id, k.secret_hash, k.scopes, k.rate_limit_per_minute{u_role} "
    "FROM api_keys k JOIN users u ON u.id = k.user_id JOIN tenants t ON t.id = k.tenant_id "
    "WHERE k.id = p_id AND k.revoked_at IS NULL AND u.is_active AND t.is_active $$"
)


def _replace_find_key(role: str, u_role: str) -> None:
    op.execute("DROP FUNCTION auth_find_api_key(uuid)")
    op.execute(_FIND_KEY.format(role=role, u_role=u_role))
    op.execute("REVOKE ALL ON FUNCTION auth_find_api_key(uuid) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION auth_find_api_key(uuid) TO "{app_role()}"')


def upgrade() -> None:
    op.execute(_SET_ACTIVE)
    _replace_find_key(", creator_role varchar", ", u.role")
    op.execute(
        "UPDATE api_keys k SET revoked_at = now(), updated_at = now() FROM users u "
        "WHERE u.id = k.user_id AND NOT u.is_active AND k.revoked_at IS NULL"
    )


def downgrade() -> None:
    _replace_find_key("", "")
    # admin_set_user_active keeps revoking keys: reviving them on reactivation was the bug.
