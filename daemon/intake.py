"""The intake stage: an observation in, its transitions stored with their events out.

Polls and webhook deliveries of each Alertmanager cluster arrive here.  For
each one the intake runs the cluster's :class:`~daemon.lifecycle.LifecycleTracker`,
turns the transitions into events with the :class:`~daemon.pipeline.transformer.Transformer`
and stores events and state records together, in chunks, through the
:class:`~daemon.store.Store`.  It is the one writer of
``alarm_relay_transitions_total`` and ``alarm_relay_alerts_tracked``.

Each cluster has its own lock: awaiting a slow resolver (Aetos) for one
cluster never holds back another cluster's polls or webhooks.  If storing
fails, the cluster's tracker is rebuilt from the stored state, so the next
observation derives the same transitions again: none is lost.

Blocking store calls run in the executor handed in (one thread, as the
store wants), the way the dispatcher gets its executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from oslo_log import log

from daemon import exception, telemetry
from daemon.lifecycle import LifecycleTracker, Transition
from daemon.model import Alert, PollResult
from daemon.pipeline.event import AlarmEvent
from daemon.pipeline.transformer import Transformer
from daemon.store import StateChange, Store

__all__ = ["Intake", "plan_store_chunks"]

LOG = log.getLogger(__name__)

# Above this many transitions in one batch, log a summary instead of one line each.
_LOG_EACH_TRANSITION_UP_TO = 20
#: Transitions per store transaction: a storm is stored and published in overlap.
STORE_CHUNK = 2000

T = TypeVar("T")
Observation = Callable[[LifecycleTracker, datetime.datetime], list[Transition]]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def plan_store_chunks(
        transitions: Sequence[Transition],
        changes: Sequence[StateChange],
        state_key: Callable[[str], str],
        size: int,
) -> list[tuple[Sequence[Transition], list[StateChange]]]:
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


@dataclasses.dataclass(eq=False)
class _Cluster:
    tracker: LifecycleTracker
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    answered: bool = False
    # A store failure left the tracker ahead of the store and the rebuild failed too.
    stale: bool = False


class Intake:
    """Runs the trackers of every cluster and stores what they decide.

    :param trackers: a fresh tracker per cluster name (``make_tracker(name)``
        is also used to rebuild one after a failed store)
    :param store: where events and state records go, one transaction per chunk
    :param transformer: turns transitions into events
    :param db_executor: the one thread the store's calls run in
    :param on_stored: called after each stored chunk (wakes the dispatcher)
    :param chunk: transitions per transaction
    """

    def __init__(self, *, clusters: Sequence[str],
                 make_tracker: Callable[[str], LifecycleTracker], store: Store,
                 transformer: Transformer, db_executor: concurrent.futures.Executor,
                 on_stored: Callable[[], None] = lambda: None,
                 chunk: int = STORE_CHUNK) -> None:
        self._make_tracker = make_tracker
        self._store = store
        self._transformer = transformer
        self._executor = db_executor
        self._on_stored = on_stored
        self._chunk = chunk
        self._clusters = {name: _Cluster(make_tracker(name)) for name in clusters}
        self.accepting = False

    # -- state ---------------------------------------------------------------

    @property
    def tracked(self) -> int:
        """Alarms firing, summed over every cluster."""
        return sum(c.tracker.tracked for c in self._clusters.values())

    def answered(self) -> Mapping[str, bool]:
        """Per cluster: has a replica answered a poll since start-up (readiness)."""
        return {name: c.answered for name, c in self._clusters.items()}

    def tracker(self, cluster: str) -> LifecycleTracker:
        """The cluster's current tracker (read-only use: checks, tests)."""
        return self._clusters[cluster].tracker

    async def restore(self) -> None:
        """Load the stored state into every tracker (at start, before any observation)."""
        states = await self._db(self._store.load_states)
        for cluster in self._clusters.values():
            cluster.tracker.restore(states)
        orphans: dict[str, int] = {}
        for record in states:
            name = record.get("cluster")
            if name not in self._clusters:
                orphans[str(name)] = orphans.get(str(name), 0) + 1
        # Their alarms are neither resolved nor forgotten: configuring the
        # cluster again picks them up where they were.
        for name, count in sorted(orphans.items()):
            LOG.warning("%d alarm states of Alertmanager cluster %s are kept but not tracked: "
                        "the cluster is no longer configured", count, name)
        telemetry.ALERTS_TRACKED.set(self.tracked)

    # -- observations ----------------------------------------------------------

    async def on_poll(self, result: PollResult) -> None:
        """One poll cycle of a cluster (the poller's ``on_result``).

        A full outbox or a store that fails (database unreachable) is logged
        and the result dropped: Alertmanager still holds the alerts, the next
        poll brings them again, and nothing is resolved meanwhile.
        """
        cluster = self._clusters[result.cluster]
        if any(replica.ok for replica in result.replicas):
            cluster.answered = True
        if not self.accepting:
            return
        try:
            await self._observe(result.cluster,
                                lambda tracker, now: tracker.observe_poll(result, now))
        except (exception.OutboxFull, exception.StoreError) as err:
            LOG.warning("Poll result not taken, %s; retrying at the next poll", err)

    async def on_webhook(self, alerts: list[Alert], source_url: str, cluster: str) -> None:
        """One webhook delivery for a cluster (the receiver's ``on_alerts``).

        :raises OutboxFull: no room, or the relay is stopping (the receiver
            answers 503 and Alertmanager retries)
        :raises StoreError: the database failed; nothing was stored (503 too)
        """
        if not self.accepting:
            raise exception.OutboxFull(depth=-1, limit=-1, message="relay is stopping")
        await self._observe(cluster,
                            lambda tracker, now: tracker.observe_webhook(alerts, now, source_url))

    async def expire(self) -> None:
        """Housekeeping of every tracker (forget old resolved occurrences)."""
        for name in self._clusters:
            try:
                await self._observe(name, lambda tracker, now: tracker.expire(now))
            except (exception.OutboxFull, exception.StoreError) as err:
                LOG.warning("Expiry check of cluster %s postponed, %s", name, err)

    async def run_housekeeping(self, interval: float) -> None:
        """Call :meth:`expire` every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire()
            except Exception:
                LOG.exception("Expiry check failed")

    async def drain(self) -> None:
        """Stop taking observations and wait for the ones being stored now."""
        self.accepting = False
        for cluster in self._clusters.values():
            async with cluster.lock:
                pass

    # -- one observation ---------------------------------------------------------

    async def _observe(self, name: str, observe: Observation) -> None:
        """Run one observation through a cluster's tracker and store its events.

        Only this cluster's lock is held, also while resolvers are awaited.
        """
        cluster = self._clusters[name]
        async with cluster.lock:
            if cluster.stale:
                cluster.tracker = await self._rebuild(name)
                cluster.stale = False
            await self._db(self._store.check_room)
            tracker = cluster.tracker
            transitions = observe(tracker, utcnow())
            for transition in transitions:
                telemetry.TRANSITIONS.labels(kind=transition.kind,
                                             reason=transition.reason or "").inc()
            # State can change without a transition (which replicas hold an
            # alarm, a refreshed endsAt); it is stored too, so a restart during
            # an Alertmanager outage does not resume from stale state.
            if transitions or tracker.pending_changes:
                try:
                    await self._store_transitions(tracker, transitions)
                except BaseException:
                    # Until rebuilt from the store, the tracker holds transitions
                    # never stored: the next observation must not start from it.
                    cluster.stale = True
                    cluster.tracker = await self._rebuild(name)
                    cluster.stale = False
                    raise
        telemetry.ALERTS_TRACKED.set(self.tracked)

    async def _store_transitions(self, tracker: LifecycleTracker,
                                 transitions: list[Transition]) -> None:
        """Transform and store, chunk by chunk, so publishing starts early.

        Each chunk's events are committed with the state of the alarms whose
        last transition is in that chunk: if a later chunk fails, the stored
        state never runs ahead of the stored events.
        """
        plan = plan_store_chunks(transitions, tracker.export_changes(),
                                 tracker.state_key, self._chunk)
        for batch, states in plan:
            events = await self._transform(batch)
            await self._db(self._store.put, events, states)
            self._on_stored()
        _log_transitions(transitions)

    async def _transform(self, transitions: Sequence[Transition]) -> list[AlarmEvent]:
        transformer = self._transformer
        if transformer.has_resolvers:
            # Resolvers wait on the network: resolve the batch concurrently.
            events = await asyncio.gather(*(transformer.transform(t) for t in transitions))
        else:
            # Nothing to wait for: no task, not even a coroutine, per transition.
            transform = transformer.transform_sync
            events = [transform(t) for t in transitions]
        return [event for event in events if event is not None]

    async def _rebuild(self, name: str) -> LifecycleTracker:
        tracker = self._make_tracker(name)
        tracker.restore(await self._db(self._store.load_states))
        return tracker

    async def _db(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)


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
