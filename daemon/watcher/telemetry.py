"""The Watcher bridge's metrics, served on its own /metrics (Prometheus text format).

Names follow the relay's conventions (``alarm_relay_<noun>_total``); a retried
call is counted as a retry, never as a failure or a drop.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["COOLDOWN_SKIPS", "EVENTS", "FAILURES", "REGISTRY", "RETRIES", "TRIGGERS"]

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "alarm_relay_watcher_events_total",
    "Alarm events the bridge handled, by event type and outcome (applied: rules were "
    "evaluated; duplicate: event_id seen before; stale: an older sequence of its alarm; "
    "invalid: not an alarm event the bridge understands).",
    ["event_type", "outcome"], registry=REGISTRY)
TRIGGERS = Counter(
    "alarm_relay_watcher_triggers_total",
    "Watcher EVENT audits triggered (webhook accepted), by rule.",
    ["rule"], registry=REGISTRY)
FAILURES = Counter(
    "alarm_relay_watcher_failures_total",
    "Permanent refusals: no audit for this alarm and rule (the event is acknowledged), "
    "by reason (template_not_found, refused, parameters).",
    ["reason"], registry=REGISTRY)
COOLDOWN_SKIPS = Counter(
    "alarm_relay_watcher_cooldown_skips_total",
    "Alarms that started no audit because their resource and template were in cooldown, "
    "by rule.",
    ["rule"], registry=REGISTRY)
RETRIES = Counter(
    "alarm_relay_watcher_retries_total",
    "Attempts that failed and will be retried (the event stays unacknowledged), by reason "
    "(unreachable, server_error, unauthorized, forbidden, catalog).",
    ["reason"], registry=REGISTRY)
