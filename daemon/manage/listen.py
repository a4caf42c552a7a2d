"""``alarm-relay-manage listen``: print the alarm events on the bus, one JSON line each.

It subscribes with oslo.messaging's notification listener, exactly as any
consumer would (docs/consumers.md), using the relay's own configuration
(``[DEFAULT] transport_url``, ``control_exchange``, ``[oslo_messaging_rabbit]``),
and prints each notification as one JSON object::

    {"priority": "info", "publisher_id": "alarm-relay:host", "event_type": "alarm.firing",
     "message_id": "...", "timestamp": "...", "payload": {...}}

A message is acknowledged only after its line was written and flushed; if
writing fails the message goes back to the queue.

Without ``--pool`` it reads the topic's default queue (``<topic>.<priority>``)
and so *shares* events with every other consumer that has no pool; with
``--pool NAME`` it gets its own copy of every event in the queue ``NAME``
(which stays on the broker after exit: delete it when done).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any, TextIO

from oslo_config import cfg

__all__ = ["add_parser", "run_listen"]

_PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


def add_parser(subparsers: Any) -> None:
    """Add the ``listen`` sub-command.

    :param subparsers: the argparse sub-parsers of ``alarm-relay-manage``
    """
    parser = subparsers.add_parser(
        "listen", help="Print the alarm events on the bus, one JSON line each.",
        description="Subscribe to the relay's notification topic with oslo.messaging's "
                    "notification listener and print every event as one JSON line, "
                    "acknowledging it after printing. Stop with Ctrl-C or SIGTERM.")
    parser.add_argument("--topic", default=None,
                        help="topic to listen on (default: the first of "
                             "[oslo_messaging_notifications] topics, 'alarms')")
    parser.add_argument("--pool", default=None,
                        help="listener pool, i.e. the queue name: with a pool of its own "
                             "the listener gets a copy of every event; without, it shares "
                             "the topic's default queue with other consumers")
    parser.add_argument("--count", type=_positive, default=None,
                        help="exit 0 after printing this many events")
    parser.add_argument("--event-type", default=None, metavar="REGEX",
                        help="print only events whose event_type matches REGEX "
                             "(others are acknowledged and skipped)")
    parser.set_defaults(func=run_listen)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class _Printer:
    """The listener's endpoint: one method per priority, each prints a line."""

    def __init__(self, out: TextIO, count: int | None, done: threading.Event) -> None:
        self._out = out
        self._left = count
        self._done = done
        self._lock = threading.Lock()
        for priority in _PRIORITIES:
            setattr(self, priority, self._printer(priority))

    def _printer(self, priority: str):
        def endpoint(ctxt: dict, publisher_id: str, event_type: str, payload: Any,
                     metadata: dict) -> Any:
            return self.print(priority, publisher_id, event_type, payload, metadata)
        return endpoint

    def print(self, priority: str, publisher_id: str, event_type: str, payload: Any,
              metadata: dict) -> Any:
        """Write one line; the return value tells the listener to ack or requeue."""
        import oslo_messaging

        with self._lock:
            if self._done.is_set():
                # Past --count: back to the queue for the next consumer.
                return oslo_messaging.NotificationResult.REQUEUE
            line = json.dumps({
                "priority": priority, "publisher_id": publisher_id,
                "event_type": event_type, "message_id": metadata.get("message_id"),
                "timestamp": metadata.get("timestamp"), "payload": payload,
            }, sort_keys=True, separators=(",", ":"))
            # A failed write raises: the listener requeues the message.
            self._out.write(line + "\n")
            self._out.flush()
            if self._left is not None:
                self._left -= 1
                if self._left <= 0:
                    self._done.set()
            return oslo_messaging.NotificationResult.HANDLED


def run_listen(conf: cfg.ConfigOpts, out: TextIO | None = None) -> int:
    """Listen until interrupted (or ``--count`` events printed).

    :param conf: the parsed configuration; ``conf.command`` holds the arguments
    :param out: where the lines go (standard output by default)
    :returns: the exit code: 0 when stopped, 1 when the transport cannot be built
    """
    import oslo_messaging  # after daemon/__init__ chose the oslo.service backend

    args = conf.command
    out = out or sys.stdout
    topic = args.topic or (list(conf.oslo_messaging_notifications.topics) or ["alarms"])[0]
    try:
        transport = oslo_messaging.get_notification_transport(conf)
    except oslo_messaging.MessagingException as err:
        print(f"alarm-relay-manage listen: cannot use [DEFAULT] transport_url: "
              f"{type(err).__name__}", file=sys.stderr)
        return 1
    done = threading.Event()
    printer = _Printer(out, args.count, done)
    pool = args.pool
    if pool is None:
        print(f"listening on {topic}.* without a pool: events are shared with other "
              f"consumers of the default queue (use --pool NAME for a copy of each)",
              file=sys.stderr)
    event_filter = (oslo_messaging.NotificationFilter(event_type=args.event_type)
                    if args.event_type else None)
    if event_filter is not None:
        printer.filter_rule = event_filter
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [printer],
        executor="threading", pool=pool, allow_requeue=True)

    previous = {sig: signal.signal(sig, lambda *_: done.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # One worker thread: lines come out in the order the broker delivers them.
        listener.start(override_pool_size=1)
        try:
            while not done.wait(0.5):
                pass
        finally:
            listener.stop()
            listener.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        transport.cleanup()
    return 0
