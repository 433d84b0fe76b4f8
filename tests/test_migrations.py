"""The schema is built by the migrations, and they agree with the models."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from quorum.database import sync_url
from quorum.settings import Settings
from tenants import notify_models  # noqa: F401 - its tables join `metadata` (they share tenants.models.Base)
from tenants.models import metadata
from tests.conftest import Account


def test_models_and_migrations_agree(settings: Settings) -> None:
    engine = create_engine(sync_url(settings.database_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == [], f"models and migrations differ; write a migration: {differences}"


async def test_ids_are_uuid_v7(settings: Settings, account: Account) -> None:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT id, tenant_id FROM users WHERE email = %s", (account.email,)).fetchone()
    assert row is not None
    assert row[0].version == 7 and row[1].version == 7


def test_the_delivery_trigger_knows_the_webhook_only_events() -> None:
    import importlib

    from tenants.events import WEBHOOK_ONLY

    trigger = importlib.import_module("tenants.migrations.versions.0007_webhook_only_events")
    assert set(trigger.WEBHOOK_ONLY) == {t.value for t in WEBHOOK_ONLY}
    listed = ", ".join(f"'{t}'" for t in trigger.WEBHOOK_ONLY)
    assert f"NOT IN ({listed})" in trigger._WHEN_SOMEONE_LISTENS
