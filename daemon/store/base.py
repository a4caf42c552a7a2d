"""The store's interface: alarm state records and the outbox, behind one boundary.

The intake writes a batch of events together with the state records they
came from (one transaction: after a crash the state and the events agree);
the dispatcher reads the events back in order and acknowledges those the
broker confirmed.  Nothing else touches the store's tables.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any

from oslo_log import log

from daemon import exception, telemetry
from daemon.pipeline.event import AlarmEvent

__all__ = ["StateChange", "Store"]

LOG = log.getLogger(__name__)

#: One state record to write: ``(key, record)``; a None record deletes the key.
StateChange = tuple[str, dict[str, Any] | None]


class Store(abc.ABC):
    """Events waiting for a broker confirmation, and the lifecycle state records.

    Implementations are blocking (a database): callers run them off the event
    loop, one call at a time, from one executor thread.

    :ivar max_events: most events kept unsent; beyond it new events wait
    """

    max_events: int
    _full_logged = False

    @abc.abstractmethod
    def open(self) -> None:
        """Open (and create if needed) the store."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close it (idempotent)."""

    @abc.abstractmethod
    def put(self, events: Sequence[AlarmEvent], states: Iterable[StateChange] = ()) -> None:
        """Store events and state records in one transaction, events in the order given.

        :raises OutboxFull: (through :meth:`check_room`) nothing was stored
        :raises Exception: the write failed; nothing was stored
        """

    @abc.abstractmethod
    def load_states(self) -> list[dict[str, Any]]:
        """Every state record, for the trackers' ``restore()``."""

    @abc.abstractmethod
    def pending_after(self, cursor: int, limit: int) -> tuple[list[AlarmEvent], int]:
        """Up to ``limit`` unsent events stored after ``cursor``, oldest first, and the
        cursor to read on from (0 starts at the oldest)."""

    @abc.abstractmethod
    def ack(self, event_ids: Iterable[str]) -> int:
        """Remove events the broker confirmed; returns how many were removed."""

    @abc.abstractmethod
    def depth(self) -> int:
        """Number of unsent events."""

    @abc.abstractmethod
    def oldest_age(self, now: float) -> float | None:
        """Seconds since the oldest unsent event was stored (None when empty)."""

    def note_room(self) -> None:
        """After events left the outbox: say once that a full outbox takes events again."""
        if self._full_logged and self.depth() < self.max_events:
            self._full_logged = False
            LOG.info("outbox accepts events again (%d unsent)", self.depth())

    def check_room(self, adding: int = 0) -> None:
        """The outbox-full policy, in one place: is there room for ``adding`` events?

        With ``adding`` 0, whether anything more fits (the intake asks before
        it observes, so a full outbox leaves the trackers untouched).

        :raises OutboxFull: no room; counted in ``alarm_relay_outbox_full_total``
            and logged once until there is room again
        """
        depth = self.depth()
        if depth + max(adding, 1) <= self.max_events:
            self.note_room()
            return
        telemetry.OUTBOX_FULL.inc()
        if not self._full_logged:
            self._full_logged = True
            LOG.warning("outbox full: %d events unsent (limit %d); new transitions wait "
                        "until the broker takes events", depth, self.max_events)
        raise exception.OutboxFull(depth=depth, limit=self.max_events)
