"""The embedded store: one SQLite file holding the alarm state and the outbox.

One SQLite file under ``[DEFAULT] state_dir`` holds the tables of
:mod:`daemon.store.tables`, among them:

- ``outbox``: every event not yet confirmed by the broker, in insertion order
  (an ``AUTOINCREMENT`` row id that is never reused, so "oldest first" is
  simply "lowest row id first");
- ``lifecycle_state``: the lifecycle tracker's records (one JSON object per
  key), written in the same transaction as the events they caused, so after a
  crash the state and the outbox always agree;
- ``units`` and ``inbox`` (ownership and webhook handoff between relays; a
  single relay only fills them if told to).

Schema: the migrations' (:mod:`daemon.store.migration`). At open, a new file
gets the newest schema, a file of an earlier release is upgraded (alembic,
once), a current one is recognised with one query; a file of a newer release
(``PRAGMA user_version`` above ours) is refused. This stays on :mod:`sqlite3`
rather than :class:`~daemon.store.sql.SQLStore` on an SQLite URL: measured with
bench_publish's outbox, SQLAlchemy Core through oslo.db (a new connection per
transaction on SQLite) stored events 2-4 times slower (a storm's cost) and drained
them no faster, and importing it would add a third to the daemon's start.

Fencing: a fenced :meth:`SQLiteStore.put` reads the unit's epoch after ``BEGIN
IMMEDIATE``, under the database's write lock, so no claim can come between.

Durability (WAL journal): :meth:`SQLiteStore.put` commits with
``synchronous=FULL``, so once it returns the events and the state survive a
power loss, not only a process crash; that is what lets the webhook answer 200.
:meth:`SQLiteStore.ack` commits with ``synchronous=NORMAL``: WAL keeps it atomic and
safe against a crash of the process, and a power loss can only forget the last
acknowledgements, which makes the relay send those events again under the same
``event_id`` (consumers deduplicate on it). Acknowledgements are the hot path
(one per event sent), puts are rare (one per batch of transitions), so this
keeps the fsync where it buys something.

Reading back: events put by this process and not yet read are also kept in
memory (up to ``cache_events``), and :meth:`SQLiteStore.pending_after` hands back
those objects instead of decoding the stored JSON again: the dispatcher reads
each event once, usually right after it was put, and decoding the payload was
the largest cost of a read. Events stored by an earlier process, or put while
the cache was full, are decoded from the database as before. The cache never
changes what is sent: the stored row is the same event, and the dispatcher
sends exactly what :meth:`SQLiteStore.put` was given (callers must not change an
event's payload after putting it).

Size: an event whose payload takes more than ``max_event_bytes`` of JSON (one
alert with a 12 MB annotation) is cut by :func:`~daemon.pipeline.event.bound_event`
before it is stored, and so is one stored larger by an earlier relay when it is
read back: the broker refuses a message over its own limit (RabbitMQ 4: 16 MiB),
and such an event would hold its alarm in the outbox forever. The length of the
JSON the outbox writes anyway is the measure, so an event of normal size costs
one comparison.

Threading: the connection is opened with ``check_same_thread=False`` because
the service creates it in one thread and then calls it from its single DB
executor thread. All calls must come from that one thread (one at a time);
the object has no lock of its own.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from oslo_log import log

from daemon import exception
from daemon.pipeline.event import AlarmEvent, encode_payload, new_event
from daemon.store import migration
from daemon.store.base import InboxItem, Store

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "MIN_EVENT_BYTES", "SQLiteStore"]

LOG = log.getLogger(__name__)

#: Default of ``max_event_bytes`` (``[publisher] max_event_bytes``): 1 MiB.
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
#: Smallest ``max_event_bytes``: room for the fields that are never cut.
MIN_EVENT_BYTES = 16 * 1024

# Rows deleted per DELETE statement (SQLite's default limit on host
# parameters is 32766; stay well below it).
_ACK_CHUNK = 500

# A new file's schema at migration.HEAD, as the migrations make it on SQLite
# (tests/unit/store/test_migration.py compares the two): creating it with
# sqlite3 keeps SQLAlchemy and alembic out of a single relay's first start.
_NEW_FILE_SCHEMA = (
    """CREATE TABLE alembic_version (
        version_num VARCHAR(32) NOT NULL,
        CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))""",
    """CREATE TABLE outbox (
        seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        event_id VARCHAR(64) NOT NULL,
        event_type VARCHAR(64) NOT NULL,
        alarm_id VARCHAR(255) NOT NULL,
        sequence INTEGER NOT NULL,
        payload TEXT NOT NULL,
        created_at DOUBLE NOT NULL,
        unit VARCHAR(255) DEFAULT '' NOT NULL,
        CONSTRAINT uq_outbox_event_id UNIQUE (event_id))""",
    """CREATE TABLE lifecycle_state (
        "key" VARCHAR(255) NOT NULL,
        record TEXT NOT NULL,
        unit VARCHAR(255) DEFAULT '' NOT NULL,
        CONSTRAINT pk_lifecycle_state PRIMARY KEY ("key"))""",
    """CREATE TABLE units (
        unit VARCHAR(255) NOT NULL,
        owner VARCHAR(255) NOT NULL,
        epoch INTEGER NOT NULL,
        updated_at DOUBLE NOT NULL,
        CONSTRAINT pk_units PRIMARY KEY (unit))""",
    """CREATE TABLE inbox (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        unit VARCHAR(255) NOT NULL,
        cluster VARCHAR(255) NOT NULL,
        source_url TEXT NOT NULL,
        alerts TEXT NOT NULL,
        received_at DOUBLE NOT NULL)""",
)

_PENDING = "SELECT seq, event_id, event_type, alarm_id, sequence, payload FROM outbox"


def _in(column: str, units: Collection[str] | None) -> tuple[str, list[str]]:
    """`` AND column IN (?, ...)`` and its parameters; nothing for all units."""
    if units is None:
        return "", []
    units = list(units)
    return f" AND {column} IN ({','.join('?' * len(units))})", units

#: Default of ``max_event_bytes`` (``[publisher] max_event_bytes``): 1 MiB.
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
#: Smallest ``max_event_bytes``: room for the fields that are never cut.
MIN_EVENT_BYTES = 16 * 1024

# Rows deleted per DELETE statement (SQLite's default limit on host
# parameters is 32766; stay well below it).
_ACK_CHUNK = 500


class SQLiteStore(Store):
    """Events waiting for a broker confirmation, and the lifecycle state, in SQLite.

    :param path: the SQLite file (created if missing)
    :param max_events: most events kept unsent; :meth:`put` raises
        :class:`~daemon.exception.OutboxFull` beyond it
    :param cache_events: most events put and not yet read kept in memory to
        skip decoding them on read (0: none); about 2.5 KB each
    :param max_event_bytes: most bytes of JSON an event's payload takes; a
        larger one is cut (``bound_event``) when it is put or read back
    """

    def __init__(self, path: str, *, max_events: int, cache_events: int = 10000,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if cache_events < 0:
            raise ValueError("cache_events must be 0 or more")
        if max_event_bytes < MIN_EVENT_BYTES:
            raise ValueError(f"max_event_bytes must be at least {MIN_EVENT_BYTES}")
        self.path = path
        self.max_events = max_events
        self.cache_events = cache_events
        self.max_event_bytes = max_event_bytes
        self._db: sqlite3.Connection | None = None
        self._unlock: Callable[[], None] | None = None
        self._depth = 0
        # event_id -> the event put by this process and not read back yet.
        self._cache: dict[str, AlarmEvent] = {}

    # -- lifecycle --------------------------------------------------------

    def open(self) -> None:
        """Open (and create or upgrade) the database.

        :raises sqlite3.Error: the file cannot be opened or is not ours
        """
        if self._db is not None:
            return
        db = sqlite3.connect(self.path, isolation_level=None,
                             check_same_thread=False, timeout=30.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > migration.SQLITE_USER_VERSION:
                raise sqlite3.DatabaseError(
                    f"{self.path} has schema version {version}, newer than "
                    f"this relay's {migration.SQLITE_USER_VERSION}")
            revision = self._revision(db)
            if revision is None and not db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
                self._create(db)
            elif revision != migration.HEAD:
                self._migrate()
            self._depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except BaseException:
            db.close()
            raise
        self._db = db
        LOG.info("outbox %s opened with %d unsent events", self.path, self._depth)

    @staticmethod
    def _revision(db: sqlite3.Connection) -> str | None:
        try:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:  # no such table: new, or written by release 1
            return None
        return None if row is None else row[0]

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        """A new, empty file: the schema at :data:`migration.HEAD`, in one transaction."""
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _NEW_FILE_SCHEMA:
                db.execute(statement)
            db.execute("INSERT INTO alembic_version (version_num) VALUES (?)",
                       (migration.HEAD,))
            db.execute(f"PRAGMA user_version={migration.SQLITE_USER_VERSION:d}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        """Create the tables, or upgrade a file of an earlier release (alembic)."""
        import sqlalchemy.exc

        from daemon.store.sql import create_engine

        engine = create_engine(f"sqlite:///{self.path}", max_retries=0)
        try:
            before, after = migration.upgrade(engine)
        except sqlalchemy.exc.OperationalError as err:
            raise sqlite3.OperationalError(str(err.orig)) from err
        finally:
            engine.dispose()
        if before is not None and before != after:
            LOG.info("state file %s upgraded from schema %s to %s", self.path, before, after)

    def hold_single_relay_lock(self) -> None:
        """Hold, until :meth:`close` or the process ends, an exclusive ``flock`` on
        the file's ``.lock`` companion.

        :raises StoreInUse: another relay runs on this state file
        """
        from daemon.store.lock import flock

        if self._unlock is None:
            self._unlock = flock(self.path, f"alarm-relay on {socket.gethostname()} "
                                 f"pid {os.getpid()}", self.path)

    def close(self) -> None:
        """Close the database and release the single-relay lock; idempotent."""
        unlock, self._unlock = self._unlock, None
        if unlock is not None:
            unlock()
        db, self._db = self._db, None
        self._cache.clear()
        if db is None:
            return
        try:
            db.execute("PRAGMA optimize")
        except sqlite3.Error:  # pragma: no cover - best effort
            pass
        db.close()

    def __enter__(self) -> SQLiteStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("outbox is not open")
        return self._db

    # -- writes -----------------------------------------------------------

    def put(self, events: Sequence[AlarmEvent],
            states: Iterable[tuple[str, dict[str, Any] | None]] = (), *,
            unit: str = "", fence: int | None = None, inbox_done: Sequence[int] = ()) -> None:
        """Store events and lifecycle state records (and delete inbox rows) in one transaction.

        Events keep the order given (an alarm's events must be given in
        sequence order, which is the order they are sent in). An event whose
        ``event_id`` is already stored is ignored.

        :param events: the events to send
        :param states: ``(key, record)`` pairs; a ``None`` record deletes the key
        :param unit: the ownership unit written with the events and records
        :param fence: None, or the epoch the unit must still be at
            (checked under SQLite's write lock, in the same transaction)
        :param inbox_done: inbox row ids to delete with this write
        :raises OutboxFull: depth + len(events) would exceed ``max_events``;
            nothing was stored
        :raises FencedWrite: ``unit`` is no longer at epoch ``fence``; nothing was stored
        :raises StoreError: the database failed (locked, disk, I/O); nothing was stored
        :raises sqlite3.Error: another failure; nothing was stored
        """
        db = self._conn
        if events:
            self.check_room(len(events))
        now = time.time()
        texts = [encode_payload(e.payload) for e in events]
        if texts and max(map(len, texts)) > self.max_event_bytes:
            events, texts = self._bound(events, texts, "put")
        rows = [(e.event_id, e.event_type, e.alarm_id, e.sequence, text, now, unit)
                for e, text in zip(events, texts, strict=True)]
        upserts = []
        deletes = []
        for key, record in states:
            if record is None:
                deletes.append((key,))
            else:
                upserts.append((key, json.dumps(record, separators=(",", ":")), unit))
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise exception.StoreError(problem=f"{self.path}: {err}") from err
        try:
            if fence is not None:
                self._check_fence(db, unit, fence)
            before = db.total_changes
            if rows:
                db.executemany(
                    "INSERT OR IGNORE INTO outbox (event_id, event_type, alarm_id,"
                    " sequence, payload, created_at, unit) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows)
            added = db.total_changes - before
            if upserts:
                db.executemany(
                    "INSERT OR REPLACE INTO lifecycle_state (key, record, unit)"
                    " VALUES (?, ?, ?)", upserts)
            if deletes:
                db.executemany("DELETE FROM lifecycle_state WHERE key = ?", deletes)
            if inbox_done:
                db.executemany("DELETE FROM inbox WHERE id = ?",
                               [(int(i),) for i in inbox_done])
            db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            db.execute("ROLLBACK")
            raise exception.StoreError(problem=f"{self.path}: {err}") from err
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._depth += added
        if added == len(rows) and len(self._cache) + len(rows) <= self.cache_events:
            # Only when every event was new: an ignored duplicate's stored row
            # is another object, maybe with another payload.
            cache = self._cache
            for event in events:
                cache[event.event_id] = event

    @staticmethod
    def _check_fence(db: sqlite3.Connection, unit: str, fence: int) -> None:
        row = db.execute("SELECT epoch FROM units WHERE unit = ?", (unit,)).fetchone()
        epoch = 0 if row is None else row[0]
        if epoch != fence:
            raise exception.FencedWrite(unit=unit, fence=fence, epoch=epoch)

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> sqlite3.Cursor:
        """Run ``statements`` in one write transaction; the last one's cursor.

        :raises StoreError: the database failed; nothing was written
        """
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    cursor = db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as err:
            raise exception.StoreError(problem=f"{self.path}: {err}") from err
        return cursor

    def claim(self, unit: str, member: str) -> int:
        """Take ownership of ``unit`` for ``member``; returns the unit's new epoch.

        :raises StoreError: the database failed; nothing changed
        """
        self._write([(
            "INSERT INTO units (unit, owner, epoch, updated_at) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (unit) DO UPDATE SET owner = excluded.owner,"
            " epoch = units.epoch + 1, updated_at = excluded.updated_at",
            (unit, member, time.time()))])
        return self._conn.execute("SELECT epoch FROM units WHERE unit = ?", (unit,)).fetchone()[0]

    def owners(self) -> dict[str, tuple[str, int]]:
        """``unit -> (member, epoch)`` of every unit ever claimed."""
        return {unit: (owner, epoch) for unit, owner, epoch in self._conn.execute(
            "SELECT unit, owner, epoch FROM units ORDER BY unit")}

    def inbox_put(self, unit: str, cluster: str, source_url: str,
                  alerts: list[dict[str, Any]]) -> int:
        """Store one webhook delivery for ``unit``'s owner, durably; returns its row id.

        :raises StoreError: the database failed; nothing was stored
        """
        cursor = self._write([(
            "INSERT INTO inbox (unit, cluster, source_url, alerts, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (unit, cluster, source_url, json.dumps(alerts, separators=(",", ":")),
             time.time()))])
        return cursor.lastrowid

    def inbox_take(self, unit: str, limit: int) -> list[InboxItem]:
        """Up to ``limit`` deliveries stored for ``unit``, oldest first (not deleted)."""
        return [InboxItem(row[0], row[1], row[2], json.loads(row[3]), row[4])
                for row in self._conn.execute(
                    "SELECT id, cluster, source_url, alerts, received_at FROM inbox"
                    " WHERE unit = ? ORDER BY id LIMIT ?", (unit, limit))]

    def ack(self, event_ids: Iterable[str]) -> int:
        """Remove events the broker confirmed.

        :param event_ids: ids of confirmed events; unknown ids are ignored
        :returns: how many events were removed
        :raises sqlite3.Error: the write failed; nothing was removed
        """
        ids = list(event_ids)
        if not ids:
            return 0
        db = self._conn
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                for start in range(0, len(ids), _ACK_CHUNK):
                    chunk = ids[start:start + _ACK_CHUNK]
                    marks = ",".join("?" * len(chunk))  # placeholders only
                    db.execute(f"DELETE FROM outbox WHERE event_id IN ({marks})",  # noqa: S608
                               chunk)
                removed = db.total_changes - before
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.execute("PRAGMA synchronous=FULL")
        self._depth -= removed
        if self._cache:
            pop = self._cache.pop
            for event_id in ids:
                pop(event_id, None)
        self.note_room()
        return removed

    # -- reads ------------------------------------------------------------

    def pending(self, limit: int) -> list[AlarmEvent]:
        """The oldest unsent events, oldest first (insertion order).

        :param limit: most events returned
        """
        return self.pending_after(0, limit)[0]

    def pending_after(self, cursor: int, limit: int,
                      units: Collection[str] | None = None) -> tuple[list[AlarmEvent], int]:
        """Unsent events stored after ``cursor``, oldest first.

        The dispatcher reads each event once with this: it starts at cursor 0
        and passes back the cursor it got.

        :param cursor: 0, or a cursor returned by an earlier call
        :param limit: most events returned
        :param units: only the events of these units (None: all)
        :returns: the events and the cursor to pass next time
        """
        where, params = _in("unit", units)
        sql = f"{_PENDING} WHERE seq > ?{where} ORDER BY seq LIMIT ?"  # noqa: S608
        rows = self._conn.execute(sql, (cursor, *params, limit)).fetchall()
        if not rows:
            return [], cursor
        loads = json.loads
        take = self._cache.pop
        limit = self.max_event_bytes
        events = []
        for row in rows:
            event = take(row[1], None)
            if event is None:
                event = new_event(row[1], row[2], row[3], row[4], loads(row[5]))
                if len(row[5]) > limit:  # stored by an earlier relay, or a larger limit
                    event = self._bound([event], [row[5]], "read")[0][0]
            events.append(event)
        return events, rows[-1][0]

    def depth(self, units: Collection[str] | None = None) -> int:
        """Number of events stored and not yet confirmed (of ``units``, or all)."""
        db = self._conn
        if units is None:
            return self._depth
        where, params = _in("unit", units)
        return db.execute(f"SELECT COUNT(*) FROM outbox WHERE 1 = 1{where}",  # noqa: S608
                          params).fetchone()[0]

    def oldest_age(self, now: float, units: Collection[str] | None = None) -> float | None:
        """Age in seconds of the oldest unsent event (of ``units``, or all), None when empty.

        :param now: the current ``time.time()``
        """
        where, params = _in("unit", units)
        row = self._conn.execute(
            f"SELECT created_at FROM outbox WHERE 1 = 1{where} ORDER BY seq LIMIT 1",  # noqa: S608
            params).fetchone()
        return None if row is None else max(0.0, now - row[0])

    def load_states(self, units: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The lifecycle state records (all, or those of ``units``), for ``restore()``."""
        where, params = _in("unit", units)
        return [json.loads(r[0]) for r in self._conn.execute(
            f"SELECT record FROM lifecycle_state WHERE 1 = 1{where} ORDER BY key",  # noqa: S608
            params)]
