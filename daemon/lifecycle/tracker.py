"""The lifecycle tracker of one Alertmanager cluster: the one place that decides
firing, updated and resolved.

Pure logic, no I/O: every method takes ``now`` (tz-aware UTC, the relay's clock)
from the caller, and the state leaves as records the store keeps.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from oslo_log import log

from daemon.lifecycle import state
from daemon.lifecycle.poll import PollRules
from daemon.lifecycle.transition import Transition
from daemon.lifecycle.webhook import WebhookRules

__all__ = ["LifecycleTracker"]

LOG = log.getLogger(__name__)


class LifecycleTracker(PollRules, WebhookRules):
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
    :param max_resend_interval: seconds within which Prometheus re-sends a
        still-firing alert to a replica that lost it; stands in for the
        endsAt lead until a poll of the cluster has shown one
    """

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
                   refresh_margin=lc.state_refresh_margin,
                   max_resend_interval=lc.max_resend_interval)

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

    def changed_keys(self) -> list[tuple[str, str]]:
        """``(key, fingerprint)`` of every record changed since its last export.

        Building no record: a caller that stores a large observation in
        several transactions exports each one's records only when it stores
        them (:meth:`export_changes` with ``fingerprints``), so that tens of
        thousands of records are not all alive, and walked by the collector,
        while the first transactions are written.
        """
        key = self.state_key
        return [(key(fp), fp) for fp in self._dirty]

    def export_changes(self, fingerprints: Iterable[str] | None = None,
                       ) -> list[tuple[str, dict[str, Any] | None]]:
        """State records changed since their last export; None means delete.

        Records are JSON-able dicts with ``key`` = ``<cluster>/<fingerprint>``
        (shape: :func:`daemon.lifecycle.state.encode`).

        :param fingerprints: export only these (those not changed, or
            exported already, are skipped); None: every changed record
        """
        dirty = self._dirty
        if fingerprints is None:
            chosen = list(dirty)
            dirty.clear()
        else:
            chosen = []
            for fp in fingerprints:
                if fp in dirty:  # each record once, even if asked for twice
                    dirty.discard(fp)
                    chosen.append(fp)
        changes: list[tuple[str, dict[str, Any] | None]] = []
        for fp in chosen:
            key = self.state_key(fp)
            alarm = self._alarms.get(fp)
            alarm_id = None
            if alarm is not None:
                alarm.stored_ends_at = alarm.alert.ends_at
                alarm_id = self._alarm_id(alarm)
            changes.append((key, state.encode(key, self.cluster, fp, alarm,
                                              self._closed.get(fp), alarm_id)))
        if not dirty:
            # Every transition's id has gone into its record: derived again if needed.
            self._ids.clear()
        return changes

    def restore(self, records: Iterable[dict[str, Any]]) -> None:
        """Load the records of :meth:`export_changes` (at start, before any observation).

        Records of other clusters are ignored; a record that does not load is
        logged and skipped.  Version 1 records (earlier releases) load too:
        their replicas' epochs are unknown, so those claims stand until the
        alarm's endsAt passes or the replica lists it again.

        :param records: what the store kept
        """
        loaded = 0
        for record in records:
            try:
                if record.get("cluster") != self.cluster:
                    continue
                version = record.get("version")
                if version not in (1, state.RECORD_VERSION):
                    raise ValueError(f"unknown version {version!r}")
                fp = record["fingerprint"]
                if record.get("alarm") is not None:
                    self._alarms[fp] = state.decode_alarm(fp, record["alarm"], self._holders,
                                                         self.cluster)
                if record.get("closed") is not None:
                    self._closed[fp] = state.decode_closed(record["closed"], self._holders)
                loaded += 1
            except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as err:
                LOG.error("Skipping a state record that does not load (%s): %s",
                          record.get("key") if isinstance(record, dict) else "?", err)
        LOG.info("Restored %d state records of cluster %s (%d alarms firing)",
                 loaded, self.cluster, len(self._alarms))
