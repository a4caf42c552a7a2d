"""The relay's own metrics, served on /metrics in Prometheus text format.

Every stage counts into the metrics defined here, so names stay in one place:
``alarm_relay_<noun>_total`` counters with a ``stage`` label where it helps.
A retried publish is not a drop.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "ALERTS_INVALID",
    "ALERTS_TRACKED",
    "ALERTS_UNMATCHED",
    "CLOCK_OFFSET",
    "EVENTS_PUBLISHED",
    "EVENTS_TRUNCATED",
    "FENCED_WRITES",
    "LOOP_TASKS",
    "OUTBOX_DEPTH",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_FULL",
    "OWNED_UNITS",
    "OWNERSHIP_CHANGES",
    "POLL_DURATION",
    "POLL_WAIT",
    "POLLS",
    "PUBLISH_FAILURES",
    "REGISTRY",
    "RESOLVER_DURATION",
    "RESOLVER_FAILURES",
    "TRANSITIONS",
    "WEBHOOK_REQUESTS",
]

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter(
    "alarm_relay_polls_total", "Polls of an Alertmanager replica, by outcome.",
    ["url", "outcome"], registry=REGISTRY)
POLL_DURATION = Histogram(
    "alarm_relay_poll_duration_seconds", "Duration of one poll of one replica.",
    ["url"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
POLL_WAIT = Counter(
    "alarm_relay_poll_wait_seconds_total",
    "Time polls waited for the outbox backlog to shrink ([publisher] pause_polls_above).",
    ["cluster"], registry=REGISTRY)
CLOCK_OFFSET = Gauge(
    "alarm_relay_clock_offset_seconds",
    "Clock of an Alertmanager replica minus the relay's, from its HTTP Date header "
    "(resolution about one second).",
    ["url"], registry=REGISTRY)
ALERTS_INVALID = Counter(
    "alarm_relay_alerts_invalid_total", "Alerts rejected as invalid, by stage.",
    ["stage"], registry=REGISTRY)
ALERTS_TRACKED = Gauge(
    "alarm_relay_alerts_tracked", "Alarms currently firing in the lifecycle tracker.",
    registry=REGISTRY)
TRANSITIONS = Counter(
    "alarm_relay_transitions_total", "Lifecycle transitions, by kind and reason.",
    ["kind", "reason"], registry=REGISTRY)
ALERTS_UNMATCHED = Counter(
    "alarm_relay_alerts_unmatched_total", "Alerts no mapping rule matched, by alertname.",
    ["alertname"], registry=REGISTRY)
RESOLVER_DURATION = Histogram(
    "alarm_relay_resolver_duration_seconds", "Duration of one resource resolution.",
    ["backend"], registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RESOLVER_FAILURES = Counter(
    "alarm_relay_resolver_failures_total", "Resolutions that failed, by backend.",
    ["backend"], registry=REGISTRY)
EVENTS_PUBLISHED = Counter(
    "alarm_relay_events_published_total", "Events the broker confirmed, by event type.",
    ["event_type"], registry=REGISTRY)
PUBLISH_FAILURES = Counter(
    "alarm_relay_publish_failures_total",
    "Publish attempts that failed (the event stays in the outbox and is retried).",
    ["recoverable"], registry=REGISTRY)
OUTBOX_DEPTH = Gauge(
    "alarm_relay_outbox_depth", "Events stored and not yet confirmed by the broker.",
    registry=REGISTRY)
OUTBOX_OLDEST_AGE = Gauge(
    "alarm_relay_outbox_oldest_age_seconds", "Age of the oldest unsent event.",
    registry=REGISTRY)
EVENTS_TRUNCATED = Counter(
    "alarm_relay_events_truncated_total",
    "Events whose payload was cut to [publisher] max_event_bytes, by stage "
    "(put: when stored; read: stored larger by an earlier relay).",
    ["stage"], registry=REGISTRY)
OUTBOX_FULL = Counter(
    "alarm_relay_outbox_full_total",
    "Times new transitions had to wait because the outbox was full.",
    registry=REGISTRY)
WEBHOOK_REQUESTS = Counter(
    "alarm_relay_webhook_requests_total", "Webhook deliveries, by HTTP status code.",
    ["code"], registry=REGISTRY)
OWNED_UNITS = Gauge(
    "alarm_relay_owned_units",
    "Ownership units (Alertmanager clusters or their partitions) this relay owns now.",
    registry=REGISTRY)
OWNERSHIP_CHANGES = Counter(
    "alarm_relay_ownership_changes_total",
    "Units this relay took or gave up, by change (taken, released: rebalanced or "
    "stopping, fenced: a write refused because another relay claimed it).",
    ["change"], registry=REGISTRY)
FENCED_WRITES = Counter(
    "alarm_relay_fenced_writes_total",
    "Writes refused because another relay claimed the unit since (this relay then "
    "steps down from it; nothing was stored).",
    registry=REGISTRY)


def _loop_tasks() -> float:
    """Tasks of the event loop running in this thread (NaN outside one)."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return float("nan")


LOOP_TASKS = Gauge(
    "alarm_relay_event_loop_tasks",
    "Tasks of the daemon's event loop when /metrics was scraped (a leak shows as growth).",
    registry=REGISTRY)
LOOP_TASKS.set_function(_loop_tasks)
