"""alembic environment of the store schema: runs on the connection migration.py hands in."""

from __future__ import annotations

from alembic import context

from daemon.store.tables import METADATA

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA)
with context.begin_transaction():
    context.run_migrations()
