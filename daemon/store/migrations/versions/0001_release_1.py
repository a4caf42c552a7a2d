"""The schema of the releases before high availability: outbox and lifecycle_state.

An embedded SQLite file written by those releases (PRAGMA user_version 1) has exactly
these tables; daemon.store.migration stamps it at this revision and upgrades it from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.store.tables import JsonText, Time

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("seq", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("alarm_id", sa.String(255), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("payload", JsonText, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "lifecycle_state",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("record", JsonText, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_lifecycle_state"),
    )
