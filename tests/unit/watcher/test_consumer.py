"""The listener endpoint: acknowledged when done, retried with backoff, requeued on shutdown."""

from __future__ import annotations

import threading
import time

import oslo_messaging

from daemon.exception import WatcherError
from daemon.watcher.consumer import PRIORITIES, AlarmEndpoint


class FlakyBridge:
    """Fails ``failures`` times with a recoverable error, then handles."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or WatcherError(problem="cannot reach Watcher", reason="unreachable")
        self.calls: list[float] = []

    def handle(self, event_type, payload):
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error
        return "applied"


def test_handled_after_retries_with_growing_delays(caplog):
    bridge = FlakyBridge(3)
    endpoint = AlarmEndpoint(bridge, threading.Event(), initial_delay=0.05, max_delay=0.12)
    result = endpoint.info({}, "alarm-relay:h", "alarm.firing", {"alarm_id": "a"}, {})
    assert result == oslo_messaging.NotificationResult.HANDLED
    gaps = [b - a for a, b in zip(bridge.calls, bridge.calls[1:], strict=False)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.12 and gaps[2] < 0.5
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "stays unacknowledged" in warnings[0]


def test_shutdown_requeues_a_waiting_event():
    stop = threading.Event()
    endpoint = AlarmEndpoint(FlakyBridge(10**6), stop, initial_delay=5.0, max_delay=5.0)
    threading.Timer(0.1, stop.set).start()
    began = time.monotonic()
    result = endpoint.error({}, "p", "alarm.firing", {}, {})
    assert result == oslo_messaging.NotificationResult.REQUEUE
    assert time.monotonic() - began < 2


def test_an_unexpected_error_is_never_acknowledged_blindly():
    bridge = FlakyBridge(1, RuntimeError("bug"))
    endpoint = AlarmEndpoint(bridge, threading.Event(), initial_delay=0.01, max_delay=0.01)
    assert endpoint.warn({}, "p", "alarm.firing", {}, {}) == \
        oslo_messaging.NotificationResult.HANDLED
    assert len(bridge.calls) == 2


def test_every_priority_the_relay_may_use_is_consumed():
    endpoint = AlarmEndpoint(FlakyBridge(0), threading.Event(), initial_delay=1, max_delay=1)
    assert set(PRIORITIES) == {"info", "warn", "error", "critical"}
    assert all(callable(getattr(endpoint, p)) for p in PRIORITIES)
    assert endpoint.filter_rule.match({}, "alarm-relay:h", "alarm.firing", {}, {})
    assert not endpoint.filter_rule.match({}, "nova:h", "compute.instance.create.end", {}, {})
