"""The poll rules: what one poll cycle of every replica says about each alarm.

Holders are the (replica, epoch) pairs whose latest answer listed an alarm;
a holder that answers in the same epoch without it dropped it, one that
restarted counts once the alarm's last seen endsAt has passed.  Copies with a
later startsAt join the occurrence, wait, or start the next one, by the same
evidence (docs/lifecycle.md, "The evidence, rule by rule").
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence

from oslo_log import log

from daemon.lifecycle.core import ZERO, TrackerCore
from daemon.lifecycle.state import (
    Alarm,
    Holder,
    max_end,
    representative,
    suppressed,
    uptime_time,
)
from daemon.lifecycle.transition import Transition
from daemon.model import Alert, PollResult, ReplicaPoll

__all__ = ["PollCycle", "PollRules"]

LOG = log.getLogger(__name__)

_TICK = datetime.timedelta(microseconds=1)
_MAX_LEAD = datetime.timedelta(days=1)


@dataclasses.dataclass(slots=True)
class PollCycle:
    """What one poll cycle says about replicas, for the absence rules."""

    now: datetime.datetime
    seen_at: datetime.datetime
    configured: frozenset[str]
    epochs: dict[str, str | None]  # replica -> uptime, for replicas that answered
    offsets: dict[str, datetime.timedelta]


class PollRules(TrackerCore):
    """The rules of :meth:`observe_poll` (mixed into the tracker)."""

    def _ends_passed(self, alarm: Alarm, url: str, cycle: PollCycle) -> bool:
        """Whether the alarm's last seen endsAt has passed in ``url``'s clock."""
        ends_at = alarm.alert.ends_at
        if ends_at is None:
            return False
        offset = cycle.offsets.get(url, ZERO)
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
        cycle = PollCycle(now, result.started_at, frozenset(r.url for r in result.replicas),
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
        return out

    def _learn_lead(self, alerts: Sequence[Alert] | None) -> None:
        """Sample how far ahead endsAt runs (one alert per answer is enough)."""
        for alert in alerts or ():
            if alert.ends_at is not None and alert.updated_at is not None:
                lead = alert.ends_at - alert.updated_at
                if ZERO < lead <= _MAX_LEAD and (self._lead is None or lead > self._lead):
                    self._lead = lead
                return

    def _observe_one(self, out: list[Transition], replica: ReplicaPoll,
                     cycle: PollCycle) -> set[str]:
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
                    and not (self.suppressed_policy == "resolve" and suppressed(alert)):
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
                      cycle: PollCycle) -> set[str]:
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

    def _set_holders(self, alarm: Alarm, holders: Iterable[Holder]) -> None:
        interned = self._holders(holders)
        if interned != alarm.seen_on:
            alarm.seen_on = interned
            self._dirty.add(alarm.alert.fingerprint)

    def _kept_holders(self, alarm: Alarm, cycle: PollCycle,
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
                        copies: list[tuple[str, Alert]], cycle: PollCycle) -> bool:
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
        if self.suppressed_policy == "resolve" and all(suppressed(a) for _, a in ours):
            url = min(u for u, _ in ours)
            source_now = cycle.now + cycle.offsets.get(url, ZERO)
            self._resolve(out, alarm, cycle.now, "silenced", url, ends_at=source_now,
                          closed_how="silenced", closed_until=source_now)
            return True
        best, latest = merge_copies([a for _, a in ours])
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

    def _sort_later(self, alarm: Alarm, ours: list[tuple[str, Alert]],
                    later: list[tuple[str, Alert]], cycle: PollCycle
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
               cycle: PollCycle, reopen: int) -> None:
        """Fire a new (or reopened) occurrence from the copies listed now."""
        if self.suppressed_policy == "resolve":
            live = [(u, a) for u, a in live if not suppressed(a)]
            if not live:
                return
        best, latest = merge_copies([a for _, a in live])
        listing = frozenset(u for u, _ in live)
        holders = self._holders((u, cycle.epochs.get(u)) for u in listing)
        if reopen > 1:
            closed = self._closed[fp]
            best = dataclasses.replace(best, starts_at=closed.starts_at)
        self._fire(out, best, cycle.now, cycle.seen_at, holders, min(listing),
                   reopen or 1, latest)
        self._alarms[fp].listed_at = cycle.seen_at

    def _absent(self, out: list[Transition], alarm: Alarm, cycle: PollCycle,
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
            # since before the alert began (or re-sent it by now).
            if not self._webhook_alarm_gone(alarm, cycle):
                return
        elif kept:
            self._set_holders(alarm, kept)
            return
        source_url = min(cycle.epochs)
        source_now = cycle.now + cycle.offsets.get(source_url, ZERO)
        closed_until = ((alarm.listed_at or alarm.last_seen)
                        + cycle.offsets.get(source_url, ZERO))
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

    def _webhook_alarm_gone(self, alarm: Alarm, cycle: PollCycle) -> bool:
        """Whether an alarm only ever delivered by webhook is gone from the cluster.

        Every replica must answer without it (the sender is not known), each
        either running since before the alert's ``startsAt`` (so it received
        the alert, and dropped it), or restarted since but running for longer
        than the endsAt lead seen in this cluster's polls: Prometheus sends
        every alert to every replica and re-sends a firing one well within
        that lead, so such a replica would list it again.  The delivery's own
        time is no evidence: Alertmanager retries a delivery for minutes, so
        one arriving now may describe a replica from before its restart.
        Until a poll has shown a lead, ``max_resend_interval`` (an upper
        bound on Prometheus's re-send period) stands in for it.
        """
        if set(cycle.epochs) != set(cycle.configured):
            return False
        for url, uptime in cycle.epochs.items():
            started = uptime_time(uptime)
            if started is None:
                return False
            if started <= alarm.alert.starts_at - self.expire_delay:
                # Running since before the alert began. startsAt is Prometheus's
                # clock and the uptime Alertmanager's: expire_delay is the margin.
                continue
            offset = cycle.offsets.get(url, ZERO)
            lead = self._lead or self.max_resend_interval
            if started + lead > cycle.now + offset - self.expire_delay:
                return False  # restarted since: it may still be re-sent
        return True


def merge_copies(copies: Sequence[Alert]) -> tuple[Alert, datetime.datetime]:
    """One occurrence's copies as Alertmanager merges them, and the latest ``startsAt``.

    The representative copy with the earliest ``startsAt`` and the latest ``endsAt``
    of all (Alertmanager keeps the earliest start while an alert is active).

    :param copies: at least one copy, as listed by the replicas this cycle
    """
    best = copies[0]
    for alert in copies[1:]:
        best = representative(best, alert)
    starts = min(a.starts_at for a in copies)
    ends = best.ends_at
    for alert in copies:
        ends = max_end(ends, alert.ends_at)
    if best.starts_at != starts or best.ends_at != ends:
        best = dataclasses.replace(best, starts_at=starts, ends_at=ends)
    return best, max(a.starts_at for a in copies)
