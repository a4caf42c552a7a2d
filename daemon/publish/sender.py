"""Where the dispatcher's jobs are sent from: threads of this process, or a child process.

A *job* is a run of events one sender sends one after the other (the whole
lane of an alarm, or as much as fits, then the next alarm's); the dispatcher
keeps at most ``threads`` jobs in flight and never two of one alarm, which
is what keeps each alarm's events in order. A sender only sends:

- :class:`ThreadSender` calls :meth:`Notifier.publish` in a thread pool of
  this process (``[publisher] publish_processes`` 0);
- :class:`daemon.publish.process.ProcessSender` hands the job to child
  processes that each have a notifier and threads of their own, so that
  publishing does not share this interpreter's lock with the intake.

Both give the same answer for a job: how many of its events the broker
confirmed, in order, and the failure that stopped it (None if none did).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Protocol

from daemon.pipeline.event import AlarmEvent
from daemon.publish.notifier import Notifier

__all__ = ["JobResult", "Sender", "ThreadSender", "send_job"]

#: (events confirmed, in job order; the failure that stopped the job, or None)
JobResult = tuple[int, BaseException | None]


class Sender(Protocol):
    """Sends jobs of events; what :class:`daemon.publish.Dispatcher` needs."""

    def submit(self, job: list[AlarmEvent]) -> concurrent.futures.Future[JobResult]:
        """Start sending ``job``; never blocks.

        :returns: a future of the job's :data:`JobResult`. It never raises:
            a failure is the result's second item.
        :raises RuntimeError: the sender is shut down (``ThreadSender``)
        """


def send_job(publish: Callable[[AlarmEvent], None], job: Sequence[AlarmEvent]) -> JobResult:
    """Send ``job`` in order with ``publish``, stopping at the first failure.

    :param publish: sends one event and returns once the broker confirmed it
        (:meth:`Notifier.publish`); raises on failure
    :param job: the events, in the order they must be confirmed
    :returns: how many were confirmed, and the failure (None if all were)
    """
    for done, event in enumerate(job):
        try:
            publish(event)
        except Exception as err:  # reported to the dispatcher, never lost
            return done, err
    return len(job), None


class ThreadSender:
    """Sends jobs from the threads of ``executor``, through ``notifier``.

    :param notifier: the open notifier
    :param executor: the publishing threads (as many as the dispatcher's ``threads``)
    """

    def __init__(self, notifier: Notifier, executor: concurrent.futures.Executor) -> None:
        self._publish = notifier.publish
        self._executor = executor

    def submit(self, job: list[AlarmEvent]) -> concurrent.futures.Future[JobResult]:
        """Send ``job`` in one of the executor's threads (see :class:`Sender`)."""
        return self._executor.submit(send_job, self._publish, job)
