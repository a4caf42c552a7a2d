"""Send one alarm event as an oslo.messaging notification, and say if it failed.

``oslo_messaging.Notifier.info()`` logs and drops every failure, so it cannot
be used for an outbox that removes an event only once the broker confirmed it.
This module builds the same message a ``Notifier`` builds (see
``oslo_messaging/notify/notifier.py`` ``Notifier._notify`` and
``notify/messaging.py`` ``MessagingDriver.notify``) and hands it to the
transport's notification path, which raises on failure:

- message: ``message_id`` (the event's ``event_id``, so a consumer sees it as
  ``metadata['message_id']``), ``publisher_id`` ``alarm-relay:<host>``,
  ``event_type``, ``priority`` (upper case, like ``Notifier``), ``payload``,
  ``timestamp`` (``str(utcnow())`` like ``Notifier``);
- context: empty;
- target: topic ``<topic>.<priority>`` on the control exchange, for every
  topic in ``[oslo_messaging_notifications] topics``;
- format 2.0 envelope (``messagingv2``), or 1.0 when the configured driver is
  ``messaging``;
- ``retry`` = ``[publisher] send_retry``, never -1 (which blocks forever
  while the broker is down).

With the rabbit driver a send returns once the broker confirmed it (publisher
confirms), so a normal return means "delivered to the exchange".

All methods block; the dispatcher calls :meth:`Notifier.publish` from its
publishing threads (thread-safe: the transport keeps a pool of connections).
"""

from __future__ import annotations

import socket

import oslo_messaging
from oslo_config import cfg
from oslo_log import log
from oslo_serialization import jsonutils
from oslo_utils import timeutils

from daemon import exception
from daemon.pipeline.event import AlarmEvent

__all__ = ["Notifier", "PRIORITIES"]

LOG = log.getLogger(__name__)

#: Priorities a notification listener dispatches (oslo_messaging.notify.dispatcher).
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")

_DEFAULT_PRIORITY = "INFO"

# Failures known to be about the broker or the network.
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    oslo_messaging.MessageDeliveryFailure, oslo_messaging.MessageUndeliverable,
    oslo_messaging.MessagingTimeout, ConnectionError, TimeoutError, socket.error)


