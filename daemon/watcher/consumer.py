"""The bridge's oslo.messaging endpoint: one alarm event at a time, acknowledged when done.

oslo.messaging's listener acknowledges a message when the endpoint returns
``HANDLED`` and puts it back on the queue for ``REQUEUE``. The endpoint returns
``HANDLED`` only once :meth:`Bridge.handle` finished: the audit triggered, or
refused for good, or nothing to do. While Watcher (or Keystone) cannot be
asked, it keeps the message unacknowledged and retries in place with
exponential backoff, so the events of an alarm keep their order; on shutdown
it returns ``REQUEUE`` and the broker keeps the message for the next start.
"""

from __future__ import annotations

import threading
from typing import Any

import oslo_messaging
from oslo_log import log

from daemon.exception import WatcherError
from daemon.watcher import telemetry
from daemon.watcher.bridge import Bridge

__all__ = ["PRIORITIES", "AlarmEndpoint"]

LOG = log.getLogger(__name__)

#: The priorities the relay may publish with ([publisher] severity_priority); INFO by default.
PRIORITIES = ("info", "warn", "error", "critical")
#: A still-waiting event is logged at WARNING again every this many attempts.
_REMIND_EVERY = 10


class AlarmEndpoint:
    """The listener's endpoint (one method per priority), retrying with backoff.

    :param bridge: what handles an event
    :param stop: set when the bridge shuts down (a waiting event is requeued)
    :param initial_delay: seconds before the first retry
    :param max_delay: longest wait between two retries
    """

    filter_rule = oslo_messaging.NotificationFilter(event_type=r"^alarm\.")

    def __init__(self, bridge: Bridge, stop: threading.Event, *, initial_delay: float,
                 max_delay: float) -> None:
        self.bridge = bridge
        self.stop = stop
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        for priority in PRIORITIES:
            setattr(self, priority, self._deliver)

    def _deliver(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> Any:
        return self.deliver(event_type, payload)

    def deliver(self, event_type: str, payload: Any) -> Any:
        """Handle one event until done or shutdown.

        :returns: ``NotificationResult.HANDLED`` (acknowledge) or ``REQUEUE`` (shutdown)
        """
        delay = self.initial_delay
        attempts = 0
        ident = _describe(payload)
        while True:
            try:
                outcome = self.bridge.handle(event_type, payload)
            except WatcherError as err:
                reason, problem = err.reason, str(err)
            except Exception as err:  # noqa: BLE001 - the task's top: never ack on a bug
                LOG.exception("Unexpected error handling %s %s; it stays unacknowledged",
                              event_type, ident)
                reason, problem = "internal", f"{type(err).__name__}: {err}"
            else:
                telemetry.EVENTS.labels(event_type=event_type, outcome=outcome).inc()
                if attempts:
                    LOG.info("%s %s handled after %d failed attempts", event_type, ident,
                             attempts)
                return oslo_messaging.NotificationResult.HANDLED
            attempts += 1
            telemetry.RETRIES.labels(reason=reason).inc()
            if attempts == 1 or attempts % _REMIND_EVERY == 0:
                LOG.warning("%s %s waits (attempt %d): %s; retrying in %.1fs, the event "
                            "stays unacknowledged", event_type, ident, attempts, problem,
                            delay)
            else:
                LOG.debug("%s %s: attempt %d failed: %s", event_type, ident, attempts,
                          problem)
            if self.stop.wait(delay):
                LOG.info("Shutting down: %s %s goes back to the queue", event_type, ident)
                return oslo_messaging.NotificationResult.REQUEUE
            delay = min(delay * 2, self.max_delay)


def _describe(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"of alarm {payload.get('alarm_id')} (event {payload.get('event_id')})"
    return "(not an object)"
