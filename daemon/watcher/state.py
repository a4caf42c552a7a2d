"""The Watcher bridge's durable state, behind one small interface.

What must survive a restart for "nothing doubled" to hold:

- the event ids already handled (consumers dedupe on ``event_id``) and the
  last ``sequence`` applied per ``alarm_id`` (events of one alarm in order);
- per (alarm_id, rule): the audit's name and UUID and how far it got
  (``created``, ``triggered``) or why none was made (``refused``, ``cooldown``);
- per (resource, audit template): when the last audit was triggered (the cooldown clock).

:class:`BridgeState` is the interface; :class:`SQLiteBridgeState` keeps it in a
SQLite file in ``state_dir`` (the default and, for now, the only backend; an
oslo.db one for ``[database] connection`` would implement the same methods).
Times are seconds since the epoch (``time.time()``).
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import os
import sqlite3
import threading

__all__ = ["AuditRecord", "AuditStatus", "BridgeState", "SQLiteBridgeState", "open_state"]


class AuditStatus(enum.StrEnum):
    """How far one (alarm, rule) got."""

    CREATED = "created"        #: the audit exists in Watcher, not yet triggered by us
    TRIGGERED = "triggered"    #: Watcher accepted the trigger (202): done
    REFUSED = "refused"        #: Watcher refused for good (4xx), or no parameters: done
    COOLDOWN = "cooldown"      #: skipped, the (resource, template) was in cooldown: done

    @property
    def done(self) -> bool:
        return self is not AuditStatus.CREATED


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    """What the bridge did for one alarm and one rule.

    :ivar alarm_id: the alarm (one occurrence of one alert)
    :ivar rule: the rule's name
    :ivar status: see :class:`AuditStatus`
    :ivar audit_name: the audit's deterministic name (``audit_name()``)
    :ivar audit_uuid: Watcher's UUID of the audit, once known
    :ivar reason: why it was refused or skipped, else None
    :ivar updated_at: when the record was last written (epoch seconds)
    """

    alarm_id: str
    rule: str
    status: AuditStatus
    audit_name: str
    audit_uuid: str | None = None
    reason: str | None = None
    updated_at: float = 0.0


class BridgeState(abc.ABC):
    """The bridge's memory. Every method is one transaction; implementations are thread-safe."""

    @abc.abstractmethod
    def seen(self, event_id: str) -> bool:
        """Whether the event was handled already (acknowledged or about to be)."""

    @abc.abstractmethod
    def last_sequence(self, alarm_id: str) -> int:
        """The highest ``sequence`` handled for ``alarm_id`` (0 when none)."""

    @abc.abstractmethod
    def finish_event(self, event_id: str, alarm_id: str, sequence: int, at: float) -> None:
        """Record that an event was handled: its id, and its alarm's sequence."""

    @abc.abstractmethod
    def audit(self, alarm_id: str, rule: str) -> AuditRecord | None:
        """What was done for (alarm_id, rule), or None."""

    @abc.abstractmethod
    def save_audit(self, record: AuditRecord) -> None:
        """Insert or replace the record of (record.alarm_id, record.rule)."""

    @abc.abstractmethod
    def save_trigger(self, record: AuditRecord, resource_key: str, template: str,
                     at: float) -> None:
        """Save a TRIGGERED record and start the (resource, template) cooldown clock, together."""

    @abc.abstractmethod
    def last_trigger(self, resource_key: str, template: str) -> float | None:
        """When an audit was last triggered for (resource, template), or None."""

    @abc.abstractmethod
    def prune(self, before: float) -> int:
        """Forget what was written before ``before``; returns the number of rows removed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the storage (idempotent)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    handled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audits (
    alarm_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    audit_name TEXT NOT NULL,
    audit_uuid TEXT,
    reason TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (alarm_id, rule)
);
CREATE TABLE IF NOT EXISTS cooldowns (
    resource_key TEXT NOT NULL,
    template TEXT NOT NULL,
    triggered_at REAL NOT NULL,
    PRIMARY KEY (resource_key, template)
);
"""


class SQLiteBridgeState(BridgeState):
    """:class:`BridgeState` in one SQLite file (WAL, synchronous=FULL: a record is on disk
    before the event is acknowledged).

    :param path: the database file (created with its tables when missing)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"{self.path}: state is closed")
        return self._db

    def _write(self, *statements: tuple[str, tuple]) -> None:
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    db.execute(sql, args)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _one(self, sql: str, args: tuple) -> tuple | None:
        with self._lock:
            return self._conn().execute(sql, args).fetchone()

    def seen(self, event_id: str) -> bool:
        return self._one("SELECT 1 FROM events WHERE event_id = ?", (event_id,)) is not None

    def last_sequence(self, alarm_id: str) -> int:
        row = self._one("SELECT sequence FROM alarms WHERE alarm_id = ?", (alarm_id,))
        return int(row[0]) if row else 0

    def finish_event(self, event_id: str, alarm_id: str, sequence: int, at: float) -> None:
        self._write(
            ("INSERT OR REPLACE INTO events (event_id, handled_at) VALUES (?, ?)",
             (event_id, at)),
            ("INSERT INTO alarms (alarm_id, sequence, updated_at) VALUES (?, ?, ?) "
             "ON CONFLICT (alarm_id) DO UPDATE SET "
             "sequence = MAX(sequence, excluded.sequence), updated_at = excluded.updated_at",
             (alarm_id, sequence, at)))

    def audit(self, alarm_id: str, rule: str) -> AuditRecord | None:
        row = self._one("SELECT alarm_id, rule, status, audit_name, audit_uuid, reason, "
                        "updated_at FROM audits WHERE alarm_id = ? AND rule = ?",
                        (alarm_id, rule))
        if row is None:
            return None
        return AuditRecord(row[0], row[1], AuditStatus(row[2]), row[3], row[4], row[5],
                           float(row[6]))

    @staticmethod
    def _audit_row(record: AuditRecord) -> tuple[str, tuple]:
        return ("INSERT OR REPLACE INTO audits (alarm_id, rule, status, audit_name, "
                "audit_uuid, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.alarm_id, record.rule, record.status.value, record.audit_name,
                 record.audit_uuid, record.reason, record.updated_at))

    def save_audit(self, record: AuditRecord) -> None:
        self._write(self._audit_row(record))

    def save_trigger(self, record: AuditRecord, resource_key: str, template: str,
                     at: float) -> None:
        self._write(self._audit_row(record),
                    ("INSERT OR REPLACE INTO cooldowns (resource_key, template, triggered_at) "
                     "VALUES (?, ?, ?)", (resource_key, template, at)))

    def last_trigger(self, resource_key: str, template: str) -> float | None:
        row = self._one("SELECT triggered_at FROM cooldowns WHERE resource_key = ? "
                        "AND template = ?", (resource_key, template))
        return float(row[0]) if row else None

    def prune(self, before: float) -> int:
        removed = 0
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql in ("DELETE FROM events WHERE handled_at < ?",
                            "DELETE FROM alarms WHERE updated_at < ?",
                            # An unfinished audit is kept: its event is still to be handled.
                            "DELETE FROM audits WHERE updated_at < ? AND status != 'created'",
                            "DELETE FROM cooldowns WHERE triggered_at < ?"):
                    removed += db.execute(sql, (before,)).rowcount
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return removed

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def open_state(state_dir: str | os.PathLike[str], file_name: str) -> BridgeState:
    """Open (or create) the bridge's state file ``state_dir/file_name``.

    :raises sqlite3.Error: the file cannot be opened or is not a database
    """
    return SQLiteBridgeState(os.path.join(os.fspath(state_dir), file_name))
