"""The tracker's state: firing alarms, closed occurrences, and their stored records.

:class:`Alarm` is one firing occurrence, :class:`ClosedOccurrence` the latest
closed one of a fingerprint (it recognises stale copies).  Both are exported
as JSON-able records (``encode``) stored by the store beside the events they
caused, and read back (``decode_*``).  The format is versioned; version 1
records (earlier releases) still load.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from daemon.lifecycle.transition import alarm_id as make_alarm_id
from daemon.model import Alert

__all__ = ["RECORD_VERSION", "Alarm", "ClosedHow", "ClosedOccurrence", "Holder",
           "decode_alarm", "decode_closed", "encode", "max_end", "parse_time",
           "representative", "suppressed", "uptime_time"]

RECORD_VERSION = 2

#: A holder: (replica URL, the replica's uptime when it listed the alarm, or None).
Holder = tuple[str, str | None]

def iso_or_none(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def parse_time(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"naive time {value!r}")
    return parsed.astimezone(datetime.UTC)


def holder_from(item: Sequence[Any]) -> Holder:
    url, epoch = item
    return str(url), None if epoch is None else str(epoch)


def uptime_time(uptime: str | None) -> datetime.datetime | None:
    """Alertmanager's ``uptime`` (RFC 3339 with up to nanoseconds) as a time."""
    if not uptime:
        return None
    text = uptime.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(datetime.UTC) if parsed.tzinfo else None


class _Rare:
    """The fields of an :class:`Alarm` that most alarms leave at their defaults."""

    __slots__ = ("dropped_by", "incarnation", "pinned_id", "successor_start")

    def __init__(self) -> None:
        self.incarnation = 1
        self.successor_start: datetime.datetime | None = None
        self.dropped_by: frozenset[Holder] = frozenset()
        self.pinned_id: str | None = None


_NO_HOLDERS: frozenset[Holder] = frozenset()

#: (last_seen, listed_at, seen_on, source_url) tuples, shared: every alarm one poll
#: lists has the same.  Bounded; started over when full (sharing resumes at once).
_SIGHTINGS: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_SIGHTINGS_MAX = 4096

Sighting = tuple[datetime.datetime, "datetime.datetime | None", frozenset[Holder], str]


def _sighting(last_seen: datetime.datetime, listed_at: datetime.datetime | None,
              seen_on: frozenset[Holder], source_url: str) -> Sighting:
    key = (last_seen, listed_at, seen_on, source_url)
    found = _SIGHTINGS.get(key)
    if found is None:
        if len(_SIGHTINGS) >= _SIGHTINGS_MAX:
            _SIGHTINGS.clear()
        found = _SIGHTINGS[key] = key
    return found


