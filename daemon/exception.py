"""The one error tree of alarm-relay.

Every failure the daemon reports is an :class:`AlarmRelayError` subclass with a
``msg_fmt``; library errors are wrapped at the boundary (``raise ... from err``)
so callers never need to know which library failed.
"""

from __future__ import annotations


class AlarmRelayError(Exception):
    """Base class: ``msg_fmt`` is formatted with the keyword arguments."""

    msg_fmt = "An unknown error occurred"

    def __init__(self, message: str | None = None, **kwargs: object) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                message = self.msg_fmt
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(AlarmRelayError):
    """A configuration value that cannot work; start-up stops on it."""

    msg_fmt = "[%(group)s] %(option)s: %(problem)s"


class InvalidAlert(AlarmRelayError):
    """An alert or webhook body that does not parse; it is counted and skipped."""

    msg_fmt = "invalid alert at %(where)s: %(problem)s"


class MappingError(AlarmRelayError):
    """A mapping file that does not load; the message names file, line and rule."""

    msg_fmt = "%(where)s: %(problem)s"


class SourceError(AlarmRelayError):
    """An Alertmanager poll that failed; it never resolves anything."""

    msg_fmt = "alertmanager %(url)s: %(problem)s"


class DatasourceError(AlarmRelayError):
    """A metrics backend (Aetos, Prometheus, Keystone) failed; the message says how to fix it."""

    msg_fmt = "%(backend)s: %(problem)s"


class PublishError(AlarmRelayError):
    """A notification the broker did not confirm.

    ``recoverable`` says whether sending the same event again may succeed.
    """

    msg_fmt = "publish failed: %(problem)s"

    def __init__(self, message: str | None = None, *, recoverable: bool = True,
                 **kwargs: object) -> None:
        super().__init__(message, **kwargs)
        self.recoverable = recoverable


class OutboxFull(AlarmRelayError):
    """The outbox reached its bound; new transitions wait instead of being dropped."""

    msg_fmt = "outbox full (%(depth)d events pending, limit %(limit)d)"


class WatcherRulesError(AlarmRelayError):
    """A Watcher bridge rules file that does not load; the message names file, line and rule."""

    msg_fmt = "%(where)s: %(problem)s"


class WatcherError(AlarmRelayError):
    """Watcher (or Keystone, on the way to it) did not do what the bridge asked.

    ``recoverable`` says whether asking again later may succeed (Watcher down,
    5xx, credentials or catalog to fix): the event then stays unacknowledged.
    A permanent refusal (a 4xx about this request: template not found,
    parameters refused, audit state) is not recoverable. ``reason`` is a short
    code for metrics and logs.
    """

    msg_fmt = "watcher: %(problem)s"

    def __init__(self, message: str | None = None, *, recoverable: bool = True,
                 reason: str = "error", **kwargs: object) -> None:
        super().__init__(message, **kwargs)
        self.recoverable = recoverable
        self.reason = reason


class StoreError(AlarmRelayError):
    """The store's database failed or cannot be reached; nothing was written.

    The webhook answers 503 (Alertmanager retries), a poll's transitions wait
    for the next poll, and nothing is resolved for it.
    """

    msg_fmt = "store: %(problem)s"


class SchemaMismatch(AlarmRelayError):
    """The shared database's schema is not the one this relay needs; it does not start."""

    msg_fmt = ("database schema is at %(current)s, this relay needs %(head)s: "
               "run 'alarm-relay-manage db sync'")


class FencedWrite(AlarmRelayError):
    """A write fenced with an epoch that is no longer the unit's: another relay owns it.

    Nothing was written; the relay must step down from ``unit``.
    """

    msg_fmt = "unit %(unit)s: write fenced with epoch %(fence)s, the unit is at epoch %(epoch)s"

    def __init__(self, message: str | None = None, *, unit: str, fence: int,
                 epoch: int, **kwargs: object) -> None:
        super().__init__(message, unit=unit, fence=fence, epoch=epoch, **kwargs)
        self.unit, self.fence, self.epoch = unit, fence, epoch


class StoreInUse(AlarmRelayError):
    """Another relay without coordination already uses this database; this one does not start."""

    msg_fmt = ("another relay (%(holder)s) already uses database %(where)s; several relays "
               "on one database need [coordination] backend_url")


class CoordinationError(AlarmRelayError):
    """The tooz coordination backend did not answer; the units owned stay owned (fencing)."""

    msg_fmt = "coordination backend: %(problem)s"
