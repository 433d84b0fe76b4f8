"""A used refresh token remembers its successor, so a concurrent duplicate refresh gets the same pair.

A phone waking with two requests in flight presents one refresh token twice; the loser was taken for
a thief and the family revoked. Within a short grace window the loser is now answered with the
winner's successor, re-signed from its stored id and expiry (no token text is stored).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("replaced_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("refresh_tokens", "replaced_by")
