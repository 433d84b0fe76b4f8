"""Row-level security: the database itself keeps tenants apart, whatever the application's queries do."""

from __future__ import annotations

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from quorum.settings import Settings
from tests.conftest import register

TENANT_TABLES_QUERY = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
  AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
       OR c.relname = 'tenants')
"""


def _app_conn(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(settings.app_database_url, autocommit=False)


def _owner_conn(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(settings.database_url.replace("postgresql+psycopg://", "postgresql://"))


def tenant_tables(settings: Settings) -> list[str]:
    with _owner_conn(settings) as conn:
        return [row[0] for row in conn.execute(TENANT_TABLES_QUERY)]


def test_every_tenant_table_has_forced_row_level_security(settings: Settings) -> None:
    with _owner_conn(settings) as conn:
        rows = conn.execute(TENANT_TABLES_QUERY).fetchall()
    assert {"tenants", "users", "auth_sessions", "refresh_tokens"} <= {r[0] for r in rows}
    for name, enabled, forced in rows:
        assert enabled and forced, f"{name} must ENABLE and FORCE row level security"


def test_application_role_neither_owns_tables_nor_bypasses_rls(settings: Settings) -> None:
    with _app_conn(settings) as conn:
        role, superuser, bypass = conn.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == settings.database_app_role and not superuser and not bypass
        owned = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        ).fetchone()[0]
        assert owned == 0


async def test_raw_sql_under_the_app_role_sees_no_rows_of_another_tenant(
    client: AsyncTestClient, settings: Settings
) -> None:
    first = await register(client)
    second = await register(client)
    first_tenant = (await client.get("/v1/me", headers=first.headers)).json()["tenant"]["id"]
    second_tenant = (await client.get("/v1/me", headers=second.headers)).json()["tenant"]["id"]
    tables = tenant_tables(settings)

    with _app_conn(settings) as conn:
        # Scoped to the first tenant, its rows are there: the queries below can find rows at all.
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (first_tenant,))
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM refresh_tokens").fetchone()[0] >= 1
        conn.rollback()

        for setting in (second_tenant, None):
            for table in tables:
                if setting is not None:
                    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (setting,))
                column = "id" if table == "tenants" else "tenant_id"
                leaked = conn.execute(
                    f"SELECT count(*) FROM {table} WHERE {column} = %s", (first_tenant,)  # noqa: S608
                ).fetchone()[0]
                assert leaked == 0, f"{table} showed the first tenant's rows with setting {setting!r}"
                conn.rollback()


async def test_the_app_role_cannot_write_rows_into_another_tenant(client: AsyncTestClient, settings: Settings) -> None:
    victim = await register(client)
    attacker = await register(client)
    victim_tenant = (await client.get("/v1/me", headers=victim.headers)).json()["tenant"]["id"]
    attacker_tenant = (await client.get("/v1/me", headers=attacker.headers)).json()["tenant"]["id"]
    with _app_conn(settings) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (attacker_tenant,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO users (id, tenant_id, email, password_hash, role, password_changed_at, created_at, "
                "updated_at) VALUES (gen_random_uuid(), %s, 'planted@example.com', 'x', 'owner', now(), now(), now())",
                (victim_tenant,),
            )
        conn.rollback()
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (attacker_tenant,))
        updated = conn.execute("UPDATE users SET is_active = false WHERE tenant_id = %s", (victim_tenant,)).rowcount
        assert updated == 0
        conn.rollback()
    assert (await client.get("/v1/me", headers=victim.headers)).status_code == 200


def test_the_tenant_setting_does_not_outlive_its_transaction(settings: Settings) -> None:
    with _app_conn(settings) as conn:
        conn.execute("SELECT set_config('app.tenant_id', gen_random_uuid()::text, true)")
        conn.commit()
        assert conn.execute("SELECT current_tenant_id()").fetchone()[0] is None
