"""The tracker's shared machinery: its state, transitions, and closed occurrences.

:class:`TrackerCore` holds the firing alarms and the closed occurrences of one
cluster and the steps every rule uses: fire, resolve, observe the same
occurrence again, and tell whether a copy belongs to a closed occurrence.
The rules themselves live in :mod:`.poll` and :mod:`.webhook`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Literal

from daemon.lifecycle.state import (
    Alarm,
    ClosedHow,
    ClosedOccurrence,
    Holder,
    max_end,
    suppressed,
)
from daemon.lifecycle.transition import Transition, TransitionKind, alarm_id
from daemon.model import Alert

__all__ = ["ZERO", "SuppressedPolicy", "TrackerCore"]

SuppressedPolicy = Literal["keep-firing", "resolve"]
ZERO = datetime.timedelta(0)
#: Bound of the derived alarm_ids remembered until every changed record is exported.
_MAX_IDS = 100_000


class TrackerCore:
    """The state of one cluster's alarms and the steps the rules share.

    See :class:`~daemon.lifecycle.LifecycleTracker` for the parameters.
    """

    def __init__(self, *, cluster: str,
                 suppressed_policy: SuppressedPolicy | str = "keep-firing",
                 expire_delay: float = 15.0,
                 resolved_retention: float = 86400.0,
                 refresh_margin: float = 120.0,
                 max_resend_interval: float = 900.0) -> None:
        if suppressed_policy not in ("keep-firing", "resolve"):
            raise ValueError(f"unknown suppressed_policy {suppressed_policy!r}")
        self.cluster = cluster
        self.suppressed_policy = suppressed_policy
        self.expire_delay = datetime.timedelta(seconds=expire_delay)
        self.resolved_retention = datetime.timedelta(seconds=resolved_retention)
        self.refresh_margin = datetime.timedelta(seconds=refresh_margin)
        self.max_resend_interval = datetime.timedelta(seconds=max_resend_interval)
        self._alarms: dict[str, Alarm] = {}
        self._closed: dict[str, ClosedOccurrence] = {}
        self._dirty: set[str] = set()
        self._holder_sets: dict[frozenset[Holder], frozenset[Holder]] = {}
        # alarm_ids derived since every changed record was last exported: each
        # transition's id is needed again for its state record (key: what the
        # id is made of).
        self._ids: dict[tuple[str, datetime.datetime, int], str] = {}
        self._offsets: dict[str, datetime.timedelta] = {}
        # How far ahead of its last update Alertmanager lists an alert's
        # endsAt (Prometheus: 4 resend periods), as seen in polls.
        self._lead: datetime.timedelta | None = None

    # -- introspection ---------------------------------------------------

    @property
    def tracked(self) -> int:
        """Number of alarms currently firing."""
        return len(self._alarms)

    @property
    def pending_changes(self) -> int:
        """Number of state records changed and not yet exported."""
        return len(self._dirty)

    def firing(self) -> list[Transition]:
        """Not a transition list: the current alarms, as firing snapshots (for checks)."""
        return [Transition("firing", self._alarm_id(a), a.sequence, a.alert, a.last_seen,
                           self.cluster, a.source_url) for a in self._alarms.values()]

    def state_key(self, fingerprint: str) -> str:
        """The key of an alert's record in :meth:`export_changes`."""
        return f"{self.cluster}/{fingerprint}"

    def clock_offset(self, url: str | None = None) -> datetime.timedelta:
        """Alertmanager's clock minus the relay's, as last measured.

        :param url: a replica; by default the cluster's (its replicas' median)
        """
        if url is not None and url in self._offsets:
            return self._offsets[url]
        if not self._offsets:
            return ZERO
        values = sorted(self._offsets.values())
        return values[len(values) // 2]

    # -- transitions -----------------------------------------------------

    def _alarm_id(self, alarm: Alarm) -> str:
        pinned = alarm.pinned_id
        if pinned is not None:
            return pinned
        key = (alarm.alert.fingerprint, alarm.starts_at, alarm.incarnation)
        found = self._ids.get(key)
        if found is None:
            if len(self._ids) >= _MAX_IDS:
                self._ids.clear()
            found = self._ids[key] = alarm_id(self.cluster, *key)
        return found

    def _emit(self, out: list[Transition], kind: TransitionKind, alarm: Alarm,
              alert: Alert, now: datetime.datetime, source_url: str,
              reason: str | None = None) -> None:
        out.append(Transition(kind, self._alarm_id(alarm), alarm.sequence, alert, now,
                              self.cluster, source_url, reason))

    def _fire(self, out: list[Transition], alert: Alert, now: datetime.datetime,
              seen_at: datetime.datetime, seen_on: frozenset[Holder], source_url: str,
              incarnation: int = 1, latest_start: datetime.datetime | None = None) -> None:
        fp = alert.fingerprint
        alarm = Alarm(alert.starts_at, latest_start or alert.starts_at, incarnation, 1,
                      alert, seen_at, seen_on, source_url, alert.ends_at)
        self._alarms[fp] = alarm
        self._dirty.add(fp)
        self._emit(out, "firing", alarm, alert, now, source_url)

    def _resolve(self, out: list[Transition], alarm: Alarm, now: datetime.datetime,
                 reason: str, source_url: str, *, ends_at: datetime.datetime,
                 closed_how: ClosedHow, closed_until: datetime.datetime) -> None:
        """Resolve ``alarm``; its event's ``ends_at`` is never before its ``starts_at``.

        :param ends_at: when it ended, in the source's clock
        :param closed_how: how the occurrence closed (see :class:`ClosedOccurrence`)
        :param closed_until: copies starting until then belong to it; when a
            source said when it ended, a copy merged into it that started
            later was another occurrence after all, and stays visible
        """
        fp = alarm.alert.fingerprint
        del self._alarms[fp]
        last = alarm.alert
        end = max(ends_at, alarm.starts_at)
        alert = dataclasses.replace(last, status="resolved", ends_at=end)
        alarm.sequence += 1
        closed = self._closed.get(fp)
        if closed is None or closed.starts_at <= alarm.starts_at:
            until = (closed_until if closed_how == "resolved"
                     else max(closed_until, alarm.latest_start))
            self._closed[fp] = ClosedOccurrence(alarm.starts_at, until, now, alarm.incarnation,
                                       closed_how, last.ends_at, alarm.latest_start,
                                       alarm.dropped_by)
        self._dirty.add(fp)
        self._emit(out, "resolved", alarm, alert, now, source_url, reason)

    @staticmethod
    def _changed(old: Alert, new: Alert) -> bool:
        if old is new:
            return False
        return (old.labels.get("severity") != new.labels.get("severity")
                or (old.annotations is not new.annotations
                    and old.annotations != new.annotations)
                or suppressed(old) != suppressed(new)
                or old.silenced_by != new.silenced_by
                or old.inhibited_by != new.inhibited_by)

    def _observe_same(self, out: list[Transition], alarm: Alarm, alert: Alert,
                      now: datetime.datetime, seen_at: datetime.datetime,
                      source_url: str) -> None:
        """A new observation of the occurrence an alarm already tracks.

        The alarm keeps the earliest startsAt and the latest endsAt it saw.
        """
        fp = alert.fingerprint
        old = alarm.alert
        if alert.starts_at < alarm.starts_at:
            if alarm.pinned_id is None:  # the id stays the first copy's
                alarm.pinned_id = self._alarm_id(alarm)
            alarm.starts_at = alert.starts_at
            self._dirty.add(fp)
        elif alert.starts_at > alarm.latest_start:
            alarm.latest_start = alert.starts_at
            self._dirty.add(fp)
        if alert.starts_at != alarm.starts_at or (
                old.ends_at is not None
                and (alert.ends_at is None or alert.ends_at < old.ends_at)):
            alert = dataclasses.replace(alert, starts_at=alarm.starts_at,
                                        ends_at=max_end(old.ends_at, alert.ends_at))
        if self._changed(old, alert):
            alarm.alert = alert
            alarm.sequence += 1
            alarm.source_url = source_url
            alarm.stored_ends_at = alert.ends_at
            self._dirty.add(fp)
            self._emit(out, "updated", alarm, alert, now, source_url)
        elif old is not alert:
            alarm.alert = alert
            stored = alarm.stored_ends_at
            if alert.ends_at != stored and (
                    stored is None or alert.ends_at is None
                    or stored - self.refresh_margin <= now):
                alarm.stored_ends_at = alert.ends_at
                self._dirty.add(fp)
        if seen_at > alarm.last_seen:
            alarm.last_seen = seen_at

    def _closed_verdict(self, alert: Alert, poll_started: datetime.datetime | None,
                        listed_by: Holder | None = None) -> tuple[bool, int]:
        """Whether a copy belongs to the fingerprint's closed occurrence.

        :param poll_started: when the poll that listed the copy started; None
            for a webhook delivery (deliveries may be stale: they never reopen)
        :param listed_by: the replica and epoch whose answer listed it
        :returns: ``(hidden, incarnation)``: hidden copies change nothing; a
            visible one fires with that incarnation (n + 1 when it reopens)
        """
        closed = self._closed.get(alert.fingerprint)
        if closed is None:
            return False, 1
        if alert.starts_at < closed.starts_at:
            return True, 0  # older than the closed occurrence
        ends_at = closed.ends_at
        if poll_started is None and closed.how != "resolved":
            # Its end was inferred by the poll that closed it: a delivery made
            # before then (they are retried) may show a copy never polled.
            ends_at = max(ends_at, closed.at + self.clock_offset())
        if alert.starts_at > ends_at:
            return False, 1  # started after it ended: a new occurrence
        if poll_started is None or poll_started <= closed.at or closed.how == "resolved":
            return True, 0  # a lagging copy of what ended
        if closed.how in ("silenced", "legacy"):
            return suppressed(alert), closed.incarnation + 1
        # disappeared: a replica that dropped it (and kept running) holds it
        # again, received after its endsAt had passed: Prometheus re-sent it
        # after Alertmanager had expired it, and Alertmanager takes it as new
        # (it notifies a new firing too).  Any other replica may be lagging.
        updated = alert.updated_at
        if (listed_by in closed.dropped_by and updated is not None
                and closed.last_ends_at is not None and updated > closed.last_ends_at
                and alert.starts_at <= (closed.latest_start or closed.starts_at)):
            return False, closed.incarnation + 1
        return True, 0

    # -- poll ------------------------------------------------------------

    def _holders(self, holders: Iterable[Holder]) -> frozenset[Holder]:
        key = frozenset(holders)
        return self._holder_sets.setdefault(key, key)
