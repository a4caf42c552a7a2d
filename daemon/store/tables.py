"""The store's tables, defined once: the migrations, SQLStore and SQLiteStore use them.

- ``outbox``: events not yet confirmed by the broker; ``seq`` never reused, so
  "oldest first" is "lowest ``seq`` first" (SQLite: ``AUTOINCREMENT``).
- ``lifecycle_state``: the trackers' records, one JSON object per key.
- ``units``: who owns each ownership unit and its epoch (the fencing token).
- ``inbox``: webhook deliveries waiting for their unit's owner.

``unit`` is "" in rows written before units existed (release 1) and the
cluster name for a single relay.

Types: JSON text can be megabytes (``[publisher] max_event_bytes``), so it is
``LONGTEXT`` on MySQL/MariaDB, where ``TEXT`` stops at 64 KiB; times are
``time.time()`` floats, double precision everywhere.

Indexes by unit exist on the shared databases only: the embedded file serves
one relay, which reads every unit, and they would only slow its writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = ["INBOX", "LIFECYCLE_STATE", "METADATA", "OUTBOX", "UNITS", "JsonText", "Time"]

#: Index and constraint names the migrations can refer to on every backend.
METADATA = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
})

#: Type of JSON documents (event payloads, state records, alerts).
JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
#: Type of ``time.time()`` values.
Time = sa.Double()
_UNIT = sa.String(255)


def _shared(ddl: object, target: object, bind: object, dialect: sa.Dialect, **kw: object) -> bool:
    """Indexes by unit only where several relays read by unit (not the embedded file)."""
    return dialect.name != "sqlite"

#: Row ids that never wrap (SQLite's AUTOINCREMENT needs its INTEGER, 64-bit there too).
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

OUTBOX = sa.Table(
    "outbox", METADATA,
    sa.Column("seq", _ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("alarm_id", sa.String(255), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("payload", JsonText, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("unit", _UNIT, nullable=False, server_default=""),
    sa.Index(None, "unit", "seq").ddl_if(callable_=_shared),
    sqlite_autoincrement=True,
)

LIFECYCLE_STATE = sa.Table(
    "lifecycle_state", METADATA,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("record", JsonText, nullable=False),
    sa.Column("unit", _UNIT, nullable=False, server_default=""),
    sa.Index(None, "unit").ddl_if(callable_=_shared),
)

UNITS = sa.Table(
    "units", METADATA,
    sa.Column("unit", _UNIT, primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

INBOX = sa.Table(
    "inbox", METADATA,
    sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("unit", _UNIT, nullable=False),
    sa.Column("cluster", sa.String(255), nullable=False),
    sa.Column("source_url", sa.Text, nullable=False),
    sa.Column("alerts", JsonText, nullable=False),
    sa.Column("received_at", Time, nullable=False),
    sa.Index(None, "unit", "id").ddl_if(callable_=_shared),
    sqlite_autoincrement=True,
)
