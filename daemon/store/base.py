"""The store's interface: alarm state records and the outbox, behind one boundary.

The intake writes a batch of events together with the state records they
came from (one transaction: after a crash the state and the events agree);
the dispatcher reads the events back in order and acknowledges those the
broker confirmed.  Nothing else touches the store's tables.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

from oslo_log import log

from daemon import exception, telemetry
from daemon.pipeline.event import AlarmEvent, bound_event

__all__ = ["InboxItem", "StateChange", "Store"]

LOG = log.getLogger(__name__)

#: One state record to write: ``(key, record)``; a None record deletes the key.
StateChange = tuple[str, dict[str, Any] | None]


class InboxItem(NamedTuple):
    """One webhook delivery waiting in the inbox for its unit's owner.

    :ivar id: the row id (give it back in ``put(..., inbox_done=[id])``)
    :ivar cluster: the Alertmanager cluster the delivery came for
    :ivar source_url: the ``externalURL`` the delivery named
    :ivar alerts: the alerts as Alertmanager sent them (JSON objects)
    :ivar received_at: ``time.time()`` when :meth:`Store.inbox_put` stored it
    """

    id: int
    cluster: str
    source_url: str
    alerts: list[dict[str, Any]]
    received_at: float


class Store(abc.ABC):
    """Events waiting for a broker confirmation, and the lifecycle state records.

    Implementations are blocking (a database): callers run them off the event
    loop, one call at a time, from one executor thread.

    :ivar max_events: most events kept unsent; beyond it new events wait
    :ivar max_event_bytes: largest JSON of one event; a larger one is cut
    """

    max_events: int
    max_event_bytes: int
    _full_logged = False

    @abc.abstractmethod
    def open(self) -> None:
        """Open (and create if needed) the store."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close it (idempotent)."""

    @abc.abstractmethod
    def put(self, events: Sequence[AlarmEvent], states: Iterable[StateChange] = (), *,
            unit: str = "", fence: int | None = None, inbox_done: Sequence[int] = ()) -> None:
        """Store events and state records (and delete inbox rows) in one transaction.

        Events keep the order given; an event whose ``event_id`` is already
        stored is ignored.

        :param events: the events to send
        :param states: ``(key, record)`` pairs; a ``None`` record deletes the key
        :param unit: the ownership unit written with the events and the state
            records ("" or the cluster name for a single relay)
        :param fence: when not None, the epoch :meth:`claim` gave this relay for
            ``unit``; the write happens only if it is still the unit's epoch
        :param inbox_done: ids of inbox rows (:meth:`inbox_take`) these results
            came from; deleted in the same transaction
        :raises OutboxFull: (through :meth:`check_room`) nothing was stored
        :raises FencedWrite: another relay claimed ``unit`` since; nothing was stored
        :raises StoreError: the database failed or cannot be reached; nothing was stored
        """

    @abc.abstractmethod
    def claim(self, unit: str, member: str) -> int:
        """Take ownership of ``unit`` for ``member``: its epoch goes up by one
        (1 for a new unit), atomically; returns the new epoch.

        Every later :meth:`put` fenced with an older epoch raises FencedWrite.

        :raises StoreError: the database failed; nothing changed
        """

    @abc.abstractmethod
    def owners(self) -> dict[str, tuple[str, int]]:
        """``unit -> (member, epoch)`` as the last :meth:`claim` of each unit left it."""

    @abc.abstractmethod
    def load_states(self, units: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The state records (all, or those of ``units``), for the trackers' ``restore()``."""

    @abc.abstractmethod
    def pending_after(self, cursor: int, limit: int,
                      units: Collection[str] | None = None) -> tuple[list[AlarmEvent], int]:
        """Up to ``limit`` unsent events stored after ``cursor`` (of ``units``, or
        all), oldest first, and the cursor to read on from (0 starts at the oldest)."""

    @abc.abstractmethod
    def ack(self, event_ids: Iterable[str]) -> int:
        """Remove events the broker confirmed; returns how many were removed."""

    @abc.abstractmethod
    def depth(self, units: Collection[str] | None = None) -> int:
        """Number of unsent events (of ``units``, or all)."""

    @abc.abstractmethod
    def oldest_age(self, now: float, units: Collection[str] | None = None) -> float | None:
        """Seconds since the oldest unsent event (of ``units``, or all) was stored
        (None when there is none)."""

    @abc.abstractmethod
    def inbox_put(self, unit: str, cluster: str, source_url: str,
                  alerts: list[dict[str, Any]]) -> int:
        """Durably store one webhook delivery for ``unit``'s owner; returns its row id.

        Committed before it returns (the webhook answers 200 only after it).

        :raises StoreError: the database failed; nothing was stored
        """

    @abc.abstractmethod
    def inbox_take(self, unit: str, limit: int) -> list[InboxItem]:
        """Up to ``limit`` inbox rows of ``unit``, oldest first; they stay until a
        :meth:`put` names them in ``inbox_done``."""

    @abc.abstractmethod
    def hold_single_relay_lock(self) -> None:
        """Hold, until :meth:`close` or the process ends, the lock saying that one
        relay without coordination uses this store.

        :raises StoreInUse: another relay holds it (the message names it when known)
        :raises StoreError: the database failed
        """

    def _bound(self, events: Sequence[AlarmEvent], texts: list[str],
               stage: str) -> tuple[list[AlarmEvent], list[str]]:
        """``events`` and their JSON with every payload over ``max_event_bytes`` cut
        (counted in ``alarm_relay_events_truncated_total{stage}`` and logged)."""
        limit = self.max_event_bytes
        events = list(events)
        for index, text in enumerate(texts):
            if len(text) <= limit:
                continue
            event = events[index]
            events[index], texts[index], cut = bound_event(event, text, limit)
            telemetry.EVENTS_TRUNCATED.labels(stage=stage).inc()
            LOG.warning("event %s (%s, alarm %s) takes %d bytes of JSON, more than "
                        "[publisher] max_event_bytes %d: cut %s, now %d bytes",
                        event.event_id, event.event_type, event.alarm_id, len(text), limit,
                        ", ".join(cut) or "nothing", len(texts[index]))
        return events, texts

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
