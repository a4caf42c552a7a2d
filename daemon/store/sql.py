"""The shared store: the same tables in PostgreSQL or MySQL/MariaDB, through oslo.db.

Several relays share one database (``[database] connection``); each writes
only the units it owns (``put(..., unit=, fence=)``) and reads only theirs.
SQLAlchemy Core on an oslo.db engine (its pool, connection retries at start
and error translation); the tables are :mod:`daemon.store.tables`, the schema
is managed by :mod:`daemon.store.migration` (``alarm-relay-manage db sync``).
It also opens an SQLite URL (``db copy`` reads a single relay's file with it).

Fencing: a fenced :meth:`SQLStore.put` reads the unit's epoch with ``SELECT
... FOR UPDATE`` first, in its own transaction: :meth:`SQLStore.claim` updates
that row, so a claim waits for a write in progress and every write after the
claim sees the new epoch (on SQLite the transaction takes the write lock at
``BEGIN IMMEDIATE`` instead).

Order: ``seq`` comes from the database's sequence; rows of one unit are
written by its owner alone, one transaction at a time (one DB thread), so
within a unit a later commit never has a lower ``seq`` and the dispatcher's
cursor (:meth:`SQLStore.pending_after`) skips nothing.

Errors: a database that fails or cannot be reached raises
:class:`~daemon.exception.StoreError` with nothing written; oslo.db's engine
reconnects on the next call.

Durability: a write returns once committed (PostgreSQL ``synchronous_commit``,
InnoDB ``innodb_flush_log_at_trx_commit`` as the server sets them).
"""

from __future__ import annotations

import json
import os
import socket
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from oslo_db import exception as db_exception
from oslo_db.sqlalchemy import engines
from oslo_log import log
from sqlalchemy.dialects import mysql, postgresql, sqlite

from daemon import exception
from daemon.pipeline.event import AlarmEvent, encode_payload, new_event
from daemon.store import migration
from daemon.store.base import InboxItem, Store
from daemon.store.lock import flock
from daemon.store.sqlite import DEFAULT_MAX_EVENT_BYTES, MIN_EVENT_BYTES
from daemon.store.tables import INBOX, LIFECYCLE_STATE, OUTBOX, UNITS

__all__ = ["ENGINE_OPTIONS", "SQLStore", "create_engine", "reason", "redact"]

LOG = log.getLogger(__name__)

_T = TypeVar("_T")

# Rows per DELETE ... IN (...) statement.
_CHUNK = 500
# Tries of one claim that met a concurrent first claim of the same unit.
_CLAIM_TRIES = 5

#: Engine options of oslo.db taken from [database] (``create_engine`` keywords).
ENGINE_OPTIONS = ("sqlite_synchronous", "mysql_sql_mode", "mysql_wsrep_sync_wait",
                  "connection_recycle_time", "connection_debug", "max_pool_size",
                  "max_overflow", "pool_timeout", "connection_trace", "max_retries",
                  "retry_interval", "connection_parameters")

_FAILURES = (sa.exc.SQLAlchemyError, db_exception.DBError)

#: Seconds a connection attempt to a database server may take (unless the URL says).
CONNECT_TIMEOUT = 10


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid database URL>"


