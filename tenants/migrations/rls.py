"""Row-level security and grants, used by every migration that adds a tenant table."""

from __future__ import annotations

from alembic import op


def app_role() -> str:
    """The application role's name, handed to Alembic by `quorum db` (see tenants/db_commands.py)."""
    return op.get_context().config.attributes["app_role"]


def enable_tenant_rls(table: str, column: str = "tenant_id") -> None:
    """Rows of `table` are visible and writable only in a transaction scoped to their tenant."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = current_tenant_id()) WITH CHECK ({column} = current_tenant_id())"
    )


def grant_to_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    op.execute(f'GRANT {privileges} ON {table} TO "{app_role()}"')