class Alarm:
    """One firing occurrence.

    ``starts_at`` is the earliest copy's startsAt, ``latest_start`` the latest
    startsAt of a copy merged into it; a copy starting later is not (yet) this
    occurrence's.  ``successor_start`` is set while a holder has replaced this
    occurrence by a later one (Alertmanager's own verdict that it ended) and
    others still list it: copies from then on belong to the successor.
    ``dropped_by`` are the holders that, running on, stopped listing it.
    ``listed_at`` is when a poll last listed it (``last_seen`` counts webhook
    deliveries too, which may be stale).

    Kept compact, as the tracker holds one per firing alert: the alarm_id is
    not stored but derived (:meth:`alarm_id`) from what it is made of, and the
    fields most alarms leave at their defaults (``incarnation`` 1, no
    ``successor_start``, no ``dropped_by``) share one slot, empty until set;
    the last sighting (``last_seen``, ``listed_at``, ``seen_on``,
    ``source_url``) is one tuple that every alarm seen by the same poll shares.
    """

    __slots__ = ("_rare", "_sighting", "alert", "latest_start", "sequence", "starts_at",
                 "stored_ends_at")

    def __init__(self, starts_at: datetime.datetime, latest_start: datetime.datetime,
                 incarnation: int, sequence: int, alert: Alert, last_seen: datetime.datetime,
                 seen_on: frozenset[Holder], source_url: str,
                 stored_ends_at: datetime.datetime | None = None,
                 successor_start: datetime.datetime | None = None,
                 dropped_by: frozenset[Holder] = _NO_HOLDERS,
                 listed_at: datetime.datetime | None = None,
                 pinned_id: str | None = None) -> None:
        self.starts_at = starts_at
        self.latest_start = latest_start
        self.sequence = sequence
        self.alert = alert
        self._sighting = _sighting(last_seen, listed_at, seen_on, source_url)
        self.stored_ends_at = stored_ends_at
        self._rare: _Rare | None = None
        if incarnation != 1:
            self.incarnation = incarnation
        if successor_start is not None:
            self.successor_start = successor_start
        if dropped_by:
            self.dropped_by = dropped_by
        if pinned_id is not None:
            self.pinned_id = pinned_id

    # The last sighting: when, by which holders, from where.  Alarms seen by the same
    # poll share one tuple (see _sighting).

    @property
    def last_seen(self) -> datetime.datetime:
        return self._sighting[0]

    @last_seen.setter
    def last_seen(self, value: datetime.datetime) -> None:
        _, listed_at, seen_on, source_url = self._sighting
        self._sighting = _sighting(value, listed_at, seen_on, source_url)

    @property
    def listed_at(self) -> datetime.datetime | None:
        return self._sighting[1]

    @listed_at.setter
    def listed_at(self, value: datetime.datetime | None) -> None:
        last_seen, _, seen_on, source_url = self._sighting
        self._sighting = _sighting(last_seen, value, seen_on, source_url)

    @property
    def seen_on(self) -> frozenset[Holder]:
        return self._sighting[2]

    @seen_on.setter
    def seen_on(self, value: frozenset[Holder]) -> None:
        last_seen, listed_at, _, source_url = self._sighting
        self._sighting = _sighting(last_seen, listed_at, value, source_url)

    @property
    def source_url(self) -> str:
        return self._sighting[3]

    @source_url.setter
    def source_url(self, value: str) -> None:
        last_seen, listed_at, seen_on, _ = self._sighting
        self._sighting = _sighting(last_seen, listed_at, seen_on, value)

    def _extra(self) -> _Rare:
        rare = self._rare
        if rare is None:
            rare = self._rare = _Rare()
        return rare

    @property
    def incarnation(self) -> int:
        """1, or n for the n-th reopening of the same occurrence."""
        return 1 if self._rare is None else self._rare.incarnation

    @incarnation.setter
    def incarnation(self, value: int) -> None:
        if value != 1 or self._rare is not None:
            self._extra().incarnation = value

    @property
    def successor_start(self) -> datetime.datetime | None:
        return None if self._rare is None else self._rare.successor_start

    @successor_start.setter
    def successor_start(self, value: datetime.datetime | None) -> None:
        if value is not None or self._rare is not None:
            self._extra().successor_start = value

    @property
    def dropped_by(self) -> frozenset[Holder]:
        return _NO_HOLDERS if self._rare is None else self._rare.dropped_by

    @dropped_by.setter
    def dropped_by(self, value: frozenset[Holder]) -> None:
        if value or self._rare is not None:
            self._extra().dropped_by = value

    @property
    def pinned_id(self) -> str | None:
        """The alarm_id when it is not the one derived from the current fields.

        Set when ``starts_at`` moves to an earlier copy's (the id stays the
        first copy's), or restored from a record whose id was made otherwise.
        """
        return None if self._rare is None else self._rare.pinned_id

    @pinned_id.setter
    def pinned_id(self, value: str | None) -> None:
        if value is not None or self._rare is not None:
            self._extra().pinned_id = value

    def alarm_id(self, cluster: str) -> str:
        """The occurrence's alarm_id (see :func:`daemon.lifecycle.alarm_id`).

        :param cluster: the tracker's cluster name
        """
        pinned = self.pinned_id
        if pinned is not None:
            return pinned
        return make_alarm_id(cluster, self.alert.fingerprint, self.starts_at,
                             self.incarnation)


#: How a closed occurrence ended, which says whether it may reopen.
ClosedHow = Literal["resolved", "disappeared", "silenced", "legacy"]


@dataclasses.dataclass(slots=True)
class ClosedOccurrence:
    """The latest closed occurrence of a fingerprint (recognises stale copies).

    :ivar starts_at: its earliest startsAt
    :ivar ends_at: a copy starting at or before this (source clock) was part of it
    :ivar at: when the relay closed it (relay clock)
    :ivar how: ``resolved`` (a source said so: never reopens), ``disappeared``
        (reopens when a replica that dropped it holds it again, received
        after ``last_ends_at``), ``silenced`` and ``legacy`` (reopen when a
        later poll lists it active)
    :ivar last_ends_at: the latest endsAt seen while it was firing
    :ivar latest_start: the latest startsAt of a copy seen as part of it
    :ivar dropped_by: the replicas (and epochs) that stopped listing it
    """

    starts_at: datetime.datetime
    ends_at: datetime.datetime
    at: datetime.datetime
    incarnation: int
    how: ClosedHow = "resolved"
    last_ends_at: datetime.datetime | None = None
    latest_start: datetime.datetime | None = None
    dropped_by: frozenset[Holder] = frozenset()


def suppressed(alert: Alert) -> bool:
    return alert.state == "suppressed"


def representative(a: Alert, b: Alert) -> Alert:
    """Of two copies, the one whose labels, annotations and state an event shows.

    The earliest copy, as Alertmanager keeps; an active copy over a suppressed
    one; then the fresher.  Deterministic, so HA copies do not alternate.
    """
    if suppressed(a) != suppressed(b):
        return b if suppressed(a) else a
    if a.starts_at != b.starts_at:
        return a if a.starts_at < b.starts_at else b
    a_end = a.ends_at or a.starts_at
    b_end = b.ends_at or b.starts_at
    return a if a_end >= b_end else b


def max_end(a: datetime.datetime | None,
             b: datetime.datetime | None) -> datetime.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": iso_or_none(alert.ends_at),
        "status": alert.status,
        "state": alert.state,
        "silenced_by": list(alert.silenced_by),
        "inhibited_by": list(alert.inhibited_by),
        "generator_url": alert.generator_url,
        "updated_at": iso_or_none(alert.updated_at),
    }