def create_engine(url: str, **options: Any) -> sa.Engine:
    """An oslo.db engine for ``url``.

    SQLite gets WAL and transactions that take the write lock at their start
    (``BEGIN IMMEDIATE``): pysqlite's own handling begins only at the first
    write, too late for a fenced write's read of the epoch.

    A server URL without ``connect_timeout`` gets one of
    :data:`CONNECT_TIMEOUT` seconds: an unreachable host would otherwise hold a
    webhook delivery for the TCP timeout (minutes) before it is answered 503.

    :param options: oslo.db ``create_engine`` keywords (:data:`ENGINE_OPTIONS`)
    :raises StoreError: the database cannot be reached (after oslo.db's retries)
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as err:
        raise exception.StoreError(problem="[database] connection is not an SQLAlchemy URL "
                                   f"({type(err).__name__})") from None
    if parsed.get_backend_name() in ("postgresql", "mysql") and \
            "connect_timeout" not in parsed.query:
        url = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)}
                                       ).render_as_string(hide_password=False)
    try:
        engine = engines.create_engine(url, **options)
    except _FAILURES as err:
        raise exception.StoreError(problem=f"{redact(url)}: {reason(err)}") from err
    if engine.dialect.name == "sqlite":
        # oslo.db already turned pysqlite's own BEGIN off and emits a deferred
        # one, which takes the write lock only at the first write: replaced.
        for listener in list(engine.dispatch.begin):
            if getattr(listener, "__name__", "") == "_sqlite_emit_begin":
                sa.event.remove(engine, "begin", listener)

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            if "in_transaction" not in connection.info:
                read = connection.get_execution_options().get("read_only", False)
                connection.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")
                connection.info["in_transaction"] = True
    return engine


def reason(err: BaseException) -> str:
    """The database's own words, on one line (without SQLAlchemy's statement dump)."""
    inner = getattr(err, "inner_exception", None) or getattr(err, "orig", None) or err
    orig = getattr(inner, "orig", None) or inner
    return " ".join(str(orig).split()) or type(orig).__name__


def _in(column: sa.ColumnElement, units: Collection[str] | None) -> sa.ColumnElement:
    return sa.true() if units is None else column.in_(list(units))


class SQLStore(Store):
    """Events, state records, units and the inbox in a database SQLAlchemy reaches.

    :param url: SQLAlchemy URL (``postgresql+psycopg2://``, ``mysql+pymysql://``,
        ``sqlite:///``)
    :param max_events: most events kept unsent (all units together)
    :param max_event_bytes: most bytes of JSON an event's payload takes (cut beyond)
    :param cache_events: most events put by this process and not yet read kept
        in memory, handed back by :meth:`pending_after` when the stored payload is
        the same text (skips decoding it)
    :param upgrade: at :meth:`open`, create or upgrade the schema (the embedded
        file); otherwise refuse a schema that is not current (a shared database:
        ``db sync`` upgrades it)
    :param engine_options: oslo.db ``create_engine`` keywords
    """

    def __init__(self, url: str, *, max_events: int, max_event_bytes: int | None = None,
                 cache_events: int = 10000, upgrade: bool = False,
                 engine_options: dict[str, Any] | None = None) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        max_event_bytes = max_event_bytes or DEFAULT_MAX_EVENT_BYTES
        if max_event_bytes < MIN_EVENT_BYTES:
            raise ValueError(f"max_event_bytes must be at least {MIN_EVENT_BYTES}")
        self.url = url
        self.where = redact(url)
        self.max_events = max_events
        self.max_event_bytes = max_event_bytes
        self.cache_events = cache_events
        self.upgrade = upgrade
        self.engine_options = dict(engine_options or {})
        self._engine: sa.Engine | None = None
        # event_id -> (event, its stored JSON), put by this process, not read yet.
        self._cache: dict[str, tuple[AlarmEvent, str]] = {}
        self._lock: Callable[[], None] | None = None

    # -- lifecycle --------------------------------------------------------

    def open(self) -> None:
        """Connect, and upgrade or check the schema.

        :raises StoreError: the database cannot be reached
        :raises SchemaMismatch: the schema is not current (and ``upgrade`` is off),
            or is newer than this relay
        """
        if self._engine is not None:
            return
        engine = create_engine(self.url, **self.engine_options)
        try:
            if self.upgrade:
                migration.upgrade(engine)
            else:
                migration.check_current(engine)
        except _FAILURES as err:
            engine.dispose()
            raise exception.StoreError(problem=f"{self.where}: {reason(err)}") from err
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        LOG.info("store %s opened with %d unsent events", self.where, self.depth())

    def close(self) -> None:
        """Release the single-relay lock if held, close the connections; idempotent."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock()
        engine, self._engine = self._engine, None
        self._cache.clear()
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> SQLStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def engine(self) -> sa.Engine:
        """The open engine.

        :raises RuntimeError: the store is not open
        """
        if self._engine is None:
            raise RuntimeError("store is not open")
        return self._engine

    @property
    def dialect(self) -> str:
        """``postgresql``, ``mysql`` (MariaDB too) or ``sqlite``."""
        return self.engine.dialect.name

    def _run(self, work: Callable[[sa.Connection], _T], *, write: bool = True) -> _T:
        """``work(connection)`` in one transaction (committed when ``write``).

        :raises StoreError: the database failed; nothing was written
        """
        engine = self.engine
        try:
            if write:
                with engine.begin() as connection:
                    return work(connection)
            with engine.connect().execution_options(read_only=True) as connection:
                return work(connection)
        except _FAILURES as err:
            raise exception.StoreError(problem=f"{self.where}: {reason(err)}") from err

    # -- writes -----------------------------------------------------------

    def put(self, events: Sequence[AlarmEvent],
            states: Iterable[tuple[str, dict[str, Any] | None]] = (), *,
            unit: str = "", fence: int | None = None, inbox_done: Sequence[int] = ()) -> None:
        """Store events and state records (and delete inbox rows) in one transaction.

        See :meth:`daemon.store.base.Store.put`.

        :raises OutboxFull: no room; nothing was stored
        :raises FencedWrite: ``unit`` is not at epoch ``fence``; nothing was stored
        :raises StoreError: the database failed; nothing was stored
        """
        if events:
            self.check_room(len(events))
        now = time.time()
        texts = [encode_payload(e.payload) for e in events]
        if texts and max(map(len, texts)) > self.max_event_bytes:
            events, texts = self._bound(events, texts, "put")
        rows = [{"event_id": e.event_id, "event_type": e.event_type, "alarm_id": e.alarm_id,
                 "sequence": e.sequence, "payload": text, "created_at": now, "unit": unit}
                for e, text in zip(events, texts, strict=True)]
        upserts, deletes = [], []
        for key, record in states:
            if record is None:
                deletes.append(key)
            else:
                upserts.append({"key": key, "unit": unit,
                                "record": json.dumps(record, separators=(",", ":"))})
        done = [int(i) for i in inbox_done]

        def write(connection: sa.Connection) -> None:
            if fence is not None:
                self._check_fence(connection, unit, fence)
            if rows:
                connection.execute(self._insert_new(), rows)
            if upserts:
                connection.execute(self._upsert_states(), upserts)
            for start in range(0, len(deletes), _CHUNK):
                connection.execute(LIFECYCLE_STATE.delete().where(
                    LIFECYCLE_STATE.c.key.in_(deletes[start:start + _CHUNK])))
            for start in range(0, len(done), _CHUNK):
                connection.execute(INBOX.delete().where(
                    INBOX.c.id.in_(done[start:start + _CHUNK])))

        self._run(write)
        cache = self._cache
        if len(cache) + len(rows) <= self.cache_events:
            for event, text in zip(events, texts, strict=True):
                cache[event.event_id] = (event, text)

    def _insert_new(self) -> sa.Insert:
        """INSERT that skips an ``event_id`` already stored."""
        if self.dialect == "postgresql":
            return postgresql.insert(OUTBOX).on_conflict_do_nothing(index_elements=["event_id"])
        if self.dialect == "mysql":
            # A no-op update, not INSERT IGNORE: that would also hide truncations.
            return mysql.insert(OUTBOX).on_duplicate_key_update(seq=OUTBOX.c.seq)
        return sqlite.insert(OUTBOX).on_conflict_do_nothing(index_elements=["event_id"])

    def _upsert_states(self) -> sa.Insert:
        if self.dialect == "mysql":
            insert = mysql.insert(LIFECYCLE_STATE)
            return insert.on_duplicate_key_update(record=insert.inserted.record,
                                                  unit=insert.inserted.unit)
        insert = (postgresql if self.dialect == "postgresql" else sqlite).insert(
            LIFECYCLE_STATE)
        return insert.on_conflict_do_update(
            index_elements=["key"],
            set_={"record": insert.excluded.record, "unit": insert.excluded.unit})

    @staticmethod
    def _epoch(connection: sa.Connection, unit: str) -> int | None:
        return connection.execute(
            sa.select(UNITS.c.epoch).where(UNITS.c.unit == unit).with_for_update()
        ).scalar()

    def _check_fence(self, connection: sa.Connection, unit: str, fence: int) -> None:
        epoch = self._epoch(connection, unit) or 0
        if epoch != fence:
            raise exception.FencedWrite(unit=unit, fence=fence, epoch=epoch)

    def claim(self, unit: str, member: str) -> int:
        """Take ownership of ``unit`` for ``member``; returns the unit's new epoch.

        :raises StoreError: the database failed; nothing changed
        """
        def take(connection: sa.Connection) -> int:
            epoch = self._epoch(connection, unit)
            values = {"owner": member, "updated_at": time.time()}
            if epoch is None:
                connection.execute(UNITS.insert().values(unit=unit, epoch=1, **values))
                return 1
            connection.execute(UNITS.update().where(UNITS.c.unit == unit).values(
                epoch=UNITS.c.epoch + 1, **values))
            return epoch + 1

        for attempt in range(_CLAIM_TRIES):
            try:
                return self._run(take)
            except exception.StoreError as err:
                # Two first claims of a new unit at once: the loser's INSERT met the
                # winner's row (or InnoDB's gap locks made it a deadlock); claiming
                # again finds the row and updates it.
                if attempt == _CLAIM_TRIES - 1 or not isinstance(err.__cause__, (
                        db_exception.DBDuplicateEntry, db_exception.DBDeadlock,
                        sa.exc.IntegrityError)):
                    raise
        raise AssertionError("unreachable")

    def owners(self) -> dict[str, tuple[str, int]]:
        """``unit -> (member, epoch)`` of every unit ever claimed."""
        rows = self._run(lambda c: c.execute(
            sa.select(UNITS.c.unit, UNITS.c.owner, UNITS.c.epoch).order_by(UNITS.c.unit)
        ).all(), write=False)
        return {unit: (owner, epoch) for unit, owner, epoch in rows}

    def inbox_put(self, unit: str, cluster: str, source_url: str,
                  alerts: list[dict[str, Any]]) -> int:
        """Store one webhook delivery for ``unit``'s owner, committed; returns its row id.

        :raises StoreError: the database failed; nothing was stored
        """
        values = {"unit": unit, "cluster": cluster, "source_url": source_url,
                  "alerts": json.dumps(alerts, separators=(",", ":")),
                  "received_at": time.time()}
        return self._run(
            lambda c: c.execute(INBOX.insert().values(**values)).inserted_primary_key[0])

    def inbox_take(self, unit: str, limit: int) -> list[InboxItem]:
        """Up to ``limit`` deliveries stored for ``unit``, oldest first (not deleted)."""
        rows = self._run(lambda c: c.execute(
            sa.select(INBOX.c.id, INBOX.c.cluster, INBOX.c.source_url, INBOX.c.alerts,
                      INBOX.c.received_at)
            .where(INBOX.c.unit == unit).order_by(INBOX.c.id).limit(limit)).all(),
            write=False)
        return [InboxItem(row[0], row[1], row[2], json.loads(row[3]), row[4]) for row in rows]

    def ack(self, event_ids: Iterable[str]) -> int:
        """Remove events the broker confirmed; returns how many were removed.

        :raises StoreError: the database failed; nothing was removed
        """
        ids = list(event_ids)
        if not ids:
            return 0

        def delete(connection: sa.Connection) -> int:
            removed = 0
            for start in range(0, len(ids), _CHUNK):
                removed += connection.execute(OUTBOX.delete().where(
                    OUTBOX.c.event_id.in_(ids[start:start + _CHUNK]))).rowcount
            return removed

        removed = self._run(delete)
        if self._cache:
            pop = self._cache.pop
            for event_id in ids:
                pop(event_id, None)
        self.note_room()
        return removed

    # -- reads ------------------------------------------------------------

    def pending(self, limit: int) -> list[AlarmEvent]:
        """The oldest unsent events, oldest first."""
        return self.pending_after(0, limit)[0]

    def pending_after(self, cursor: int, limit: int,
                      units: Collection[str] | None = None) -> tuple[list[AlarmEvent], int]:
        """Unsent events (of ``units``, or all) stored after ``cursor``, oldest first,
        and the cursor to pass next time."""
        o = OUTBOX.c
        rows = self._run(lambda c: c.execute(
            sa.select(o.seq, o.event_id, o.event_type, o.alarm_id, o.sequence, o.payload)
            .where(o.seq > cursor, _in(o.unit, units)).order_by(o.seq).limit(limit)).all(),
            write=False)
        if not rows:
            return [], cursor
        take = self._cache.pop
        limit = self.max_event_bytes
        events = []
        for row in rows:
            cached = take(row[1], None)
            if cached is not None and cached[1] == row[5]:
                events.append(cached[0])
                continue
            event = new_event(row[1], row[2], row[3], row[4], json.loads(row[5]))
            if len(row[5]) > limit:
                event = self._bound([event], [row[5]], "read")[0][0]
            events.append(event)
        return events, rows[-1][0]

    def depth(self, units: Collection[str] | None = None) -> int:
        """Number of unsent events (of ``units``, or all)."""
        return self._run(lambda c: c.execute(
            sa.select(sa.func.count()).select_from(OUTBOX).where(_in(OUTBOX.c.unit, units))
        ).scalar_one(), write=False)

    def oldest_age(self, now: float, units: Collection[str] | None = None) -> float | None:
        """Seconds since the oldest unsent event (of ``units``, or all) was stored."""
        created = self._run(lambda c: c.execute(
            sa.select(OUTBOX.c.created_at).where(_in(OUTBOX.c.unit, units))
            .order_by(OUTBOX.c.seq).limit(1)).scalar(), write=False)
        return None if created is None else max(0.0, now - created)

    def load_states(self, units: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The lifecycle state records (all, or those of ``units``)."""
        rows = self._run(lambda c: c.execute(
            sa.select(LIFECYCLE_STATE.c.record).where(_in(LIFECYCLE_STATE.c.unit, units))
            .order_by(LIFECYCLE_STATE.c.key)).scalars().all(), write=False)
        return [json.loads(r) for r in rows]

    # -- the single-relay lock --------------------------------------------

    def hold_single_relay_lock(self) -> None:
        """Hold, until :meth:`close` or the process ends, the lock that says one relay
        without coordination uses this database.

        PostgreSQL: a session advisory lock; MySQL/MariaDB: ``GET_LOCK`` named
        after the database; both on a connection of their own, so the server
        releases them when the process dies. SQLite: ``flock`` on a file next
        to the database.

        :raises StoreInUse: another relay holds it
        :raises StoreError: the database failed
        """
        if self._lock is not None:
            return
        me = f"alarm-relay on {socket.gethostname()} pid {os.getpid()}"
        if self.dialect == "sqlite":
            self._lock = flock(self.engine.url.database or "", me, self.where)
            return
        connection = self.engine.connect()
        try:
            if self.dialect == "postgresql":
                self._lock = self._pg_lock(connection, me)
            else:
                self._lock = self._mysql_lock(connection)
        except BaseException:
            connection.close()
            raise

    def _pg_lock(self, connection: sa.Connection, me: str) -> Callable[[], None]:
        key = _LOCK_KEY
        try:
            connection.exec_driver_sql(f"SET application_name = '{_quote(me)}'")
            got = connection.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                     {"k": key}).scalar()
            holder = None if got else connection.execute(sa.text(
                "SELECT a.application_name, host(a.client_addr), a.pid"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.database = (SELECT oid FROM pg_database"
                "                   WHERE datname = current_database())"
                " AND (l.classid::bigint << 32 | l.objid::bigint) = :k LIMIT 1"),
                {"k": key}).first()
            connection.commit()
        except _FAILURES as err:
            raise exception.StoreError(problem=f"{self.where}: {reason(err)}") from err
        if not got:
            raise exception.StoreInUse(
                holder=(f"{holder[0] or 'a client'} from {holder[1] or 'a local socket'}"
                        if holder else "unknown"), where=self.where)
        return lambda: _release(connection, "SELECT pg_advisory_unlock(:k)", {"k": key})

    def _mysql_lock(self, connection: sa.Connection) -> Callable[[], None]:
        try:
            name = connection.execute(sa.text("SELECT CONCAT('alarm-relay/', DATABASE())")
                                      ).scalar()[:64]
            got = connection.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar()
            holder = None
            if got != 1:
                holder = connection.execute(sa.text(
                    "SELECT p.host FROM information_schema.processlist p"
                    " WHERE p.id = IS_USED_LOCK(:n)"), {"n": name}).scalar()
            connection.commit()
        except _FAILURES as err:
            raise exception.StoreError(problem=f"{self.where}: {reason(err)}") from err
        if got != 1:
            raise exception.StoreInUse(holder=f"a client from {holder or 'unknown'}",
                                       where=self.where)
        return lambda: _release(connection, "SELECT RELEASE_LOCK(:n)", {"n": name})


def _release(connection: sa.Connection, unlock: str, params: dict[str, Any]) -> None:
    """Unlock, then close the lock's connection for good (not back to the pool).

    The server would release the lock with the session anyway; unlocking first
    frees it at once, not when the server notices the closed connection.
    """
    try:
        connection.execute(sa.text(unlock), params)
        connection.commit()
    except _FAILURES as err:  # the session is gone, and the lock with it
        LOG.debug("single-relay lock: unlock failed (%s)", reason(err))
    connection.invalidate()
    connection.close()


# A fixed 64-bit key: advisory locks are per database, so one key is enough.
_LOCK_KEY = zlib.crc32(b"alarm-relay single relay") | (0x616c << 32)


def _quote(text: str) -> str:
    return text.replace("'", "''")[:60]