class Notifier:
    """Publishes :class:`AlarmEvent` objects on the notification bus.

    :param conf: the relay's configuration (``[DEFAULT] transport_url`` and
        ``host``, ``[oslo_messaging_notifications]``, ``[publisher]``)
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf
        self._transport: oslo_messaging.Transport | None = None
        self._topics: tuple[str, ...] = ()
        self._targets: dict[str, tuple[oslo_messaging.Target, ...]] = {}
        self._priorities: dict[str, str] = {}
        self._version = 2.0
        self._retry = 0
        self._secrets: tuple[str, ...] = ()
        self.publisher_id = ""

    def open(self) -> None:
        """Build the notification transport from the configuration.

        Connections are made lazily on the first send.

        :raises ConfigError: the notification driver, topics or
            ``[publisher] severity_priority`` cannot work
        :raises oslo_messaging.MessagingException: the transport URL is invalid
        """
        if self._transport is not None:
            return
        conf = self._conf
        transport = oslo_messaging.get_notification_transport(conf)
        try:
            group = conf.oslo_messaging_notifications
            self._version = _envelope_version(group.driver)
            self._topics = tuple(group.topics)
            if not self._topics:
                raise exception.ConfigError(
                    group="oslo_messaging_notifications", option="topics",
                    problem="at least one topic is needed")
            self._priorities = _priority_map(conf.publisher.severity_priority)
            self._retry = conf.publisher.send_retry
            if self._retry is None or self._retry < 0:
                raise exception.ConfigError(
                    group="publisher", option="send_retry",
                    problem="must be 0 or more (-1 can block forever)")
            self.publisher_id = f"alarm-relay:{conf.host}"
            url = group.transport_url or conf.transport_url
            self._secrets = _url_secrets(conf, url)
            if _url_scheme(conf, url) == "kafka":
                LOG.warning("the kafka driver returns before Kafka confirmed a message "
                            "(oslo.messaging hands it to librdkafka's queue), so the "
                            "outbox cannot guarantee delivery; see docs/durability.md")
            self._targets = {
                priority: tuple(oslo_messaging.Target(topic=f"{topic}.{priority.lower()}")
                                for topic in self._topics)
                for priority in {_DEFAULT_PRIORITY, *self._priorities.values()}}
        except BaseException:
            transport.cleanup()
            raise
        self._transport = transport
        LOG.info("publishing to topics %s (exchange %s, format %s, priority %s%s)",
                 ",".join(self._topics), conf.control_exchange, self._version,
                 _DEFAULT_PRIORITY, ", by severity" if self._priorities else "")

    def close(self) -> None:
        """Close the transport's connections; idempotent."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.cleanup()

    def priority(self, event: AlarmEvent) -> str:
        """The notification priority of ``event`` (upper case, as ``Notifier`` sends it)."""
        return self._priorities.get(event.severity, _DEFAULT_PRIORITY)

    def publish(self, event: AlarmEvent) -> None:
        """Send ``event`` to every topic and return once the broker confirmed it.

        :param event: the event to send
        :raises PublishError: not confirmed; ``recoverable`` says whether
            sending it again may work. A failure after some topics succeeded
            means those get it again on retry (same ``message_id``).
        """
        transport = self._transport
        if transport is None:
            raise exception.PublishError(problem="notifier is not open",
                                         recoverable=True)
        priority = self.priority(event)
        for target in self._targets[priority]:
            # The driver adds keys to the message it is given: one dict per send.
            message = {
                "message_id": event.event_id,
                "publisher_id": self.publisher_id,
                "event_type": event.event_type,
                "priority": priority,
                "payload": event.payload,
                "timestamp": str(timeutils.utcnow()),
            }
            try:
                transport._send_notification(target, {}, message,
                                             version=self._version,
                                             retry=self._retry)
            except Exception as err:
                # Unknown failures are retried too: the event is never dropped.
                raise exception.PublishError(
                    problem=self._describe(target, err),
                    recoverable=not _is_permanent(err, message)) from err

    def scrub(self, text: str) -> str:
        """``text`` with the transport URL's passwords replaced by ``***``.

        Works before :meth:`open` succeeded too (the passwords are read from
        the configuration then).
        """
        secrets = self._secrets
        if not secrets:
            conf = self._conf
            url = conf.oslo_messaging_notifications.transport_url or conf.transport_url
            secrets = _url_secrets(conf, url)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def _describe(self, target: oslo_messaging.Target, err: BaseException) -> str:
        verb = "send" if isinstance(err, _TRANSIENT_ERRORS) else "error sending"
        return self.scrub(f"{verb} to {target.topic}: {type(err).__name__}: {err}")

    def __enter__(self) -> Notifier:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_permanent(err: Exception, message: dict) -> bool:
    """Whether sending ``message`` again cannot fix ``err``."""
    if isinstance(err, oslo_messaging.InvalidTarget):
        return True
    if isinstance(err, (TypeError, ValueError)) and not isinstance(err, _TRANSIENT_ERRORS):
        # A payload JSON cannot encode fails the same way every time; a
        # ValueError from a closed socket does not.
        try:
            jsonutils.dumps(message)
        except (TypeError, ValueError):
            return True
    return False


def _envelope_version(drivers: list[str]) -> float:
    names = [d.strip().lower() for d in drivers or ()]
    if "messagingv2" in names:
        return 2.0
    if "messaging" in names:
        return 1.0
    raise exception.ConfigError(
        group="oslo_messaging_notifications", option="driver",
        problem="alarm-relay publishes through 'messagingv2' (or 'messaging'); "
                "%r would drop every event" % (",".join(names) or "(empty)"))


def _priority_map(mapping: dict[str, str] | None) -> dict[str, str]:
    result = {}
    for severity, priority in (mapping or {}).items():
        if priority.lower() not in PRIORITIES:
            raise exception.ConfigError(
                group="publisher", option="severity_priority",
                problem=f"{priority!r} is not a notification priority "
                        f"(one of {', '.join(PRIORITIES)})")
        result[severity.strip().lower()] = priority.strip().upper()
    return result


def _url_scheme(conf: cfg.ConfigOpts, url: str | None) -> str:
    """The transport driver a URL names (``rabbit``, ``kafka``, ...)."""
    try:
        return oslo_messaging.TransportURL.parse(conf, url).transport or ""
    except Exception:  # the transport already parsed it
        return ""


def _url_secrets(conf: cfg.ConfigOpts, url: str | None) -> tuple[str, ...]:
    """Passwords in the transport URL, to keep them out of error messages."""
    if not url:
        return ()
    try:
        parsed = oslo_messaging.TransportURL.parse(conf, url)
    except Exception:  # the transport already parsed it; be safe anyway
        return ()
    return tuple(h.password for h in parsed.hosts if h.password)
