"""Ownership units: a unit column on outbox and lifecycle_state, the units and inbox tables.

Rows of release 1 get unit "" (a single relay reads every unit).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.store.tables import JsonText, Time

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # ADD COLUMN with a constant default: no table rebuild on SQLite, instant elsewhere.
    op.add_column("outbox", sa.Column("unit", sa.String(255), nullable=False,
                                      server_default=""))
    op.add_column("lifecycle_state", sa.Column("unit", sa.String(255), nullable=False,
                                               server_default=""))
    # Only a shared database reads by unit; on the embedded file (one relay, all
    # units) the indexes would only slow every put and acknowledgement down.
    shared = op.get_bind().dialect.name != "sqlite"
    if shared:
        op.create_index("ix_outbox_unit_seq", "outbox", ["unit", "seq"])
        op.create_index("ix_lifecycle_state_unit", "lifecycle_state", ["unit"])
    op.create_table(
        "units",
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("unit", name="pk_units"),
    )
    op.create_table(
        "inbox",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("alerts", JsonText, nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        sqlite_autoincrement=True,
    )
    if shared:
        op.create_index("ix_inbox_unit_id", "inbox", ["unit", "id"])
