"""Publish from child processes, so that sending does not hold the intake's interpreter lock.

Each confirmed send costs the publishing side a few hundred microseconds of
Python (oslo.messaging's envelope and JSON, kombu, py-amqp). In one
interpreter that time is taken from the intake: during an alert storm the
relay's worker ran out of its one interpreter lock while a core was left
(docs/performance.md, benchmarks/analysis.md). ``[publisher]
publish_processes`` children each run a :class:`~daemon.publish.notifier.Notifier`
and threads of their own; the worker keeps the outbox, the lanes and every
decision (:class:`~daemon.publish.Dispatcher`), and only hands jobs over.

The protocol, over one socket pair per child (``multiprocessing.connection``
framing, pickled tuples; nothing on the command line, so no secret shows in
``ps``):

- worker -> child, first: ``(options, threads)``, ``options`` being
  ``{group: {name: value}}`` of the groups the notifier reads (see
  :func:`notifier_options`); the child answers ``("ready", pid)`` once its
  notifier is open, or ``("failed", text)``;
- then worker -> child: ``(job_id, [AlarmEvent, ...])`` per job, and ``None``
  to stop; child -> worker: ``(job_id, sent, failure)`` per job, ``failure``
  being None or ``(text, recoverable)``.

A child that exits (killed, out of memory) fails its jobs in flight as
recoverable: the dispatcher backs off and sends them again, under the same
``event_id``, once a new child is up. A child that cannot start is retried
with backoff, and its failure is what the dispatcher logs. The child ignores
SIGTERM and SIGINT (systemd's ``KillMode=mixed`` signals only the worker):
it ends when the worker closes the socket, after its sends in flight.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from oslo_config import cfg
from oslo_log import log

from daemon import exception
from daemon.pipeline.event import AlarmEvent
from daemon.publish.sender import JobResult

__all__ = ["ProcessSender", "notifier_options", "register_messaging_opts"]

LOG = log.getLogger(__name__)

#: The child's module (``python -m``).
CHILD_MODULE = "daemon.publish.child"

# Option groups the notifier and oslo.messaging read, besides [DEFAULT].
_GROUPS = ("publisher", "oslo_messaging_notifications", "oslo_messaging_rabbit",
           "oslo_messaging_kafka")


def notifier_options(conf: cfg.ConfigOpts) -> dict[str | None, dict[str, Any]]:
    """The values the child's notifier and logging need, as ``{group: {name: value}}``.

    ``None`` is ``[DEFAULT]`` (``transport_url``, ``control_exchange``,
    ``host``, oslo.log's options). Options that cannot be read are left out
    (the child keeps their defaults); groups not registered here are skipped.
    """
    register_messaging_opts(conf)  # not all are yet: the transport registers them
    options: dict[str | None, dict[str, Any]] = {None: _group_values(conf)}
    for group in _GROUPS:
        try:
            attr = conf[group]
        except cfg.NoSuchOptError:
            continue
        options[group] = _group_values(attr)
    return options


def register_messaging_opts(conf: cfg.ConfigOpts) -> None:
    """Register oslo.messaging's option groups (rabbit, kafka, notifications) on ``conf``.

    oslo.messaging registers them only when a transport is built; before that,
    values in the files for them are not readable.
    """
    import oslo_messaging.opts

    for group, group_opts in oslo_messaging.opts.list_opts():
        conf.register_opts(group_opts, group=group)


def _group_values(attr: Any) -> dict[str, Any]:
    values = {}
    for name in attr:
        try:
            value = attr[name]
        except cfg.Error:
            continue
        if not isinstance(value, cfg.ConfigOpts.GroupAttr):
            values[name] = value
    return values


class _Child:
    """One publishing child: its process, socket and jobs in flight."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.pending: dict[int, concurrent.futures.Future[JobResult]] = {}
        self.outbox: queue.SimpleQueue[tuple[int, list[AlarmEvent]] | None] = (
            queue.SimpleQueue())
        self.ready = False


class ProcessSender:
    """Sends jobs through ``processes`` child processes (a :class:`Sender`).

    :param conf: the relay's configuration (read once, by :meth:`open`)
    :param processes: child processes, at least 1
    :param threads: sends in flight in all (shared out over the children)
    :param start_timeout: seconds a child has to open its notifier
    :param restart_delay: seconds before a child that exited or failed to
        start is started again (doubling up to 30 s while it keeps failing)
    :param python: the interpreter the children run (this one by default)
    """

    def __init__(self, conf: cfg.ConfigOpts, *, processes: int, threads: int,
                 start_timeout: float = 60.0, restart_delay: float = 1.0,
                 python: str = sys.executable) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._conf = conf
        self._threads_each = max(1, -(-threads // processes))
        self._start_timeout = start_timeout
        self._restart_delay = restart_delay
        self._python = python
        self._children = [_Child(i) for i in range(processes)]
        self._lock = threading.Lock()
        self._ready_changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._closed = threading.Event()
        self._supervisors: list[threading.Thread] = []
        self._options: dict[str | None, dict[str, Any]] = {}

    def open(self) -> None:
        """Start the children; returns at once (jobs wait until a child is ready)."""
        if self._supervisors:
            return
        self._options = notifier_options(self._conf)
        for child in self._children:
            thread = threading.Thread(target=self._supervise, args=(child,), daemon=True,
                                      name=f"alarm-relay-publisher-{child.index}")
            self._supervisors.append(thread)
            thread.start()

    @property
    def pids(self) -> list[int]:
        """Process ids of the children ready to publish."""
        return [c.proc.pid for c in self._children if c.ready and c.proc is not None]

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every child has opened its notifier; False after ``timeout`` s."""
        with self._ready_changed:
            return self._ready_changed.wait_for(
                lambda: all(c.ready for c in self._children), timeout)

    def submit(self, job: list[AlarmEvent]) -> concurrent.futures.Future[JobResult]:
        """Queue ``job`` for the child with the fewest jobs in flight (see :class:`Sender`)."""
        fut: concurrent.futures.Future[JobResult] = concurrent.futures.Future()
        with self._lock:
            if self._closed.is_set():
                fut.set_result((0, exception.PublishError(
                    problem="the publishing processes are stopped", recoverable=True)))
                return fut
            child = min(self._children, key=lambda c: (not c.ready, len(c.pending)))
            job_id = next(self._ids)
            child.pending[job_id] = fut
            # Under the lock: a child that just died fails both, or neither.
            child.outbox.put((job_id, job))
        return fut

    def close(self, timeout: float = 10.0) -> None:
        """Stop the children after their sends in flight (at most ``timeout`` s); idempotent.

        Jobs not confirmed by then fail as recoverable (sent again after a restart).
        """
        self._closed.set()
        for child in self._children:
            child.outbox.put(None)
        for thread in self._supervisors:
            thread.join(timeout)
        for child in self._children:
            proc = child.proc
            if proc is not None and proc.poll() is None:
                LOG.warning("publishing process %d did not stop in %.0f s; killing it",
                            proc.pid, timeout)
                proc.kill()
                proc.wait()
            self._fail_all(child, "the publishing processes are stopped")

    def __enter__(self) -> ProcessSender:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one supervisor thread per child -----------------------------------

    def _supervise(self, child: _Child) -> None:
        delay = self._restart_delay
        while not self._closed.is_set():
            try:
                problem = self._run_child(child)
            except Exception as err:  # a broken reply: end this child, start another
                LOG.exception("publishing process %d: unexpected error", child.index)
                problem = f"publishing process {child.index} failed: {type(err).__name__}"
                proc = child.proc
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    self._wait(proc)
            was_ready, child.ready = child.ready, False
            self._fail_all(child, problem)
            if self._closed.is_set():
                break
            if was_ready:
                delay = self._restart_delay
            LOG.warning("%s; starting it again in %.0f s", problem, delay)
            self._closed.wait(delay)
            if not was_ready:  # it keeps failing to start: wait longer each time
                delay = min(30.0, delay * 2)

    def _run_child(self, child: _Child) -> str:
        """Start the child and serve it until it ends; returns why it ended."""
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [self._python, "-m", CHILD_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True)
        except OSError as err:
            ours.close()
            return f"publishing process {child.index} cannot start: {err}"
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        child.proc, child.conn = proc, conn
        try:
            conn.send((self._options, self._threads_each))
            if not conn.poll(self._start_timeout):
                return (f"publishing process {proc.pid} did not open its notifier "
                        f"in {self._start_timeout:.0f} s")
            status, detail = conn.recv()
            if status != "ready":
                return f"publishing process {proc.pid} cannot publish: {detail}"
            with self._ready_changed:
                child.ready = True
                self._ready_changed.notify_all()
            LOG.info("publishing process %d started (%d threads)", proc.pid,
                     self._threads_each)
            writer = threading.Thread(target=self._write, args=(child, conn), daemon=True,
                                      name=f"alarm-relay-publisher-{child.index}-writer")
            writer.start()
            self._read(child, conn)
            child.outbox.put(None)  # the writer ends if it is still waiting
            writer.join()
            return f"publishing process {proc.pid} exited with code {self._wait(proc)}"
        except (EOFError, OSError) as err:
            return (f"publishing process {proc.pid} exited with code {self._wait(proc)} "
                    f"({type(err).__name__})")
        finally:
            conn.close()  # a child still running sees the end of its input and stops
            if proc.poll() is None:
                if not self._closed.is_set():
                    proc.kill()  # it did not start in time, or broke the protocol
                self._wait(proc)

    def _write(self, child: _Child, conn: Connection) -> None:
        while True:
            item = child.outbox.get()
            if item is None:
                if self._closed.is_set():
                    try:
                        conn.send(None)
                    except OSError:
                        pass
                return
            try:
                conn.send(item)
            except (OSError, ValueError):
                # The child is gone: the reader fails what is in flight; this
                # job is failed with them (it is in ``pending``).
                return
            except Exception as err:  # a job that does not pickle: fail it alone
                with self._lock:
                    fut = child.pending.pop(item[0], None)
                if fut is not None:
                    _resolve(fut, (0, exception.PublishError(
                        problem=f"cannot hand the job to the publishing process: "
                                f"{type(err).__name__}: {err}", recoverable=False)))

    def _read(self, child: _Child, conn: Connection) -> None:
        while True:
            try:
                job_id, sent, failure = conn.recv()
            except (EOFError, OSError):
                return
            with self._lock:
                fut = child.pending.pop(job_id, None)
            if fut is None:
                continue
            err = None
            if failure is not None:
                text, recoverable = failure
                err = exception.PublishError(problem=text, recoverable=recoverable)
            _resolve(fut, (sent, err))

    def _fail_all(self, child: _Child, problem: str) -> None:
        with self._lock:
            pending, child.pending = child.pending, {}
            # Jobs queued for a child that never got them are in ``pending`` too.
            while True:
                try:
                    child.outbox.get_nowait()
                except queue.Empty:
                    break
        for fut in pending.values():
            _resolve(fut, (0, exception.PublishError(problem=problem, recoverable=True)))

    def _wait(self, proc: subprocess.Popen) -> int | None:
        try:
            return proc.wait(self._start_timeout)
        except subprocess.TimeoutExpired:
            return None


def _resolve(fut: concurrent.futures.Future[JobResult], result: JobResult) -> None:
    """Set ``fut``'s result unless it is already done (cancelled with its asyncio side)."""
    try:
        fut.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
