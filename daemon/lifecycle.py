"""Alert lifecycle: the one place that decides firing, updated and resolved.

Pure logic, no I/O: every method takes ``now`` (tz-aware UTC) from the caller.
How the decisions are made is written for operators and consumers in
docs/lifecycle.md; in short:

- one occurrence = fingerprint + startsAt; its ``alarm_id`` is
  ``uuid5(ALARM_NAMESPACE, "<cluster>/<fingerprint>/<startsAt>")`` (startsAt in
  ISO 8601 with milliseconds), ``/<n>`` appended when the same occurrence is
  reopened for the n-th time after being resolved;
- an alarm resolves by disappearance only when every replica that last listed
  it has since answered a successful poll without it, and only replicas whose
  absence can be trusted count (not during the grace period after start-up or
  after the replica restarted, unless the alarm's endsAt passed);
- a failed replica keeps what it said last; :meth:`LifecycleTracker.expire`
  resolves an alarm whose endsAt passed while nobody could confirm it.

The state is exported as JSON-able records (:meth:`export_changes`) stored
with the events in one transaction, and read back with :meth:`restore`.
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
    from daemon.sources.alertmanager import PollResult

__all__ = ["ALARM_NAMESPACE", "LifecycleTracker", "Transition", "TransitionKind",
           "alarm_id"]

LOG = log.getLogger(__name__)

TransitionKind = Literal["firing", "updated", "resolved"]

#: Namespace of the uuid5 alarm ids (fixed: changing it changes every alarm_id).
ALARM_NAMESPACE = uuid.UUID("5a1c3c1e-8d0b-5b6e-9f3a-6c2a7e4d9b10")

SuppressedPolicy = Literal["keep-firing", "resolve"]

_RECORD_VERSION = 1

@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """A change of one alarm that must become one event.

    :ivar alarm_id: stable for one occurrence (cluster + fingerprint + startsAt)
    :ivar sequence: per alarm_id, 1 for firing, increasing after
    :ivar alert: the latest observation (for resolved: the last one seen)
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
    :param starts_at: the occurrence's startsAt (tz-aware)
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


@dataclasses.dataclass(slots=True)
class _Alarm:
    """One firing occurrence."""

    alarm_id: str
    starts_at: datetime.datetime
    incarnation: int
    sequence: int
    alert: Alert
    last_seen: datetime.datetime
    seen_on: frozenset[str]
    source_url: str
    stored_ends_at: datetime.datetime | None = None


@dataclasses.dataclass(slots=True)
class _Closed:
    """The latest resolved occurrence of a fingerprint (guards against stale input)."""

    starts_at: datetime.datetime
    at: datetime.datetime
    incarnation: int


@dataclasses.dataclass(slots=True)
class _Replica:
    uptime: str | None = None
    grace_until: datetime.datetime | None = None


def _suppressed(alert: Alert) -> bool:
    return alert.state == "suppressed"


def _better(a: Alert, b: Alert) -> Alert:
    """Of two observations of one fingerprint, the one that counts."""
    if a.starts_at != b.starts_at:
        return a if a.starts_at > b.starts_at else b
    if _suppressed(a) != _suppressed(b):
        return b if _suppressed(a) else a
    a_end = a.ends_at or a.starts_at
    b_end = b.ends_at or b.starts_at
    return a if a_end >= b_end else b


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


