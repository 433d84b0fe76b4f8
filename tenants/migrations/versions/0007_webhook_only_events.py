"""Decisions and order updates wait for delivery only where a webhook can receive them.

No phone is told about them (push has no text for them), so for a tenant without an active webhook
endpoint the `event_deliveries` row the trigger added for each was claimed and deleted by a delivery
task that had nothing to do: at every cycle of every bot. The trigger now adds it for those two types
only when the tenant has an active endpoint. The list is `tenants.events.WEBHOOK_ONLY`
(tests/test_migrations.py checks they agree).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WEBHOOK_ONLY = ("decision", "order")
_WHEN_SOMEONE_LISTENS = (
    "CREATE OR REPLACE FUNCTION add_event_delivery() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path = pg_catalog, public AS $$ BEGIN "
    "  IF NEW.type NOT IN ('decision', 'order') OR EXISTS ("
    "    SELECT FROM webhook_endpoints w WHERE w.tenant_id = NEW.tenant_id AND w.is_active) THEN "
    "    INSERT INTO event_deliveries (id, tenant_id, status, attempts, created_at, updated_at) "
    "    VALUES (NEW.id, NEW.tenant_id, 'pending', 0, NEW.created_at, NEW.created_at); "
    "  END IF; "
    "  RETURN NULL; END $$"
)

_ALWAYS = (
    "CREATE OR REPLACE FUNCTION add_event_delivery() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path = pg_catalog, public AS $$ BEGIN "
    "  INSERT INTO event_deliveries (id, tenant_id, status, attempts, created_at, updated_at) "
    "  VALUES (NEW.id, NEW.tenant_id, 'pending', 0, NEW.created_at, NEW.created_at); "
    "  RETURN NULL; END $$"
)


def upgrade() -> None:
    op.execute(_WHEN_SOMEONE_LISTENS)


def downgrade() -> None:
    op.execute(_ALWAYS)
