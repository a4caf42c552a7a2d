"""Alert lifecycle: the one place that decides firing, updated and resolved.

Pure logic, no I/O: every method takes ``now`` (tz-aware UTC, the relay's
clock) from the caller.  The rules are written for operators and consumers in
docs/lifecycle.md; in short, every decision rests on what the sources said:

- **Identity follows Alertmanager's merge rule.**  Copies of one fingerprint
  (HA Prometheus replicas, Alertmanager replicas) whose active spans overlap
  are one occurrence, and the occurrence's ``startsAt`` is the earliest copy's.
  A copy with a later ``startsAt`` starts a new occurrence only when the old
  one is known to have ended: an explicit ``resolved`` delivery, or every
  replica that held the old occurrence answering without it.  The
  ``alarm_id`` is ``uuid5(ALARM_NAMESPACE, "<cluster>/<fingerprint>/<startsAt>")``
  of the first copy seen, ``/<n>`` appended when an occurrence is reopened.
- **Absence is evidence only from a replica that remembers.**  Each alarm
  keeps its *holders*: the (replica, epoch) pairs whose latest answer listed
  it, where the epoch is the replica's ``uptime`` (its start time).  A holder
  that answers in the same epoch without the alarm has dropped it; a holder
  that restarted forgot it, and its silence counts only once the alarm's last
  seen ``endsAt`` has passed (until then Alertmanager itself would still list
  it).  An alarm resolves when every holder has dropped it.
- **Nothing resolves on a timer.**  A failed replica changes nothing; an
  alarm only ever seen through the webhook (whose firing alerts carry no
  ``endsAt``) stays firing until a source says otherwise.
- **A resolved occurrence stays resolved.**  Copies of it that a lagging
  replica still lists are recognised by their ``startsAt`` and ignored; only a
  silence that ended (``suppressed_policy = resolve``) or Alertmanager
  receiving the alert again after its ``endsAt`` had passed reopens it.

Times from Alertmanager are in its clock.  :attr:`ReplicaPoll.clock_offset`
(Alertmanager's clock minus the relay's) converts, so that "has this
``endsAt`` passed?" is asked in the source's own clock, and every event has
``ends_at >= starts_at``.

The state is exported as JSON-able records (:meth:`LifecycleTracker.export_changes`)
stored with the events in one transaction, and read back with
:meth:`LifecycleTracker.restore`.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from oslo_log import log

from daemon import telemetry
from daemon.sources.model import Alert

if TYPE_CHECKING:
    from daemon.sources.alertmanager import PollResult, ReplicaPoll

__all__ = ["ALARM_NAMESPACE", "LifecycleTracker", "Transition", "TransitionKind",
           "alarm_id"]

LOG = log.getLogger(__name__)

TransitionKind = Literal["firing", "updated", "resolved"]

#: Namespace of the uuid5 alarm ids (fixed: changing it changes every alarm_id).
ALARM_NAMESPACE = uuid.UUID("5a1c3c1e-8d0b-5b6e-9f3a-6c2a7e4d9b10")

SuppressedPolicy = Literal["keep-firing", "resolve"]

_RECORD_VERSION = 2
_ZERO = datetime.timedelta(0)
_TICK = datetime.timedelta(microseconds=1)
_MAX_LEAD = datetime.timedelta(days=1)

#: A holder: (replica URL, the replica's uptime when it listed the alarm, or None).
Holder = tuple[str, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """A change of one alarm that must become one event.

    :ivar alarm_id: stable for one occurrence (cluster + fingerprint + startsAt)
    :ivar sequence: per alarm_id, 1 for firing, increasing after
    :ivar alert: the latest observation (for resolved: the last one seen, with
        ``status`` resolved and ``ends_at`` >= ``starts_at``)
    :ivar reason: why it resolved (resolved, disappeared, expired, silenced);
        None unless kind is resolved
    :ivar cluster: the Alertmanager cluster name
    :ivar source_url: the replica (or webhook peer) the observation came from
    """

    kind: TransitionKind
    alarm_id: str
    sequence: int
    alert: Alert
    observed_at: datetime.datetime
    cluster: str
    source_url: str
    reason: str | None = None


def alarm_id(cluster: str, fingerprint: str, starts_at: datetime.datetime,
             incarnation: int = 1) -> str:
    """The alarm_id of one occurrence.

    :param cluster: the Alertmanager cluster name
    :param fingerprint: the alert's fingerprint (replica labels dropped)
    :param starts_at: the startsAt of the first copy seen (tz-aware)
    :param incarnation: 1, or n when the same occurrence is reopened the n-th time
    """
    name = f"{cluster}/{fingerprint}/{_iso(starts_at)}"
    if incarnation > 1:
        name = f"{name}/{incarnation}"
    return str(uuid.uuid5(ALARM_NAMESPACE, name))


def _iso(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat(timespec="milliseconds")


def _iso_or_none(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"naive time {value!r}")
    return parsed.astimezone(datetime.UTC)


def _holder(item: Sequence[Any]) -> Holder:
    url, epoch = item
    return str(url), None if epoch is None else str(epoch)


def _uptime_time(uptime: str | None) -> datetime.datetime | None:
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


@dataclasses.dataclass(slots=True)
class _Alarm:
    """One firing occurrence.

    ``starts_at`` is the earliest copy's startsAt, ``latest_start`` the latest
    startsAt of a copy merged into it; a copy starting later is not (yet) this
    occurrence's.  ``successor_start`` is set while a holder has replaced this
    occurrence by a later one (Alertmanager's own verdict that it ended) and
    others still list it: copies from then on belong to the successor.
    ``dropped_by`` are the holders that, running on, stopped listing it.
    ``listed_at`` is when a poll last listed it (``last_seen`` counts webhook
    deliveries too, which may be stale).
    """

    alarm_id: str
    starts_at: datetime.datetime
    latest_start: datetime.datetime
    incarnation: int
    sequence: int
    alert: Alert
    last_seen: datetime.datetime
    seen_on: frozenset[Holder]
    source_url: str
    stored_ends_at: datetime.datetime | None = None
    successor_start: datetime.datetime | None = None
    dropped_by: frozenset[Holder] = frozenset()
    listed_at: datetime.datetime | None = None


#: How a closed occurrence ended, which says whether it may reopen.
ClosedHow = Literal["resolved", "disappeared", "silenced", "legacy"]


@dataclasses.dataclass(slots=True)
class _Closed:
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


def _suppressed(alert: Alert) -> bool:
    return alert.state == "suppressed"


def _representative(a: Alert, b: Alert) -> Alert:
    """Of two copies, the one whose labels, annotations and state an event shows.

    The earliest copy, as Alertmanager keeps; an active copy over a suppressed
    one; then the fresher.  Deterministic, so HA copies do not alternate.
    """
    if _suppressed(a) != _suppressed(b):
        return b if _suppressed(a) else a
    if a.starts_at != b.starts_at:
        return a if a.starts_at < b.starts_at else b
    a_end = a.ends_at or a.starts_at
    b_end = b.ends_at or b.starts_at
    return a if a_end >= b_end else b


def _max_end(a: datetime.datetime | None,
             b: datetime.datetime | None) -> datetime.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": _iso_or_none(alert.ends_at),
        "status": alert.status,
        "state": alert.state,
        "silenced_by": list(alert.silenced_by),
        "inhibited_by": list(alert.inhibited_by),
        "generator_url": alert.generator_url,
        "updated_at": _iso_or_none(alert.updated_at),
    }


def _alert_from_record(fingerprint: str, data: dict[str, Any]) -> Alert:
    starts_at = _time(data["starts_at"])
    assert starts_at is not None
    return Alert(
        fingerprint=fingerprint,
        labels={str(k): str(v) for k, v in data["labels"].items()},
        annotations={str(k): str(v) for k, v in data.get("annotations", {}).items()},
        starts_at=starts_at,
        ends_at=_time(data.get("ends_at")),
        status=data.get("status", "firing"),
        state=data.get("state", "active"),
        silenced_by=tuple(data.get("silenced_by", ())),
        inhibited_by=tuple(data.get("inhibited_by", ())),
        generator_url=data.get("generator_url", ""),
        updated_at=_time(data.get("updated_at")))


@dataclasses.dataclass(slots=True)
class _Cycle:
    """What one poll cycle says about replicas, for the absence rules."""

    now: datetime.datetime
    seen_at: datetime.datetime
    configured: frozenset[str]
    epochs: dict[str, str | None]  # replica -> uptime, for replicas that answered
    offsets: dict[str, datetime.timedelta]


class LifecycleTracker:
    """Owns alarm state and decides transitions.  Pure: no I/O, no clock.

    :param cluster: the Alertmanager cluster name (part of every alarm_id)
    :param suppressed_policy: ``keep-firing`` or ``resolve``
    :param expire_delay: seconds an alarm's endsAt must be past (in the
        source's clock, offset applied) before it counts as passed: a margin
        for the offset's own error and for request latency
    :param resolved_retention: seconds a resolved occurrence is remembered, so
        late or duplicate deliveries of it are recognised
    :param refresh_margin: a stored endsAt is refreshed once it is this close
        to ``now`` (bounds how stale a restored endsAt can be)
    """

    def __init__(self, *, cluster: str,
                 suppressed_policy: SuppressedPolicy | str = "keep-firing",
                 expire_delay: float = 15.0,
                 resolved_retention: float = 86400.0,
                 refresh_margin: float = 120.0) -> None:
        if suppressed_policy not in ("keep-firing", "resolve"):
            raise ValueError(f"unknown suppressed_policy {suppressed_policy!r}")
        self.cluster = cluster
        self.suppressed_policy = suppressed_policy
        self.expire_delay = datetime.timedelta(seconds=expire_delay)
        self.resolved_retention = datetime.timedelta(seconds=resolved_retention)
        self.refresh_margin = datetime.timedelta(seconds=refresh_margin)
        self._alarms: dict[str, _Alarm] = {}
        self._closed: dict[str, _Closed] = {}
        self._dirty: set[str] = set()
        self._holder_sets: dict[frozenset[Holder], frozenset[Holder]] = {}
        self._offsets: dict[str, datetime.timedelta] = {}
        # How far ahead of its last update Alertmanager lists an alert's
        # endsAt (Prometheus: 4 resend periods), as seen in polls.
        self._lead: datetime.timedelta | None = None

    @classmethod
    def from_conf(cls, conf: Any, *, cluster: str | None = None) -> LifecycleTracker:
        """Build from the ``[lifecycle]`` options.

        :param conf: the ``oslo_config.cfg.ConfigOpts``
        :param cluster: the cluster tracked; by default ``[alertmanager] cluster_name``
        """
        lc = conf.lifecycle
        return cls(cluster=cluster or conf.alertmanager.cluster_name,
                   suppressed_policy=lc.suppressed_policy,
                   expire_delay=lc.expire_delay,
                   resolved_retention=lc.resolved_retention,
                   refresh_margin=lc.state_refresh_margin)

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
        return [Transition("firing", a.alarm_id, a.sequence, a.alert, a.last_seen,
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
            return _ZERO
        values = sorted(self._offsets.values())
        return values[len(values) // 2]

    # -- transitions -----------------------------------------------------

    def _emit(self, out: list[Transition], kind: TransitionKind, alarm: _Alarm,
              alert: Alert, now: datetime.datetime, source_url: str,
              reason: str | None = None) -> None:
        out.append(Transition(kind, alarm.alarm_id, alarm.sequence, alert, now,
                              self.cluster, source_url, reason))
        telemetry.TRANSITIONS.labels(kind=kind, reason=reason or "").inc()

    def _fire(self, out: list[Transition], alert: Alert, now: datetime.datetime,
              seen_at: datetime.datetime, seen_on: frozenset[Holder], source_url: str,
              incarnation: int = 1, latest_start: datetime.datetime | None = None) -> None:
        fp = alert.fingerprint
        alarm = _Alarm(alarm_id(self.cluster, fp, alert.starts_at, incarnation),
                       alert.starts_at, latest_start or alert.starts_at, incarnation, 1,
                       alert, seen_at, seen_on, source_url, alert.ends_at)
        self._alarms[fp] = alarm
        self._dirty.add(fp)
        self._emit(out, "firing", alarm, alert, now, source_url)

    def _resolve(self, out: list[Transition], alarm: _Alarm, now: datetime.datetime,
                 reason: str, source_url: str, *, ends_at: datetime.datetime,
                 closed_how: ClosedHow, closed_until: datetime.datetime) -> None:
        """Resolve ``alarm``; its event's ``ends_at`` is never before its ``starts_at``.

        :param ends_at: when it ended, in the source's clock
        :param closed_how: how the occurrence closed (see :class:`_Closed`)
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
            self._closed[fp] = _Closed(alarm.starts_at, until, now, alarm.incarnation,
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
                or _suppressed(old) != _suppressed(new)
                or old.silenced_by != new.silenced_by
                or old.inhibited_by != new.inhibited_by)

    def _observe_same(self, out: list[Transition], alarm: _Alarm, alert: Alert,
                      now: datetime.datetime, seen_at: datetime.datetime,
                      source_url: str) -> None:
        """A new observation of the occurrence an alarm already tracks.

        The alarm keeps the earliest startsAt and the latest endsAt it saw.
        """
        fp = alert.fingerprint
        old = alarm.alert
        if alert.starts_at < alarm.starts_at:
            alarm.starts_at = alert.starts_at
            self._dirty.add(fp)
        elif alert.starts_at > alarm.latest_start:
            alarm.latest_start = alert.starts_at
            self._dirty.add(fp)
        if alert.starts_at != alarm.starts_at or (
                old.ends_at is not None
                and (alert.ends_at is None or alert.ends_at < old.ends_at)):
            alert = dataclasses.replace(alert, starts_at=alarm.starts_at,
                                        ends_at=_max_end(old.ends_at, alert.ends_at))
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
            return _suppressed(alert), closed.incarnation + 1
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

    def _ends_passed(self, alarm: _Alarm, url: str, cycle: _Cycle) -> bool:
        """Whether the alarm's last seen endsAt has passed in ``url``'s clock."""
        ends_at = alarm.alert.ends_at
        if ends_at is None:
            return False
        offset = cycle.offsets.get(url, _ZERO)
        return ends_at <= cycle.now + offset - self.expire_delay

    def observe_poll(self, result: PollResult, now: datetime.datetime) -> list[Transition]:
        """Transitions implied by one poll cycle of every replica.

        :param result: the cycle; replicas with ``alerts=None`` change nothing
        :param now: the current time (tz-aware UTC)
        """
        out: list[Transition] = []
        if result.cluster != self.cluster:
            LOG.error("Poll of cluster %s given to the tracker of %s; ignored",
                      result.cluster, self.cluster)
            return out
        answered = [r for r in result.replicas if r.alerts is not None]
        for replica in answered:
            if replica.clock_offset is not None:
                self._offsets[replica.url] = datetime.timedelta(seconds=replica.clock_offset)
            self._learn_lead(replica.alerts)
        if not answered:
            return out
        cycle = _Cycle(now, result.started_at, frozenset(r.url for r in result.replicas),
                       {r.url: r.uptime for r in answered},
                       {url: self._offsets[url] for url in self._offsets})
        invalid: dict[str, set[str]] = {}
        for replica in answered:
            for fp in replica.invalid:
                invalid.setdefault(fp, set()).add(replica.url)
        if len(answered) == 1:
            listed = self._observe_one(out, answered[0], cycle)
        else:
            listed = self._observe_many(out, answered, cycle)
        for fp in [fp for fp in self._alarms if fp not in listed]:
            alarm = self._alarms[fp]
            if alarm.last_seen >= cycle.seen_at or fp in invalid:
                continue  # delivered after this poll started, or listed unreadably
            self._absent(out, alarm, cycle)
        self._gauge()
        return out

    def _learn_lead(self, alerts: Sequence[Alert] | None) -> None:
        """Sample how far ahead endsAt runs (one alert per answer is enough)."""
        for alert in alerts or ():
            if alert.ends_at is not None and alert.updated_at is not None:
                lead = alert.ends_at - alert.updated_at
                if _ZERO < lead <= _MAX_LEAD and (self._lead is None or lead > self._lead):
                    self._lead = lead
                return

    def _observe_one(self, out: list[Transition], replica: ReplicaPoll,
                     cycle: _Cycle) -> set[str]:
        """The common case: one replica answered (fast path of :meth:`_observe_copies`).

        :returns: the fingerprints that count as listed
        """
        url = replica.url
        holders = self._holders(((url, replica.uptime),))
        by_fp: dict[str, Alert] = {}
        dups: dict[str, list[Alert]] | None = None
        for alert in replica.alerts or ():
            fp = alert.fingerprint
            if fp in by_fp:
                if dups is None:
                    dups = {}
                dups.setdefault(fp, [by_fp[fp]]).append(alert)
            else:
                by_fp[fp] = alert
        listed = set(by_fp)
        alarms = self._alarms
        for fp, alert in by_fp.items():
            alarm = alarms.get(fp)
            if (dups is None or fp not in dups) and alarm is not None \
                    and alarm.starts_at <= alert.starts_at <= alarm.latest_start \
                    and alarm.successor_start is None \
                    and not (self.suppressed_policy == "resolve" and _suppressed(alert)):
                self._observe_same(out, alarm, alert, cycle.now, cycle.seen_at, url)
                alarm.listed_at = cycle.seen_at
                if alarm.seen_on is not holders:
                    self._set_holders(alarm, self._kept_holders(alarm, cycle, {url})
                                      | holders)
                continue
            copies = [(url, a) for a in dups[fp]] if dups and fp in dups else [(url, alert)]
            if not self._observe_copies(out, fp, copies, cycle):
                listed.discard(fp)
        return listed

    def _observe_many(self, out: list[Transition], answered: Sequence[ReplicaPoll],
                      cycle: _Cycle) -> set[str]:
        copies: dict[str, list[tuple[str, Alert]]] = {}
        for replica in answered:
            url = replica.url
            for alert in replica.alerts or ():
                found = copies.get(alert.fingerprint)
                if found is None:
                    copies[alert.fingerprint] = [(url, alert)]
                else:
                    found.append((url, alert))
        listed = set(copies)
        for fp, found in copies.items():
            if not self._observe_copies(out, fp, found, cycle):
                listed.discard(fp)
        return listed

    def _set_holders(self, alarm: _Alarm, holders: Iterable[Holder]) -> None:
        interned = self._holders(holders)
        if interned != alarm.seen_on:
            alarm.seen_on = interned
            self._dirty.add(alarm.alert.fingerprint)

    def _kept_holders(self, alarm: _Alarm, cycle: _Cycle,
                      listing: Iterable[str] = ()) -> set[Holder]:
        """Holders whose claim still stands after this cycle.

        A holder that answered in the same epoch without the alarm dropped
        it; one that restarted keeps its claim until the alarm's endsAt
        passed; one that failed, or that listed it now, keeps it (a listing
        holder is re-added with its current epoch by the caller).
        """
        kept: set[Holder] = set()
        for holder in alarm.seen_on:
            url, epoch = holder
            if url not in cycle.configured or url in listing:
                continue
            if url not in cycle.epochs:
                kept.add(holder)  # failed this cycle: what it said last stands
                continue
            if epoch is not None and cycle.epochs[url] == epoch:
                # It remembers, and dropped it: Alertmanager's word that it ended.
                alarm.dropped_by = self._holders(alarm.dropped_by | {holder})
                self._dirty.add(alarm.alert.fingerprint)
                continue
            if self._ends_passed(alarm, url, cycle):
                continue  # forgot it, but would no longer list it anyway
            kept.add(holder)
        return kept

    def _observe_copies(self, out: list[Transition], fp: str,
                        copies: list[tuple[str, Alert]], cycle: _Cycle) -> bool:
        """Every copy of one fingerprint that this cycle's replicas listed.

        :returns: False when every copy was a stale one (as good as absent)
        """
        live: list[tuple[str, Alert]] = []
        reopen = 0
        alarm = self._alarms.get(fp)
        for url, alert in copies:
            if alarm is not None and alert.starts_at >= alarm.starts_at:
                live.append((url, alert))
                continue
            hidden, incarnation = self._closed_verdict(alert, cycle.seen_at,
                                                       (url, cycle.epochs.get(url)))
            if hidden or (alarm is not None and incarnation > 1):
                continue
            live.append((url, alert))
            reopen = max(reopen, incarnation if incarnation > 1 else 0)
        if not live:
            return False
        if alarm is None:
            self._start(out, fp, live, cycle, reopen)
            return True
        ours = [(u, a) for u, a in live if a.starts_at <= alarm.latest_start]
        later = [(u, a) for u, a in live if a.starts_at > alarm.latest_start]
        if later:
            ours, later = self._sort_later(alarm, ours, later, cycle)
        if not ours:
            # No replica lists this occurrence: the later copies are another
            # one if its holders agree that it ended; until then they wait.
            self._absent(out, alarm, cycle, successors=later)
            return True
        if self.suppressed_policy == "resolve" and all(_suppressed(a) for _, a in ours):
            url = min(u for u, _ in ours)
            source_now = cycle.now + cycle.offsets.get(url, _ZERO)
            self._resolve(out, alarm, cycle.now, "silenced", url, ends_at=source_now,
                          closed_how="silenced", closed_until=source_now)
            return True
        best = ours[0][1]
        for _, alert in ours[1:]:
            best = _representative(best, alert)
        starts = min(a.starts_at for _, a in ours)
        latest = max(a.starts_at for _, a in ours)
        ends = best.ends_at
        for _, alert in ours:
            ends = _max_end(ends, alert.ends_at)
        if best.starts_at != starts or best.ends_at != ends:
            best = dataclasses.replace(best, starts_at=starts, ends_at=ends)
        listing = frozenset(u for u, _ in ours)
        source_url = min(listing)
        self._observe_same(out, alarm, best, cycle.now, cycle.seen_at, source_url)
        alarm.listed_at = cycle.seen_at
        if latest > alarm.latest_start:
            alarm.latest_start = latest
            self._dirty.add(fp)
        new_holders = {(u, cycle.epochs.get(u)) for u in listing}
        self._set_holders(alarm, self._kept_holders(alarm, cycle, listing) | new_holders)
        if alarm.dropped_by and not new_holders.isdisjoint(alarm.dropped_by):
            alarm.dropped_by = self._holders(alarm.dropped_by - new_holders)
        return True

    def _sort_later(self, alarm: _Alarm, ours: list[tuple[str, Alert]],
                    later: list[tuple[str, Alert]], cycle: _Cycle
                    ) -> tuple[list[tuple[str, Alert]], list[tuple[str, Alert]]]:
        """Copies that started after the occurrence's known ones: its, or the next one's.

        A replica that kept running and now lists, instead of the occurrence,
        the same Alertmanager alert (same labels) with a later startsAt has
        replaced it, and one that had dropped it lists a new one: either is
        Alertmanager's own verdict that it ended, kept as ``successor_start``.
        Other later copies overlap the occurrence, as Alertmanager merges
        them, when listed together with it, or when they
        started before its last seen endsAt (another Prometheus replica's
        copy) and no replica has said it ended; the rest wait for the
        holders' verdict.

        :returns: ``(ours, later)`` with the copies that joined moved to ours
        """
        fp = alarm.alert.fingerprint
        listing_ours = {u for u, _ in ours}
        same_epoch = {url for url, epoch in alarm.seen_on
                      if epoch is not None and cycle.epochs.get(url) == epoch}
        dropped = {url for url, epoch in alarm.dropped_by
                   if epoch is not None and cycle.epochs.get(url) == epoch}
        labels = alarm.alert.labels
        switched = [a.starts_at for u, a in later if u not in listing_ours and (
            u in dropped or (u in same_epoch and a.labels == labels))]
        if switched and (alarm.successor_start is None
                         or min(switched) < alarm.successor_start):
            alarm.successor_start = min(switched)
            self._dirty.add(fp)
        successor = alarm.successor_start
        ends_at = alarm.alert.ends_at
        joined, waiting = list(ours), []
        for copy in later:
            starts = copy[1].starts_at
            if successor is not None and starts >= successor:
                waiting.append(copy)
            elif ours or (not dropped and (ends_at is None or starts < ends_at)):
                joined.append(copy)
            else:
                waiting.append(copy)
        return joined, waiting

    def _start(self, out: list[Transition], fp: str, live: list[tuple[str, Alert]],
               cycle: _Cycle, reopen: int) -> None:
        """Fire a new (or reopened) occurrence from the copies listed now."""
        if self.suppressed_policy == "resolve":
            live = [(u, a) for u, a in live if not _suppressed(a)]
            if not live:
                return
        best = live[0][1]
        for _, alert in live[1:]:
            best = _representative(best, alert)
        starts = min(a.starts_at for _, a in live)
        latest = max(a.starts_at for _, a in live)
        ends = best.ends_at
        for _, alert in live:
            ends = _max_end(ends, alert.ends_at)
        if best.starts_at != starts or best.ends_at != ends:
            best = dataclasses.replace(best, starts_at=starts, ends_at=ends)
        listing = frozenset(u for u, _ in live)
        holders = self._holders((u, cycle.epochs.get(u)) for u in listing)
        if reopen > 1:
            closed = self._closed[fp]
            best = dataclasses.replace(best, starts_at=closed.starts_at)
        self._fire(out, best, cycle.now, cycle.seen_at, holders, min(listing),
                   reopen or 1, latest)
        self._alarms[fp].listed_at = cycle.seen_at

    def _absent(self, out: list[Transition], alarm: _Alarm, cycle: _Cycle,
                successors: Sequence[tuple[str, Alert]] = ()) -> None:
        """An alarm no replica listed as such this cycle: resolve it if the holders agree.

        :param successors: copies of a later occurrence listed instead; fired
            as a new alarm once this one resolves
        """
        fp = alarm.alert.fingerprint
        kept = self._kept_holders(alarm, cycle)
        if not alarm.seen_on:
            # Only ever seen through the webhook: no replica is known to have
            # held it, so every replica must answer without it, each running
            # since before the delivery (or past its endsAt).
            if not self._webhook_alarm_gone(alarm, cycle):
                return
        elif kept:
            self._set_holders(alarm, kept)
            return
        source_url = min(cycle.epochs)
        source_now = cycle.now + cycle.offsets.get(source_url, _ZERO)
        closed_until = ((alarm.listed_at or alarm.last_seen)
                        + cycle.offsets.get(source_url, _ZERO))
        end = source_now
        starts = [a.starts_at for _, a in successors]
        if alarm.successor_start is not None:
            starts.append(alarm.successor_start)
        if starts:
            end = min(min(starts), source_now)
            closed_until = min(starts) - _TICK  # the successor is not part of it
        if alarm.successor_start is not None:
            # A holder replaced it by a later occurrence: Alertmanager's verdict.
            reason, how = "resolved", "resolved"
        elif alarm.seen_on and not alarm.dropped_by and alarm.alert.ends_at is not None:
            # Only "its endsAt passed" says it ended: that is when.
            reason, how = "expired", "disappeared"
            end = min(end, alarm.alert.ends_at)
        else:
            reason, how = "disappeared", "disappeared"
        self._resolve(out, alarm, cycle.now, reason, source_url, ends_at=end,
                      closed_how=how, closed_until=closed_until)
        if successors:
            self._start(out, fp, list(successors), cycle, 0)

    def _webhook_alarm_gone(self, alarm: _Alarm, cycle: _Cycle) -> bool:
        """Whether an alarm only ever delivered by webhook is gone from the cluster.

        Every replica must answer without it (the sender is not known), each
        either running since before the delivery, or restarted since but
        running for longer than the endsAt lead seen in this cluster's polls:
        Prometheus sends every alert to every replica and re-sends a firing
        one well within that lead, so such a replica would list it again.
        Without a lead seen (no poll ever listed an alert), a replica that
        restarted gives no evidence.
        """
        if set(cycle.epochs) != set(cycle.configured):
            return False
        for url, uptime in cycle.epochs.items():
            started = _uptime_time(uptime)
            if started is None:
                return False
            offset = cycle.offsets.get(url, _ZERO)
            if started <= alarm.last_seen + offset - self.expire_delay:
                continue  # running since before the delivery
            if self._lead is None or started + self._lead > cycle.now + offset - self.expire_delay:
                return False  # restarted since: it may still be re-sent
        return True

    # -- webhook ---------------------------------------------------------

    def observe_webhook(self, alerts: Sequence[Alert], now: datetime.datetime,
                        source_url: str) -> list[Transition]:
        """Transitions implied by one webhook delivery.

        Idempotent: duplicates (HA peers, retries) change nothing.  Copies are
        taken in startsAt order.  A delivery is one replica's view at one
        moment, maybe long ago (Alertmanager retries): a firing copy that
        started before or after the firing occurrence's known copies joins it
        only when the delivery also shows one of those (they were active
        together); otherwise the polls decide.  A ``resolved`` copy
        ends the occurrence it overlaps, unless the same delivery shows
        another copy of it still firing.  A firing copy never reopens a resolved
        occurrence (deliveries may be stale); a resolved alert never seen
        before is remembered, not announced.

        :param alerts: the delivery's alerts, already validated
        :param now: the current time (tz-aware UTC)
        :param source_url: the sender (the delivery's externalURL)
        """
        out: list[Transition] = []
        firing: dict[str, list[Alert]] = {}
        for alert in alerts:
            if alert.status != "resolved":
                firing.setdefault(alert.fingerprint, []).append(alert)
        # Fingerprints whose firing alarm this delivery shows (or starts).
        shown = {fp for fp, copies in firing.items()
                 if (alarm := self._alarms.get(fp)) is not None
                 and any(alarm.starts_at <= c.starts_at <= alarm.latest_start
                         for c in copies)}
        ordered = sorted(alerts, key=lambda a: (a.starts_at, a.status == "resolved"))
        for alert in ordered:
            fp = alert.fingerprint
            alarm = self._alarms.get(fp)
            if alert.status == "resolved":
                ends_at = alert.ends_at
                assert ends_at is not None  # parse_alert refuses a resolved alert without
                if any(other.labels != alert.labels and other.starts_at < ends_at
                       for other in firing.get(fp, ())):
                    continue  # another copy (HA replica) of the occurrence still fires
                if alarm is not None and ends_at > alarm.starts_at:
                    self._resolve(out, alarm, now, "resolved", source_url, ends_at=ends_at,
                                  closed_how="resolved", closed_until=ends_at)
                else:
                    self._remember_closed(fp, alert, now)
                continue
            if alarm is None:
                hidden, _ = self._closed_verdict(alert, None)
                if not hidden:
                    self._fire(out, alert, now, now, frozenset(), source_url)
                    shown.add(fp)
                continue
            if not alarm.starts_at <= alert.starts_at <= alarm.latest_start and (
                    fp not in shown or self._closed_verdict(alert, None)[0]
                    or (alarm.successor_start is not None
                        and alert.starts_at >= alarm.successor_start)):
                continue  # maybe another occurrence: the polls tell
            # The webhook knows neither suppression nor endsAt of a firing alert:
            # keep what the poll said.
            old = alarm.alert
            merged = dataclasses.replace(
                alert, ends_at=old.ends_at, state=old.state, silenced_by=old.silenced_by,
                inhibited_by=old.inhibited_by, updated_at=old.updated_at,
                labels=old.labels if old.labels == alert.labels else alert.labels,
                annotations=(old.annotations if alert.starts_at > alarm.starts_at
                             else alert.annotations))
            self._observe_same(out, alarm, merged, now, now, source_url)
        self._gauge()
        return out

    def _remember_closed(self, fp: str, alert: Alert, at: datetime.datetime) -> None:
        """Remember an occurrence that ended without being announced."""
        closed = self._closed.get(fp)
        assert alert.ends_at is not None
        if closed is None or closed.starts_at < alert.starts_at:
            # incarnation 0: never announced, so a reopening is incarnation 1
            self._closed[fp] = _Closed(alert.starts_at, max(alert.ends_at, alert.starts_at),
                                       at, 0, "resolved", alert.ends_at)
            self._dirty.add(fp)

    # -- time ------------------------------------------------------------

    def expire(self, now: datetime.datetime) -> list[Transition]:
        """Forget resolved occurrences older than ``resolved_retention``.

        Resolves nothing: an alarm no source can confirm stays firing (a
        failed poll is no evidence), and the failing source is reported by
        ``/readyz`` and ``alarm_relay_polls_total``.

        :param now: the current time (tz-aware UTC)
        :returns: always empty (kept so every observation has one shape)
        """
        forget = now - self.resolved_retention
        for fp in [fp for fp, c in self._closed.items() if c.at < forget]:
            del self._closed[fp]
            self._dirty.add(fp)
        return []

    def _gauge(self) -> None:
        telemetry.ALERTS_TRACKED.set(len(self._alarms))

    # -- state -----------------------------------------------------------

    def export_changes(self) -> list[tuple[str, dict[str, Any] | None]]:
        """State records changed since the last call; None means delete.

        Records are JSON-able dicts with ``key`` = ``<cluster>/<fingerprint>``.
        """
        changes: list[tuple[str, dict[str, Any] | None]] = []
        for fp in self._dirty:
            changes.append((self.state_key(fp), self._record(fp)))
        self._dirty.clear()
        return changes

    def _record(self, fp: str) -> dict[str, Any] | None:
        alarm = self._alarms.get(fp)
        closed = self._closed.get(fp)
        if alarm is None and closed is None:
            return None
        record: dict[str, Any] = {
            "key": self.state_key(fp), "version": _RECORD_VERSION, "cluster": self.cluster,
            "fingerprint": fp, "alarm": None, "closed": None}
        if alarm is not None:
            alarm.stored_ends_at = alarm.alert.ends_at
            record["alarm"] = {
                "alarm_id": alarm.alarm_id,
                "starts_at": alarm.starts_at.isoformat(),
                "latest_start": alarm.latest_start.isoformat(),
                "successor_start": _iso_or_none(alarm.successor_start),
                "dropped_by": sorted([url, epoch] for url, epoch in alarm.dropped_by),
                "listed_at": _iso_or_none(alarm.listed_at),
                "incarnation": alarm.incarnation,
                "sequence": alarm.sequence,
                "last_seen": alarm.last_seen.isoformat(),
                "seen_on": sorted([url, epoch] for url, epoch in alarm.seen_on),
                "source_url": alarm.source_url,
                "alert": _alert_record(alarm.alert),
            }
        if closed is not None:
            record["closed"] = {"starts_at": closed.starts_at.isoformat(),
                                "ends_at": closed.ends_at.isoformat(),
                                "at": closed.at.isoformat(),
                                "incarnation": closed.incarnation,
                                "how": closed.how,
                                "last_ends_at": _iso_or_none(closed.last_ends_at),
                                "latest_start": _iso_or_none(closed.latest_start),
                                "dropped_by": sorted([url, epoch]
                                                     for url, epoch in closed.dropped_by)}
        return record

    def restore(self, records: Iterable[dict[str, Any]]) -> None:
        """Load the records of :meth:`export_changes` (at start, before any observation).

        Records of other clusters are ignored; a record that does not load is
        logged and skipped.  Version 1 records (earlier releases) load too:
        their replicas' epochs are unknown, so those claims stand until the
        alarm's endsAt passes or the replica lists it again.

        :param records: what the outbox kept
        """
        loaded = 0
        for record in records:
            try:
                if record.get("cluster") != self.cluster:
                    continue
                version = record.get("version")
                if version not in (1, _RECORD_VERSION):
                    raise ValueError(f"unknown version {version!r}")
                fp = record["fingerprint"]
                data = record.get("alarm")
                if data is not None:
                    self._alarms[fp] = self._alarm_from_record(fp, data)
                closed = record.get("closed")
                if closed is not None:
                    self._closed[fp] = self._closed_from_record(closed)
                loaded += 1
            except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as err:
                LOG.error("Skipping a state record that does not load (%s): %s",
                          record.get("key") if isinstance(record, dict) else "?", err)
        LOG.info("Restored %d state records of cluster %s (%d alarms firing)",
                 loaded, self.cluster, len(self._alarms))
        self._gauge()

    def _alarm_from_record(self, fp: str, data: dict[str, Any]) -> _Alarm:
        alert = _alert_from_record(fp, data["alert"])
        starts_at = _time(data["starts_at"])
        last_seen = _time(data["last_seen"])
        assert starts_at is not None and last_seen is not None
        latest = _time(data.get("latest_start")) or max(starts_at, alert.starts_at)
        holders = [(item, None) if isinstance(item, str)  # version 1: the URL alone
                   else _holder(item) for item in data.get("seen_on", ())]
        return _Alarm(str(data["alarm_id"]), starts_at, latest, int(data["incarnation"]),
                      int(data["sequence"]), alert, last_seen, self._holders(holders),
                      str(data.get("source_url", "")), alert.ends_at,
                      _time(data.get("successor_start")),
                      self._holders(_holder(item) for item in data.get("dropped_by", ())),
                      _time(data.get("listed_at")))

    def _closed_from_record(self, closed: dict[str, Any]) -> _Closed:
        starts = _time(closed["starts_at"])
        at = _time(closed["at"])
        assert starts is not None and at is not None
        ends = _time(closed.get("ends_at"))
        how = closed.get("how", "legacy")
        if how not in ("resolved", "disappeared", "silenced", "legacy"):
            raise ValueError(f"unknown closing {how!r}")
        # Version 1 kept no end: only the very startsAt belongs to it.
        return _Closed(starts, ends if ends is not None else starts, at,
                       int(closed.get("incarnation", 1)), how,
                       _time(closed.get("last_ends_at")), _time(closed.get("latest_start")),
                       self._holders(_holder(item) for item in closed.get("dropped_by", ())))
