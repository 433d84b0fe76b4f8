"""Login reads what it checks in one lookup, so a known email costs what an unknown one does.

`auth_find_login` returned only ids, and login then opened a tenant transaction to read the hash:
an extra round trip only known emails paid (~10 ms, measurable from outside). It now returns the
hash and whether the user is active with the ids; still by exact email only, still owner-run.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from tenants.migrations.rls import app_role

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _replace(columns: str, selected: str) -> None:
    op.execute("DROP FUNCTION auth_find_login(text)")
    op.execute(
        f"CREATE FUNCTION auth_find_login(p_email text) RETURNS TABLE ({columns}) "  # noqa: S608 (constant columns)
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS "
        f"$$ SELECT {selected} FROM users WHERE email = p_email $$"
    )
    op.execute("REVOKE ALL ON FUNCTION auth_find_login(text) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION auth_find_login(text) TO "{app_role()}"')


def upgrade() -> None:
    _replace("user_id uuid, tenant_id uuid, password_hash varchar, is_active boolean",
             "id, tenant_id, password_hash, is_active")


def downgrade() -> None:
    _replace("user_id uuid, tenant_id uuid", "id, tenant_id")
