"""The alarm-relay service: builds the stages, starts them, stops them.

oslo.service (threading backend, cotyledon) forks one worker process.  In the
worker, :class:`RelayService` runs an asyncio event loop in a thread of its
own (cotyledon owns the main thread's signal handling) and the loop hosts
:class:`Relay`, which wires the stages (docs/dev/architecture.md)::

    sources (poller per cluster, webhook) -> intake -> store -> dispatcher -> notifier

Every blocking library runs in an executor created here: one thread for the
store, a bounded pool for oslo.messaging, two threads for keystoneauth1.

SIGHUP makes the master mutate the configuration and replace the worker; all
alarm state lives in the store, so the new worker resumes where the old one
stopped.  SIGTERM drains: intake stops, the dispatcher sends what the broker
accepts within the shutdown budget, and what is left stays in the outbox.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pathlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from oslo_config import cfg
from oslo_log import log
from oslo_service import service

from daemon import api, exception, tls
from daemon.conf import alertmanager as alertmanager_conf
from daemon.coordination import Coordinator, outbox_units
from daemon.datasources import build_resolver
from daemon.intake import Intake
from daemon.last_good import load_mapping_or_last_good
from daemon.lifecycle import LifecycleTracker
from daemon.ownership import Ownership
from daemon.pipeline.transformer import Transformer
from daemon.publish import Dispatcher, Notifier, ProcessSender, Sender, ThreadSender
from daemon.sources import AlertmanagerPoller, WebhookReceiver
from daemon.store import Store, hold_single_relay_lock, store_from_conf
from daemon.systemd import sd_notify

__all__ = ["Relay", "RelayService", "check_store", "open_store", "run_forever"]

LOG = log.getLogger(__name__)


def open_store(conf: cfg.ConfigOpts, *, coordinated: bool, lock_wait: float = 0.0) -> Store:
    """The configured store, open; without coordination, held by this relay alone.

    Blocking: run it in the DB executor.

    :param coordinated: ``[coordination] backend_url`` is set (several relays
        share the database, fenced); otherwise the single-relay lock is taken
    :param lock_wait: seconds to keep trying for the lock (a worker replaced on
        SIGHUP may start while the one before still stops and holds it)
    :raises SchemaMismatch: a shared database's schema is behind (``db sync``)
    :raises StoreInUse: another relay without coordination uses the database
    :raises StoreError: the database cannot be reached
    """
    store = store_from_conf(conf)
    store.open()
    if coordinated:
        return store
    deadline = time.monotonic() + lock_wait
    try:
        while True:
            try:
                hold_single_relay_lock(store)
                return store
            except exception.StoreInUse:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.5)
    except BaseException:
        store.close()
        raise


def check_store(conf: cfg.ConfigOpts, *, coordinated: bool) -> None:
    """Before the worker is forked: refuse to start on a store it could not use.

    Opens and closes the store (upgrading the embedded file), so a schema that
    is behind or a database another relay holds stops the daemon with one line
    and a non-zero exit, instead of a worker the launcher restarts forever.

    :raises SchemaMismatch, StoreInUse, StoreError: as :func:`open_store`
    """
    if not conf.database.connection:
        pathlib.Path(conf.state_dir).mkdir(0o750, parents=True, exist_ok=True)
    try:
        store = open_store(conf, coordinated=coordinated)
    except exception.AlarmRelayError:
        raise
    except Exception as err:  # sqlite3 or OS errors of the embedded file
        raise exception.StoreError(problem=f"{conf.state_dir}: {err}") from err
    store.close()

class Relay:
    """The asyncio side of the daemon: builds every stage, runs it, drains it.

    Created and run inside the worker's loop thread; ``request_stop`` may be
    called from any thread.
    """

    def __init__(self, conf: cfg.ConfigOpts, *, notify_socket: str | None = None) -> None:
        self.conf = conf
        self._notify_socket = notify_socket
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._background: set[asyncio.Task] = set()
        # What to close at the end, last built first.
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self.intake: Intake | None = None
        self.dispatcher: Dispatcher | None = None
        self.ownership: Ownership | None = None
        self.pollers: dict[str, AlertmanagerPoller] = {}
        self.listen_port: int | None = None

    def readiness(self) -> dict[str, bool]:
        """The named readiness checks of ``/readyz``."""
        checks = {"mapping_loaded": self.intake is not None,
                  "outbox_writable": self.dispatcher is not None and self.dispatcher.store_ok}
        answered = dict(self.intake.answered()) if self.intake is not None else {}
        if len(answered) <= 1:
            checks["alertmanager_answered"] = bool(answered) and all(answered.values())
        else:
            checks.update({f"alertmanager_answered:{name}": ok for name, ok in answered.items()})
        return checks

    def details(self) -> dict[str, Any]:
        """What ``/readyz`` shows besides its checks: the coordination, with several relays.

        A standby (no unit owned) is ready: it takes webhooks for the inbox.
        """
        if self.ownership is None:
            return {}
        return {"coordination": self.ownership.details()}

    def request_stop(self) -> None:
        """Ask the loop to drain and stop; safe from any thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Create a background task the service cancels and awaits on stop."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def run(self) -> None:
        """Build the stages, serve until asked to stop, then drain."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        conf = self.conf
        self._db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="alarm-relay-db")
        publishers = concurrent.futures.ThreadPoolExecutor(
            conf.publisher.publish_threads, thread_name_prefix="alarm-relay-publish")
        # keystoneauth1 (token, catalog) blocks: it gets threads of its own.
        self._auth = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="alarm-relay-auth")
        try:
            runner = await self._build(publishers)
            tasks = self._start_tasks()
            sd_notify(self._notify_socket, "READY=1")
            self._started.set()
            await self._stop.wait()
            await self._drain(runner, tasks)
        finally:
            self._started.set()
            await self._close()
            publishers.shutdown(wait=False, cancel_futures=True)
            self._auth.shutdown(wait=False, cancel_futures=True)
            self._db.shutdown(wait=True)

    async def _build(self, publishers: concurrent.futures.Executor) -> web.AppRunner | None:
        conf, loop = self.conf, asyncio.get_running_loop()
        await loop.run_in_executor(self._db, pathlib.Path(conf.state_dir).mkdir, 0o750, True, True)
        coordinated = bool(conf.coordination.backend_url)
        store = await loop.run_in_executor(self._db, lambda: open_store(
            conf, coordinated=coordinated, lock_wait=conf.graceful_shutdown_timeout))
        self._closers.append(lambda: loop.run_in_executor(self._db, store.close))
        compiled = await loop.run_in_executor(self._db, load_mapping_or_last_good, conf)
        resolver = build_resolver(conf, executor=self._auth)
        if resolver is not None:
            await resolver.start(task_factory=self._spawn)
            self._closers.insert(0, resolver.close)
        sender = await self._open_sender(publishers)
        self.dispatcher = Dispatcher(store, sender, db_executor=self._db,
                                     threads=conf.publisher.publish_threads,
                                     units=frozenset() if coordinated else None)
        clusters = alertmanager_conf.clusters(conf)
        self.intake = Intake(
            clusters=[c.name for c in clusters],
            make_tracker=lambda name: LifecycleTracker.from_conf(conf, cluster=name),
            store=store, db_executor=self._db, on_stored=self.dispatcher.wake,
            transformer=Transformer.from_conf(conf, compiled, [r for r in [resolver] if r]),
            coordinated=coordinated, partitions=conf.coordination.partitions,
            on_fenced=self._on_fenced, pace=self._pace_storing)
        await self.intake.restore()
        if coordinated:
            await self._coordinate(store)
        else:
            LOG.info("State restored: %d alarms tracked, %d events waiting in the outbox",
                     self.intake.tracked, await loop.run_in_executor(self._db, store.depth))
        for cluster in clusters:
            poller = AlertmanagerPoller.from_conf(conf, self.intake.on_poll, cluster)
            await poller.start()
            self._closers.insert(0, poller.close)
            self.pollers[cluster.name] = poller
        return await self._serve_http() if conf.webhook.enabled else None

    async def _pace_storing(self, started: float) -> None:
        """Between a storm's chunks: wait for the outbox ([publisher] store_ahead).

        :param started: ``time.monotonic()`` when storing the poll began; all the
            waits of one poll together last at most ``pause_polls_max`` seconds
        """
        publisher, dispatcher = self.conf.publisher, self.dispatcher
        left = publisher.pause_polls_max - (time.monotonic() - started)
        if dispatcher is not None and left > 0:
            await dispatcher.wait_backlog(publisher.store_ahead, left)

    async def _open_sender(self, publishers: concurrent.futures.Executor) -> Sender:
        """The notifier's threads here, or [publisher] publish_processes children."""
        conf, loop = self.conf, asyncio.get_running_loop()
        notifier = Notifier(conf)
        # Opened here in both cases: a configuration it refuses stops start-up.
        await loop.run_in_executor(publishers, notifier.open)
        processes = conf.publisher.publish_processes
        if not processes:
            self._closers.insert(0, lambda: loop.run_in_executor(publishers, notifier.close))
            return ThreadSender(notifier, publishers)
        await loop.run_in_executor(publishers, notifier.close)
        sender = ProcessSender(conf, processes=processes,
                               threads=conf.publisher.publish_threads)
        sender.open()
        self._closers.insert(0, lambda: loop.run_in_executor(publishers, sender.close))
        return sender

    async def _coordinate(self, store: Store) -> None:
        """Join the group and take the units assigned here ([coordination] backend_url)."""
        conf = self.conf.coordination
        member_id = f"{self.conf.host}-{os.getpid()}"
        coordinator = Coordinator(conf.backend_url, member_id, lease=conf.lease)
        self.ownership = Ownership(
            coordinator, store, db_executor=self._db, units=self.intake.units(),
            check_interval=conf.check_interval, on_take=self.intake.take,
            on_release=self.intake.release,
            on_change=lambda owned: self.dispatcher.set_units(
                outbox_units(owned, conf.partitions)),
            verify=self.intake.verify, settle=conf.lease)
        self._closers.insert(0, coordinator.stop)
        await self.ownership.start()
        LOG.info("Coordinated as %s: %d units, %d owned here (%s), %d members",
                 member_id, len(self.intake.units()), len(self.ownership.owned),
                 ", ".join(sorted(self.ownership.owned)) or "standby",
                 len(coordinator.members))

    def _on_fenced(self, unit: str) -> None:
        if self.ownership is not None:
            self.ownership.fenced(unit)

    async def _serve_http(self) -> web.AppRunner:
        conf = self.conf

        async def on_alerts(alerts: list, source_url: str, cluster: str) -> None:
            await self.intake.on_webhook(alerts, source_url, cluster)
            self.pollers[cluster].poll_now()  # the poll confirms what the delivery said

        app = api.build_app(max_body_size=conf.webhook.max_body_size, readiness=self.readiness,
                            details=self.details)
        WebhookReceiver.from_conf(conf, on_alerts=on_alerts).add_routes(app)
        runner, self.listen_port = await api.serve(app, conf.webhook.host, conf.webhook.port,
                                                   tls.listener_context(conf))
        return runner

    def _start_tasks(self) -> list[asyncio.Task]:
        conf, intake = self.conf, self.intake
        intake.accepting = True
        tasks = [asyncio.create_task(self.dispatcher.run(self._stop), name="dispatcher"),
                 asyncio.create_task(self.dispatcher.watch_store(), name="store-gauges"),
                 asyncio.create_task(intake.run_housekeeping(
                     min(p.settings.poll_interval for p in self.pollers.values())),
                     name="housekeeping")]
        if self.ownership is not None:
            tasks += [asyncio.create_task(self.ownership.run(), name="ownership"),
                      asyncio.create_task(intake.run_inbox(), name="inbox")]
        limit = conf.publisher.pause_polls_above
        tasks += [asyncio.create_task(
            poller.run(self._stop, backlog=lambda: self.dispatcher.backlog(limit),
                       backlog_max_wait=conf.publisher.pause_polls_max), name=f"poller-{name}")
            for name, poller in self.pollers.items()]
        LOG.info("alarm-relay ready: polling %s, webhook %s, publishing to topics %s",
                 "; ".join(f"cluster {name} at {', '.join(p.urls)} every "
                           f"{p.settings.poll_interval:.1f}s" for name, p in self.pollers.items()),
                 f"on {conf.webhook.host}:{self.listen_port}" if self.listen_port else "disabled",
                 ", ".join(conf.oslo_messaging_notifications.topics))
        return tasks

    async def _drain(self, runner: web.AppRunner | None, tasks: list[asyncio.Task]) -> None:
        """Stop intake, finish in-flight work, send what the broker takes in time."""
        budget = max(1.0, self.conf.graceful_shutdown_timeout * 0.5)
        deadline = time.monotonic() + budget
        sd_notify(self._notify_socket, "STOPPING=1")
        LOG.info("Stopping: no new alerts taken, draining the outbox (up to %.0fs)", budget)
        if runner is not None:
            await runner.cleanup()
        await self.intake.drain()  # a poll or webhook being stored right now finishes
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        empty = await self.dispatcher.drain(max(0.1, deadline - time.monotonic()))
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        if self.ownership is not None:
            await self.ownership.stop()  # the others take over without waiting for the lease
        if empty:
            LOG.info("Drained: outbox empty, every event confirmed by the broker")
        else:
            LOG.warning("Drained what the broker accepted in time: %s events remain in the "
                        "outbox and are sent at the next start", self.dispatcher.depth)

    async def _close(self) -> None:
        if self.intake is not None:
            self.intake.accepting = False
        for close in self._closers:
            try:
                await close()
            except Exception:
                LOG.exception("Closing a stage failed")
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


