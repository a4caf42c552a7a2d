"""The alarm-relay service: the one place that owns loops, threads and tasks.

oslo.service (threading backend, cotyledon) forks one worker process.  In the
worker, :class:`RelayService` runs an asyncio event loop in a thread of its
own (cotyledon owns the main thread's signal handling) and the loop hosts
:class:`Relay`, which wires the stages together::

    poller/webhook -> LifecycleTracker -> Transformer -> Outbox -> Dispatcher -> Notifier

Each configured Alertmanager cluster has its own poller and tracker; the
stages from the transformer on are shared.

Every blocking library runs in an executor created here: one thread for
SQLite, a bounded pool for oslo.messaging.

SIGHUP makes the master mutate the configuration and replace the worker; all
alarm state lives in the SQLite file under ``state_dir``, so the new worker
resumes where the old one stopped.  SIGTERM drains: intake stops, the
dispatcher sends what the broker accepts within the shutdown budget, and what
is left stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import os
import pathlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from aiohttp import web
from oslo_config import cfg
from oslo_log import log
from oslo_service import service

from daemon import exception, listener, telemetry, tls
from daemon.conf import alertmanager as alertmanager_conf
from daemon.lifecycle import LifecycleTracker, Transition
from daemon.metrics.resolvers import build_resolver
from daemon.pipeline import mapping as mapping_loader
from daemon.pipeline.event import AlarmEvent
from daemon.pipeline.transformer import Transformer
from daemon.publish.dispatcher import Dispatcher
from daemon.publish.notifier import Notifier
from daemon.publish.outbox import Outbox
from daemon.sources.alertmanager import AlertmanagerPoller, PollResult
from daemon.sources.model import Alert
from daemon.sources.webhook import WebhookReceiver

__all__ = [
    "LAST_GOOD_MAPPING", "STATE_FILE", "ClusterIntake", "Relay", "RelayService",
    "plan_store_chunks",
]

LOG = log.getLogger(__name__)

STATE_FILE = "alarm-relay.sqlite"
LAST_GOOD_MAPPING = "mapping.last-good.yaml"
# Above this many transitions in one batch, log a summary instead of one line each.
_LOG_EACH_TRANSITION_UP_TO = 20
# Transitions per outbox transaction: a storm is stored and published in overlap.
_STORE_CHUNK = 2000

T = TypeVar("T")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def sd_notify(socket_path: str | None, state: str) -> None:
    """Send one sd_notify datagram (READY=1, STOPPING=1, STATUS=...) if systemd asked for it."""
    if not socket_path:
        return
    address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        LOG.warning("Could not notify systemd (%s): %s", state.split("=")[0], err)


def plan_store_chunks(
        transitions: Sequence[Transition],
        changes: Sequence[tuple[str, dict | None]],
        state_key: Callable[[str], str],
        size: int,
) -> list[tuple[Sequence[Transition], list[tuple[str, dict | None]]]]:
    """Split one observation's transitions and state records into transactions.

    A state record goes with the chunk holding the last transition of its
    alarm, and records without a transition go with the last chunk: if a
    later chunk fails, the stored state never runs ahead of the stored events.

    :returns: ``(transitions, state records)`` per transaction; at least one
    """
    pending = dict(changes)
    chunk_of_key: dict[str, int] = {}
    for index, transition in enumerate(transitions):
        chunk_of_key[state_key(transition.alert.fingerprint)] = index // size
    count = max(1, -(-len(transitions) // size))
    plan = []
    for chunk in range(count):
        batch = transitions[chunk * size:(chunk + 1) * size]
        if chunk == count - 1:
            states = list(pending.items())
        else:
            states = [(key, pending.pop(key)) for key, last in chunk_of_key.items()
                      if last == chunk and key in pending]
        plan.append((batch, states))
    return plan


def load_mapping_or_last_good(conf: cfg.ConfigOpts) -> mapping_loader.CompiledMapping:
    """Load ``[mapping] path``; on failure fall back to the last mapping that loaded.

    The master validated the file before the first worker started, so a
    failure here means it changed since: a SIGHUP with a broken file.  The
    previous mapping stays in force and the error is logged.

    :raises MappingError: when the file is invalid and no previous mapping exists
    """
    state_dir = pathlib.Path(conf.state_dir)
    last_good = state_dir / LAST_GOOD_MAPPING
    path = pathlib.Path(conf.mapping.path)
    try:
        compiled = mapping_loader.load_mapping(str(path))
    except exception.MappingError as err:
        if not last_good.exists():
            raise
        LOG.error("Mapping reload rejected, keeping the previous mapping: %s", err)
        compiled = mapping_loader.load_mapping(str(last_good))
        LOG.info("Mapping in force: previous version of %s with %d rules", path, len(compiled))
        return compiled
    # Keep a copy of what loaded, written atomically, for the next reload.
    tmp = last_good.with_suffix(".tmp")
    tmp.write_bytes(path.read_bytes())
    os.replace(tmp, last_good)
    LOG.info("Mapping loaded from %s with %d rules", path, len(compiled))
    return compiled


@dataclasses.dataclass(eq=False)
class ClusterIntake:
    """What one Alertmanager cluster feeds: its poller and its lifecycle tracker.

    :ivar answered: some replica answered a poll since start-up (readiness)
    """

    name: str
    poller: AlertmanagerPoller
    tracker: LifecycleTracker
    answered: bool = False


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
        self._intake_lock: asyncio.Lock | None = None
        self._accepting = False
        self._outbox_ok = False
        self._mapping_loaded = False
        self._clusters: dict[str, ClusterIntake] = {}
        self.listen_port: int | None = None

    # -- readiness -----------------------------------------------------------
    def readiness(self) -> dict[str, bool]:
        checks = {
            "mapping_loaded": self._mapping_loaded,
            "outbox_writable": self._outbox_ok,
        }
        if len(self._clusters) <= 1:
            checks["alertmanager_answered"] = all(
                c.answered for c in self._clusters.values()) and bool(self._clusters)
        else:
            for cluster in self._clusters.values():
                checks[f"alertmanager_answered:{cluster.name}"] = cluster.answered
        return checks

    # -- lifecycle -----------------------------------------------------------
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

    async def _db(self, func: Callable[..., T], *args: Any) -> T:
        return await self._loop.run_in_executor(self._db_executor, func, *args)

    async def run(self) -> None:
        """Build the stages, serve until asked to stop, then drain."""
        conf = self.conf
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._intake_lock = asyncio.Lock()
        self._db_executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="alarm-relay-db")
        self._publish_executor = concurrent.futures.ThreadPoolExecutor(
            conf.publisher.publish_threads, thread_name_prefix="alarm-relay-publish")
        # keystoneauth1 (token, catalog) blocks: it gets threads of its own.
        self._auth_executor = concurrent.futures.ThreadPoolExecutor(
            2, thread_name_prefix="alarm-relay-auth")
        self._background: set[asyncio.Task] = set()
        runner: web.AppRunner | None = None
        tasks: list[asyncio.Task] = []
        resolver = None
        notifier = None
        try:
            state_dir = pathlib.Path(conf.state_dir)
            await self._db(state_dir.mkdir, 0o750, True, True)
            self._outbox = Outbox(str(state_dir / STATE_FILE),
                                  max_events=conf.publisher.max_outbox_events,
                                  max_event_bytes=conf.publisher.max_event_bytes)
            await self._db(self._outbox.open)
            self._outbox_ok = True

            compiled = await self._db(load_mapping_or_last_good, conf)
            self._mapping_loaded = True

            resolver = build_resolver(conf, executor=self._auth_executor)
            if resolver is not None:
                await resolver.start(task_factory=self._spawn)
            self._transformer = Transformer.from_conf(
                conf, compiled, [resolver] if resolver is not None else [])

            self._started_at = utcnow()
            states = await self._db(self._outbox.load_states)
            for cluster_conf in alertmanager_conf.clusters(conf):
                tracker = self._new_tracker(cluster_conf.name)
                tracker.restore(states)
                poller = AlertmanagerPoller.from_conf(conf, self._on_poll, cluster_conf)
                self._clusters[cluster_conf.name] = ClusterIntake(
                    cluster_conf.name, poller, tracker)
            self._warn_unconfigured_clusters(states)
            telemetry.ALERTS_TRACKED.set(self._tracked())
            pending = await self._db(self._outbox.depth)
            LOG.info("State restored from %s: %d alarms tracked, %d events waiting in the outbox",
                     state_dir / STATE_FILE, self._tracked(), pending)

            notifier = Notifier(conf)
            await self._loop.run_in_executor(self._publish_executor, notifier.open)
            self._dispatcher = Dispatcher(
                self._outbox, notifier, db_executor=self._db_executor,
                publish_executor=self._publish_executor,
                threads=conf.publisher.publish_threads)

            for cluster in self._clusters.values():
                await cluster.poller.start()

            if conf.webhook.enabled:
                runner = await self._start_listener()

            self._accepting = True
            tasks = [
                asyncio.create_task(self._dispatcher.run(self._stop), name="dispatcher"),
                *(asyncio.create_task(
                    c.poller.run(self._stop, backlog=self._publish_backlog,
                                 backlog_max_wait=conf.publisher.pause_polls_max),
                    name=f"poller-{c.name}")
                  for c in self._clusters.values()),
                asyncio.create_task(self._expire_loop(), name="expiry"),
                asyncio.create_task(self._outbox_gauges_loop(), name="outbox-gauges"),
            ]
            LOG.info("alarm-relay ready: polling %s, webhook %s, publishing to topics %s",
                     "; ".join(f"cluster {c.name} at {', '.join(c.poller.urls)} every "
                               f"{c.poller.settings.poll_interval:.1f}s"
                               for c in self._clusters.values()),
                     f"on {conf.webhook.host}:{self.listen_port}" if runner else "disabled",
                     ", ".join(conf.oslo_messaging_notifications.topics))
            sd_notify(self._notify_socket, "READY=1")
            self._started.set()
            await self._stop.wait()
            await self._drain(runner, tasks)
            runner = None
        finally:
            self._started.set()
            self._accepting = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if runner is not None:
                await runner.cleanup()
            for cluster in self._clusters.values():
                await cluster.poller.close()
            if resolver is not None:
                await resolver.close()
            if notifier is not None:
                await self._loop.run_in_executor(self._publish_executor, notifier.close)
            if getattr(self, "_outbox", None) is not None:
                await self._db(self._outbox.close)
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            self._publish_executor.shutdown(wait=False, cancel_futures=True)
            self._auth_executor.shutdown(wait=False, cancel_futures=True)
            self._db_executor.shutdown(wait=True)

    async def _drain(self, runner: web.AppRunner | None, tasks: Sequence[asyncio.Task]) -> None:
        """Stop intake, finish in-flight work, send what the broker takes in time."""
        budget = max(1.0, self.conf.graceful_shutdown_timeout * 0.5)
        deadline = time.monotonic() + budget
        sd_notify(self._notify_socket, "STOPPING=1")
        LOG.info("Stopping: no new alerts taken, draining the outbox (up to %.0fs)", budget)
        self._accepting = False
        if runner is not None:
            await runner.cleanup()
        # Wait for a poll or webhook that is being stored right now.
        async with self._intake_lock:
            pass
        dispatcher_task = tasks[0]
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        empty = await self._dispatcher.drain(max(0.1, deadline - time.monotonic()))
        dispatcher_task.cancel()
        await asyncio.gather(dispatcher_task, return_exceptions=True)
        left = await self._db(self._outbox.depth)
        if empty:
            LOG.info("Drained: outbox empty, every event confirmed by the broker")
        else:
            LOG.warning("Drained what the broker accepted in time: %d events remain in the "
                        "outbox and are sent at the next start", left)

    def _new_tracker(self, cluster: str) -> LifecycleTracker:
        return LifecycleTracker.from_conf(self.conf, cluster=cluster)

    def _tracked(self) -> int:
        return sum(c.tracker.tracked for c in self._clusters.values())

    def _warn_unconfigured_clusters(self, states: Sequence[dict]) -> None:
        # Their alarms are neither resolved nor forgotten: configuring the
        # cluster again picks them up where they were.
        left = {}
        for record in states:
            name = record.get("cluster")
            if name not in self._clusters:
                left[name] = left.get(name, 0) + 1
        for name, count in sorted(left.items(), key=lambda item: str(item[0])):
            LOG.warning("%d alarm states of Alertmanager cluster %s are kept but not tracked: "
                        "the cluster is no longer configured", count, name)

    async def _start_listener(self) -> web.AppRunner:
        conf = self.conf
        receiver = WebhookReceiver.from_conf(conf, on_alerts=self._on_webhook)
        app = listener.build_app(max_body_size=conf.webhook.max_body_size,
                                 readiness=self.readiness)
        receiver.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, conf.webhook.host, conf.webhook.port,
                           ssl_context=tls.listener_context(conf))
        await site.start()
        self.listen_port = runner.addresses[0][1]
        LOG.info("Listening on %s:%d (webhook /v1/alerts, /healthz, /readyz, /metrics)",
                 conf.webhook.host, self.listen_port)
        return runner

    # -- intake --------------------------------------------------------------
    async def _on_poll(self, result: PollResult) -> None:
        cluster = self._clusters[result.cluster]
        if any(replica.alerts is not None for replica in result.replicas):
            cluster.answered = True
        if not self._accepting:
            return
        try:
            await self._observe(cluster, lambda tracker, now: tracker.observe_poll(result, now))
        except exception.OutboxFull as err:
            # Nothing is lost: the alerts are still in Alertmanager and the
            # next poll sees them again.
            LOG.warning("Poll result not taken, %s; retrying at the next poll", err)

    def _publish_backlog(self) -> str | None:
        """Why polls should wait: more than ``pause_polls_above`` events unsent."""
        limit = self.conf.publisher.pause_polls_above
        depth = self._dispatcher.depth
        if not limit or depth is None or depth <= limit:
            return None
        return f"{depth} events wait in the outbox ([publisher] pause_polls_above {limit})"

    async def _on_webhook(self, alerts: list[Alert], source_url: str, cluster: str) -> None:
        if not self._accepting:
            raise exception.OutboxFull(depth=-1, limit=-1, message="relay is stopping")
        intake = self._clusters[cluster]
        await self._observe(
            intake, lambda tracker, now: tracker.observe_webhook(alerts, now, source_url))
        intake.poller.poll_now()

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(min(c.poller.settings.poll_interval
                                    for c in self._clusters.values()))
            for cluster in self._clusters.values():
                try:
                    await self._observe(cluster, lambda tracker, now: tracker.expire(now))
                except exception.OutboxFull as err:
                    LOG.warning("Expiry check of cluster %s postponed, %s", cluster.name, err)
                except Exception:
                    LOG.exception("Expiry check of cluster %s failed", cluster.name)

    async def _observe(
            self, cluster: ClusterIntake,
            observe: Callable[[LifecycleTracker, datetime.datetime], list[Transition]],
    ) -> None:
        """Run one observation through a cluster's tracker and store its events atomically.

        The tracker's state and the events land in one SQLite transaction.  If
        storing fails, the tracker is rebuilt from the stored state, so the
        next observation derives the same transitions again: none is lost.
        """
        async with self._intake_lock:
            if await self._db(self._outbox.depth) >= self.conf.publisher.max_outbox_events:
                telemetry.OUTBOX_FULL.inc()
                raise exception.OutboxFull(depth=await self._db(self._outbox.depth),
                                           limit=self.conf.publisher.max_outbox_events)
            transitions = observe(cluster.tracker, utcnow())
            # State can change without a transition (which replicas list an
            # alarm, refreshed endsAt); it is stored too, so a restart during
            # an Alertmanager outage does not resume from stale state.
            if not transitions and not cluster.tracker.pending_changes:
                return
            try:
                await self._store(cluster.tracker, transitions)
            except BaseException:
                await self._rebuild_tracker(cluster)
                raise
        self._dispatcher.wake()

    async def _store(self, tracker: LifecycleTracker, transitions: list[Transition]) -> None:
        """Transform and store transitions, in chunks so publishing starts early.

        Each chunk's events are committed with the state of the alarms whose
        last transition is in that chunk: if a later chunk fails, the stored
        state never runs ahead of the stored events.
        """
        plan = plan_store_chunks(transitions, tracker.export_changes(),
                                 tracker.state_key, _STORE_CHUNK)
        for batch, states in plan:
            events = await self._transform(batch)
            await self._db(self._outbox.put, events, states)
            self._dispatcher.wake()
        telemetry.ALERTS_TRACKED.set(self._tracked())
        self._log_transitions(transitions)

    async def _transform(self, transitions: Sequence[Transition]) -> list[AlarmEvent]:
        if self._transformer.has_resolvers:
            # Resolvers wait on the network: resolve the batch concurrently.
            events = await asyncio.gather(
                *(self._transformer.transform(t) for t in transitions))
        else:
            # Nothing to wait for: no task, not even a coroutine, per transition.
            transform = self._transformer.transform_sync
            events = [transform(t) for t in transitions]
        return [event for event in events if event is not None]

    async def _rebuild_tracker(self, cluster: ClusterIntake) -> None:
        tracker = self._new_tracker(cluster.name)
        tracker.restore(await self._db(self._outbox.load_states))
        cluster.tracker = tracker

    @staticmethod
    def _log_transitions(transitions: Sequence[Transition]) -> None:
        if len(transitions) <= _LOG_EACH_TRANSITION_UP_TO:
            for t in transitions:
                LOG.info("Alarm %s %s: %s%s", t.alarm_id, t.kind, t.alert.name,
                         f" ({t.reason})" if t.reason else "")
            return
        counts: dict[str, int] = {}
        for t in transitions:
            counts[t.kind] = counts.get(t.kind, 0) + 1
        LOG.info("Stored %d transitions: %s", len(transitions),
                 ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))

    async def _outbox_gauges_loop(self) -> None:
        while True:
            try:
                depth = await self._db(self._outbox.depth)
                age = await self._db(self._outbox.oldest_age, time.time())
                telemetry.OUTBOX_DEPTH.set(depth)
                telemetry.OUTBOX_OLDEST_AGE.set(age or 0.0)
                self._outbox_ok = True
            except Exception:
                self._outbox_ok = False
                LOG.exception("Outbox is not readable")
            await asyncio.sleep(5.0)


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

