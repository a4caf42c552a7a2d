"""The webhook rules: what one Alertmanager webhook delivery says about each alarm.

A delivery is one replica's view at one moment, maybe long ago (Alertmanager
retries): firing copies join an alarm only when the delivery shows it, a
resolved copy ends the occurrence it overlaps, and nothing is ever reopened
from a delivery.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

from daemon.lifecycle.core import TrackerCore
from daemon.lifecycle.state import ClosedOccurrence
from daemon.lifecycle.transition import Transition
from daemon.model import Alert

__all__ = ["WebhookRules"]


class WebhookRules(TrackerCore):
    """The rules of :meth:`observe_webhook` (mixed into the tracker)."""

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
        return out

    def _remember_closed(self, fp: str, alert: Alert, at: datetime.datetime) -> None:
        """Remember an occurrence that ended without being announced."""
        closed = self._closed.get(fp)
        assert alert.ends_at is not None
        if closed is None or closed.starts_at < alert.starts_at:
            # incarnation 0: never announced, so a reopening is incarnation 1
            self._closed[fp] = ClosedOccurrence(
                alert.starts_at, max(alert.ends_at, alert.starts_at), at, 0, "resolved",
                alert.ends_at)
            self._dirty.add(fp)