class RelayService(service.Service):
    """oslo.service wrapper: runs :class:`Relay` in a loop thread of the worker.

    Built in the master and forked: nothing is created in ``__init__``; the
    thread, loop and connections are all made in ``start()``.
    """

    def __init__(self, conf: cfg.ConfigOpts, *, notify_socket: str | None = None) -> None:
        super().__init__()
        self.conf = conf
        self.notify_socket = notify_socket
        self._relay: Relay | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        super().start()
        self._relay = Relay(self.conf, notify_socket=self.notify_socket)
        self._thread = threading.Thread(target=self._run, name="alarm-relay-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._relay.run())
        except BaseException as err:  # the thread's top: report, never vanish silently
            self._error = err
            LOG.error("alarm-relay stopped on an error: %s", err,
                      exc_info=not isinstance(err, exception.AlarmRelayError))

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            # cotyledon turns a non-zero exit into a respawn after a back-off.
            raise SystemExit(1)

    def stop(self, graceful: bool = True) -> None:
        if self._relay is not None:
            self._relay.request_stop()
        if self._thread is not None:
            # cotyledon exits the worker with os._exit() after stop(): the
            # drain must be finished here.
            self._thread.join(max(1.0, self.conf.graceful_shutdown_timeout - 2.0))
        LOG.info("alarm-relay worker stopped")
        super().stop(graceful)


def run_forever(conf: cfg.ConfigOpts, relay_service: RelayService) -> int:
    """Launch the service under oslo.service and return the exit code."""
    launcher = service.launch(conf, relay_service, workers=1, restart_method="mutate")
    return launcher.wait() or 0