class LifecycleTracker:
    """Owns alarm state and decides transitions.  Pure: no I/O, no clock.

    :param cluster: the Alertmanager cluster name (part of every alarm_id)
    :param grace_period: seconds during which disappearance is not trusted after
        ``started_at`` and after a replica's uptime changed
    :param suppressed_policy: ``keep-firing`` or ``resolve``
    :param started_at: when the relay started (tz-aware UTC)
    :param expire_delay: seconds an alarm's endsAt must be past before it
        counts as passed (allows for clock skew with Alertmanager)
    :param default_resolve_timeout: endsAt assumed for an alarm only ever seen
        without one (webhook firing deliveries carry none): last seen + this
    :param resolved_retention: seconds a resolved occurrence is remembered, so
        late or duplicate deliveries of it are recognised
    :param refresh_margin: a stored endsAt is refreshed once it is this close
        to ``now`` (bounds how stale a restored endsAt can be)
    """

    def __init__(self, *, cluster: str, grace_period: float,
                 suppressed_policy: SuppressedPolicy | str = "keep-firing",
                 started_at: datetime.datetime, expire_delay: float = 15.0,
                 default_resolve_timeout: float = 300.0,
                 resolved_retention: float = 86400.0,
                 refresh_margin: float = 120.0) -> None:
        if suppressed_policy not in ("keep-firing", "resolve"):
            raise ValueError(f"unknown suppressed_policy {suppressed_policy!r}")
        if started_at.tzinfo is None:
            raise ValueError("started_at must be tz-aware")
        self.cluster = cluster
        self.grace_period = datetime.timedelta(seconds=grace_period)
        self.suppressed_policy = suppressed_policy
        self.started_at = started_at
        self.expire_delay = datetime.timedelta(seconds=expire_delay)
        self.default_resolve_timeout = datetime.timedelta(seconds=default_resolve_timeout)
        self.resolved_retention = datetime.timedelta(seconds=resolved_retention)
        self.refresh_margin = datetime.timedelta(seconds=refresh_margin)
        self._alarms: dict[str, _Alarm] = {}
        self._closed: dict[str, _Closed] = {}
        self._replicas: dict[str, _Replica] = {}
        self._dirty: set[str] = set()
        self._seen_sets: dict[frozenset[str], frozenset[str]] = {}

    @classmethod
    def from_conf(cls, conf: Any, *, started_at: datetime.datetime,
                  cluster: str | None = None) -> LifecycleTracker:
        """Build from the ``[lifecycle]`` options.

        :param conf: the ``oslo_config.cfg.ConfigOpts``
        :param started_at: when the relay started (tz-aware UTC)
        :param cluster: the cluster tracked; by default ``[alertmanager] cluster_name``
        """
        lc = conf.lifecycle
        return cls(cluster=cluster or conf.alertmanager.cluster_name,
                   grace_period=lc.resolve_grace_period,
                   suppressed_policy=lc.suppressed_policy, started_at=started_at,
                   expire_delay=lc.expire_delay,
                   default_resolve_timeout=lc.default_resolve_timeout,
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

    # -- transitions -----------------------------------------------------

    def _emit(self, out: list[Transition], kind: TransitionKind, alarm: _Alarm,
              alert: Alert, now: datetime.datetime, source_url: str,
              reason: str | None = None) -> None:
        out.append(Transition(kind, alarm.alarm_id, alarm.sequence, alert, now,
                              self.cluster, source_url, reason))
        telemetry.TRANSITIONS.labels(kind=kind, reason=reason or "").inc()

    def _fire(self, out: list[Transition], alert: Alert, now: datetime.datetime,
              seen_at: datetime.datetime, seen_on: frozenset[str], source_url: str,
              incarnation: int = 1) -> None:
        fp = alert.fingerprint
        alarm = _Alarm(alarm_id(self.cluster, fp, alert.starts_at, incarnation),
                       alert.starts_at, incarnation, 1, alert, seen_at, seen_on, source_url,
                       alert.ends_at)
        self._alarms[fp] = alarm
        self._dirty.add(fp)
        self._emit(out, "firing", alarm, alert, now, source_url)

    def _resolve(self, out: list[Transition], alarm: _Alarm, now: datetime.datetime,
                 reason: str, source_url: str, ends_at: datetime.datetime | None = None,
                 closed_at: datetime.datetime | None = None) -> None:
        fp = alarm.alert.fingerprint
        del self._alarms[fp]
        last = alarm.alert
        end = ends_at if ends_at is not None else last.ends_at
        if end is None or end > now:
            end = now
        alert = dataclasses.replace(last, status="resolved", ends_at=end)
        alarm.sequence += 1
        closed = self._closed.get(fp)
        if closed is None or closed.starts_at <= alarm.starts_at:
            self._closed[fp] = _Closed(alarm.starts_at, closed_at or now, alarm.incarnation)
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
        """A new observation of the occurrence an alarm already tracks."""
        fp = alert.fingerprint
        if self._changed(alarm.alert, alert):
            alarm.alert = alert
            alarm.sequence += 1
            alarm.source_url = source_url
            alarm.stored_ends_at = alert.ends_at
            self._dirty.add(fp)
            self._emit(out, "updated", alarm, alert, now, source_url)
        elif alarm.alert is not alert:
            alarm.alert = alert
            stored = alarm.stored_ends_at
            if alert.ends_at != stored and (
                    stored is None or alert.ends_at is None
                    or stored - self.refresh_margin <= now):
                alarm.stored_ends_at = alert.ends_at
                self._dirty.add(fp)
        if seen_at > alarm.last_seen:
            alarm.last_seen = seen_at

    def _closed_blocks(self, alert: Alert, seen_at: datetime.datetime,
                       from_poll: bool) -> tuple[bool, int]:
        """Whether a tombstone hides ``alert``; and the incarnation to fire with."""
        closed = self._closed.get(alert.fingerprint)
        if closed is None or alert.starts_at > closed.starts_at:
            return False, 1
        if alert.starts_at < closed.starts_at:
            return True, 0
        # The very occurrence that was resolved: only a poll that started after
        # the resolution may reopen it (Alertmanager lists it again).
        if from_poll and seen_at > closed.at:
            return False, closed.incarnation + 1
        return True, 0

    # -- poll ------------------------------------------------------------

    def _replica_trust(self, result: PollResult,
                       now: datetime.datetime) -> dict[str, bool]:
        """For each replica that answered: may its absence be trusted now?"""
        trust: dict[str, bool] = {}
        start_grace = self.started_at + self.grace_period
        for replica in result.replicas:
            if replica.alerts is None:
                continue
            state = self._replicas.get(replica.url)
            if state is None:
                state = self._replicas[replica.url] = _Replica()
            if replica.uptime is None:
                trust[replica.url] = False
                continue
            if state.uptime is None:
                state.grace_until = start_grace if now <= start_grace else now + self.grace_period
            elif state.uptime != replica.uptime:
                LOG.warning("Alertmanager %s restarted (uptime %s, was %s): no alarm "
                            "resolves by disappearance for %s s", replica.url,
                            replica.uptime, state.uptime, self.grace_period.total_seconds())
                state.grace_until = now + self.grace_period
            state.uptime = replica.uptime
            trust[replica.url] = (now >= start_grace and state.grace_until is not None
                                  and now >= state.grace_until)
        return trust

    def _intern(self, urls: frozenset[str]) -> frozenset[str]:
        return self._seen_sets.setdefault(urls, urls)

    def observe_poll(self, result: PollResult, now: datetime.datetime) -> list[Transition]:
        """Transitions implied by one poll cycle of every replica.

        :param result: the cycle; replicas with ``alerts=None`` never resolve anything
        :param now: the current time (tz-aware UTC)
        """
        out: list[Transition] = []
        if result.cluster != self.cluster:
            LOG.error("Poll of cluster %s given to the tracker of %s; ignored",
                      result.cluster, self.cluster)
            return out
        trust = self._replica_trust(result, now)
        answered = [r for r in result.replicas if r.alerts is not None]
        if not answered:
            return out
        configured = frozenset(r.url for r in result.replicas)
        unknown = frozenset(url for url in configured if not trust.get(url, False))
        seen_at = result.started_at
        merged, presence = self._merge(answered)

        for fp, alert in merged.items():
            seen_on = presence(fp)
            source_url = next(iter(seen_on)) if len(seen_on) == 1 else min(seen_on)
            alarm = self._alarms.get(fp)
            if self.suppressed_policy == "resolve" and _suppressed(alert):
                if alarm is not None and alarm.starts_at <= alert.starts_at:
                    reason = "silenced" if alarm.starts_at == alert.starts_at else "resolved"
                    self._resolve(out, alarm, now, reason, source_url,
                                  closed_at=seen_at if reason == "silenced" else None)
                    if reason == "resolved":
                        self._remember_closed(fp, alert.starts_at, seen_at)
                continue
            if alarm is None:
                blocked, incarnation = self._closed_blocks(alert, seen_at, True)
                if not blocked:
                    self._fire(out, alert, now, seen_at, seen_on, source_url, incarnation)
                continue
            if alert.starts_at == alarm.starts_at:
                self._observe_same(out, alarm, alert, now, seen_at, source_url)
            elif alert.starts_at > alarm.starts_at:
                self._resolve(out, alarm, now, "resolved", source_url, ends_at=alert.starts_at)
                blocked, incarnation = self._closed_blocks(alert, seen_at, True)
                if not blocked:
                    self._fire(out, alert, now, seen_at, seen_on, source_url, incarnation)
                continue
            # else: a stale replica still lists an older occurrence; the
            # fingerprint is present, the alarm stays as it is.
            keep = alarm.seen_on & unknown if alarm.seen_on else alarm.seen_on
            new_seen = self._intern(seen_on | keep) if keep else seen_on
            if new_seen != alarm.seen_on:
                alarm.seen_on = new_seen
                self._dirty.add(fp)

        invalid: set[str] = set()
        for replica in answered:
            invalid.update(replica.invalid)
        absent = self._alarms.keys() - merged.keys()
        if absent:
            self._absent(out, absent - invalid, answered, trust, configured, now, seen_at)
        self._gauge()
        return out

    def _merge(self, answered: Sequence[Any]) -> tuple[dict[str, Alert], Any]:
        """One observation per fingerprint, and a function giving where it was seen."""
        if len(answered) == 1:
            alerts = answered[0].alerts
            merged = {a.fingerprint: a for a in alerts}
            if len(merged) != len(alerts):
                merged = {}
                for alert in alerts:
                    other = merged.get(alert.fingerprint)
                    merged[alert.fingerprint] = alert if other is None else _better(other, alert)
            only = self._intern(frozenset((answered[0].url,)))
            return merged, lambda fp: only
        merged = {}
        where: dict[str, set[str]] = {}
        for replica in answered:
            for alert in replica.alerts:
                fp = alert.fingerprint
                other = merged.get(fp)
                if other is None:
                    merged[fp] = alert
                    where[fp] = {replica.url}
                else:
                    merged[fp] = _better(other, alert)
                    where[fp].add(replica.url)
        return merged, lambda fp: self._intern(frozenset(where[fp]))

    def _absent(self, out: list[Transition], absent: Iterable[str], answered: Sequence[Any],
                trust: dict[str, bool], configured: frozenset[str], now: datetime.datetime,
                seen_at: datetime.datetime) -> None:
        answered_urls = [r.url for r in answered]
        trusted = frozenset(u for u in answered_urls if trust.get(u))
        answered_set = frozenset(answered_urls)
        passed_limit = now - self.expire_delay
        for fp in absent:
            alarm = self._alarms[fp]
            if alarm.last_seen >= seen_at:
                continue  # seen (webhook) after this poll started
            ends_at = alarm.alert.ends_at
            if ends_at is not None and ends_at <= passed_limit:
                usable = answered_set  # its own endsAt passed: no grace needed
            else:
                usable = trusted
            if not usable:
                continue
            remaining = (alarm.seen_on - usable) & configured
            if remaining:
                if remaining != alarm.seen_on:
                    alarm.seen_on = self._intern(remaining)
                    self._dirty.add(fp)
                continue
            source_url = min(usable)
            self._resolve(out, alarm, now, "disappeared", source_url)

    def _remember_closed(self, fp: str, starts_at: datetime.datetime,
                         at: datetime.datetime) -> None:
        closed = self._closed.get(fp)
        if closed is None or closed.starts_at < starts_at:
            # incarnation 0: never announced, so a reopening is incarnation 1
            self._closed[fp] = _Closed(starts_at, at, 0)
            self._dirty.add(fp)

    # -- webhook ---------------------------------------------------------

    def observe_webhook(self, alerts: Sequence[Alert], now: datetime.datetime,
                        source_url: str) -> list[Transition]:
        """Transitions implied by one webhook delivery.

        Idempotent: duplicates (HA peers, retries) change nothing; deliveries
        are applied in startsAt order and an older occurrence never overrides a
        newer one.  A firing alert never reopens a resolved occurrence (only a
        poll can); a resolved alert never seen before is remembered, not announced.

        :param alerts: the delivery's alerts, already validated
        :param now: the current time (tz-aware UTC)
        :param source_url: the sender (the delivery's externalURL)
        """
        out: list[Transition] = []
        ordered = sorted(alerts, key=lambda a: (a.starts_at, a.status == "resolved"))
        for alert in ordered:
            fp = alert.fingerprint
            alarm = self._alarms.get(fp)
            if alert.status == "resolved":
                if alarm is not None and alarm.starts_at <= alert.starts_at:
                    self._resolve(out, alarm, now, "resolved", source_url,
                                  ends_at=alert.ends_at)
                self._remember_closed(fp, alert.starts_at, now)
                continue
            if alarm is None:
                blocked, _ = self._closed_blocks(alert, now, False)
                if not blocked:
                    self._fire(out, alert, now, now, frozenset(), source_url)
                continue
            if alert.starts_at < alarm.starts_at:
                continue
            if alert.starts_at > alarm.starts_at:
                self._resolve(out, alarm, now, "resolved", source_url, ends_at=alert.starts_at)
                blocked, _ = self._closed_blocks(alert, now, False)
                if not blocked:
                    self._fire(out, alert, now, now, frozenset(), source_url)
                continue
            # The webhook knows neither suppression nor endsAt of a firing alert:
            # keep what the poll said.
            old = alarm.alert
            merged = dataclasses.replace(
                alert, ends_at=old.ends_at, state=old.state, silenced_by=old.silenced_by,
                inhibited_by=old.inhibited_by, updated_at=old.updated_at,
                labels=old.labels if old.labels == alert.labels else alert.labels)
            self._observe_same(out, alarm, merged, now, now, source_url)
        self._gauge()
        return out

    # -- time ------------------------------------------------------------

    def expire(self, now: datetime.datetime) -> list[Transition]:
        """Resolve alarms whose endsAt passed with nobody confirming them (``expired``).

        An alarm seen by a poll after its endsAt (Alertmanager's clock is
        behind) is left to disappearance.  Also forgets resolved occurrences
        older than ``resolved_retention``.

        :param now: the current time (tz-aware UTC)
        """
        out: list[Transition] = []
        limit = now - self.expire_delay
        for alarm in list(self._alarms.values()):
            ends_at = alarm.alert.ends_at
            if ends_at is None:
                ends_at = alarm.last_seen + self.default_resolve_timeout
            if ends_at <= limit and alarm.last_seen < ends_at:
                self._resolve(out, alarm, now, "expired", alarm.source_url, ends_at=ends_at)
        forget = now - self.resolved_retention
        for fp in [fp for fp, c in self._closed.items() if c.at < forget]:
            del self._closed[fp]
            self._dirty.add(fp)
        self._gauge()
        return out

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
                "incarnation": alarm.incarnation,
                "sequence": alarm.sequence,
                "last_seen": alarm.last_seen.isoformat(),
                "seen_on": sorted(alarm.seen_on),
                "source_url": alarm.source_url,
                "alert": _alert_record(alarm.alert),
            }
        if closed is not None:
            record["closed"] = {"starts_at": closed.starts_at.isoformat(),
                                "at": closed.at.isoformat(),
                                "incarnation": closed.incarnation}
        return record

    def restore(self, records: Iterable[dict[str, Any]]) -> None:
        """Load the records of :meth:`export_changes` (at start, before any observation).

        Records of other clusters are ignored; a record that does not load is
        logged and skipped.

        :param records: what the outbox kept
        """
        loaded = 0
        for record in records:
            try:
                if record.get("cluster") != self.cluster:
                    continue
                if record.get("version") != _RECORD_VERSION:
                    raise ValueError(f"unknown version {record.get('version')!r}")
                fp = record["fingerprint"]
                data = record.get("alarm")
                if data is not None:
                    alert = _alert_from_record(fp, data["alert"])
                    starts_at = _time(data["starts_at"])
                    last_seen = _time(data["last_seen"])
                    assert starts_at is not None and last_seen is not None
                    self._alarms[fp] = _Alarm(
                        str(data["alarm_id"]), starts_at, int(data["incarnation"]),
                        int(data["sequence"]), alert, last_seen,
                        self._intern(frozenset(data.get("seen_on", ()))),
                        str(data.get("source_url", "")), alert.ends_at)
                closed = record.get("closed")
                if closed is not None:
                    closed_starts = _time(closed["starts_at"])
                    closed_at = _time(closed["at"])
                    assert closed_starts is not None and closed_at is not None
                    self._closed[fp] = _Closed(closed_starts, closed_at,
                                               int(closed.get("incarnation", 1)))
                loaded += 1
            except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as err:
                LOG.error("Skipping a state record that does not load (%s): %s",
                          record.get("key") if isinstance(record, dict) else "?", err)
        LOG.info("Restored %d state records of cluster %s (%d alarms firing)",
                 loaded, self.cluster, len(self._alarms))
        self._gauge()