def alert_from_record(fingerprint: str, data: dict[str, Any]) -> Alert:
    starts_at = parse_time(data["starts_at"])
    assert starts_at is not None
    return Alert(
        fingerprint=fingerprint,
        labels={str(k): str(v) for k, v in data["labels"].items()},
        annotations={str(k): str(v) for k, v in data.get("annotations", {}).items()},
        starts_at=starts_at,
        ends_at=parse_time(data.get("ends_at")),
        status=data.get("status", "firing"),
        state=data.get("state", "active"),
        silenced_by=tuple(data.get("silenced_by", ())),
        inhibited_by=tuple(data.get("inhibited_by", ())),
        generator_url=data.get("generator_url", ""),
        updated_at=parse_time(data.get("updated_at")))




def encode(key: str, cluster: str, fp: str, alarm: Alarm | None,
           closed: ClosedOccurrence | None, alarm_id: str | None = None
           ) -> dict[str, Any] | None:
    """The JSON-able record of one fingerprint's state; None when there is none.

    :param alarm_id: the alarm's id when already known (else derived again)
    """
    if alarm is None and closed is None:
        return None
    record: dict[str, Any] = {
        "key": key, "version": RECORD_VERSION, "cluster": cluster,
        "fingerprint": fp, "alarm": None, "closed": None}
    if alarm is not None:
        record["alarm"] = {
            "alarm_id": alarm_id or alarm.alarm_id(cluster),
            "starts_at": alarm.starts_at.isoformat(),
            "latest_start": alarm.latest_start.isoformat(),
            "successor_start": iso_or_none(alarm.successor_start),
            "dropped_by": sorted([url, epoch] for url, epoch in alarm.dropped_by),
            "listed_at": iso_or_none(alarm.listed_at),
            "incarnation": alarm.incarnation,
            "sequence": alarm.sequence,
            "last_seen": alarm.last_seen.isoformat(),
            "seen_on": sorted([url, epoch] for url, epoch in alarm.seen_on),
            "source_url": alarm.source_url,
            "alert": alert_record(alarm.alert),
        }
    if closed is not None:
        record["closed"] = {"starts_at": closed.starts_at.isoformat(),
                            "ends_at": closed.ends_at.isoformat(),
                            "at": closed.at.isoformat(),
                            "incarnation": closed.incarnation,
                            "how": closed.how,
                            "last_ends_at": iso_or_none(closed.last_ends_at),
                            "latest_start": iso_or_none(closed.latest_start),
                            "dropped_by": sorted([url, epoch]
                                                 for url, epoch in closed.dropped_by)}
    return record


HolderSet = Callable[[Iterable[Holder]], frozenset[Holder]]


def decode_alarm(fp: str, data: dict[str, Any], holders: HolderSet,
                 cluster: str) -> Alarm:
    """An :class:`Alarm` from its record (version 1 or 2).

    :param holders: interns a set of holders (alarms share equal sets)
    :param cluster: the record's cluster (its alarm_id is kept only when it is
        not the one derived from the record's fields)
    :raises KeyError, TypeError, ValueError, AssertionError: on a record that
        does not load
    """
    alert = alert_from_record(fp, data["alert"])
    starts_at = parse_time(data["starts_at"])
    last_seen = parse_time(data["last_seen"])
    assert starts_at is not None and last_seen is not None
    latest = parse_time(data.get("latest_start")) or max(starts_at, alert.starts_at)
    seen_on = [(item, None) if isinstance(item, str)  # version 1: the URL alone
               else holder_from(item) for item in data.get("seen_on", ())]
    incarnation = int(data["incarnation"])
    stored_id = str(data["alarm_id"])
    derived = make_alarm_id(cluster, fp, starts_at, incarnation)
    return Alarm(starts_at, latest, incarnation,
                 int(data["sequence"]), alert, last_seen, holders(seen_on),
                 str(data.get("source_url", "")), alert.ends_at,
                 parse_time(data.get("successor_start")),
                 holders(holder_from(item) for item in data.get("dropped_by", ())),
                 parse_time(data.get("listed_at")),
                 None if stored_id == derived else stored_id)


def decode_closed(data: dict[str, Any], holders: HolderSet) -> ClosedOccurrence:
    """A :class:`ClosedOccurrence` from its record (version 1 or 2)."""
    starts = parse_time(data["starts_at"])
    at = parse_time(data["at"])
    assert starts is not None and at is not None
    ends = parse_time(data.get("ends_at"))
    how = data.get("how", "legacy")
    if how not in ("resolved", "disappeared", "silenced", "legacy"):
        raise ValueError(f"unknown closing {how!r}")
    # Version 1 kept no end: only the very startsAt belongs to it.
    return ClosedOccurrence(starts, ends if ends is not None else starts, at,
                            int(data.get("incarnation", 1)), how,
                            parse_time(data.get("last_ends_at")),
                            parse_time(data.get("latest_start")),
                            holders(holder_from(item) for item in data.get("dropped_by", ())))
