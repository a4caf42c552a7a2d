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

Several relays (issue 15): the trackers are per ownership unit (a cluster, or
one of its ``[coordination] partitions``), and the intake holds only the units
this relay owns (:meth:`Intake.take`, :meth:`Intake.release`, driven by the
ownership stage). A poll is observed for the owned units only, each keeping
the alerts of its partition; every write is fenced with the unit's epoch, and a
fenced write (another relay claimed the unit) drops the unit at once. A webhook
delivery for a unit owned elsewhere goes to the shared inbox, which the owner
drains (:meth:`Intake.run_inbox`) and deletes in the transaction that stores
its results: a delivery answered 200 is handled exactly once. Without
coordination, every cluster is one unit owned from the start, never fenced.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from oslo_log import log

from daemon import exception, telemetry
from daemon.coordination import cluster_units, partition_of, unit_name
from daemon.heap import LongLivedHeap
from daemon.lifecycle import LifecycleTracker, Transition
from daemon.model import Alert, PollResult
from daemon.pipeline.event import AlarmEvent
from daemon.pipeline.transformer import Transformer
from daemon.store import InboxItem, Store

__all__ = ["Intake", "alert_from_json", "alert_to_json", "plan_store_chunks"]

LOG = log.getLogger(__name__)

#: Inbox deliveries taken per unit and look (each is stored in its own transaction).
INBOX_BATCH = 50
# Above this many transitions in one batch, log a summary instead of one line each.
_LOG_EACH_TRANSITION_UP_TO = 20
#: Transitions per store transaction: a storm is stored and published in overlap.
STORE_CHUNK = 2000

T = TypeVar("T")
V = TypeVar("V")
Observation = Callable[[LifecycleTracker, datetime.datetime], list[Transition]]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def plan_store_chunks(
        transitions: Sequence[Transition],
        changes: Sequence[tuple[str, V]],
        state_key: Callable[[str], str],
        size: int,
) -> list[tuple[Sequence[Transition], list[tuple[str, V]]]]:
    """Split one observation's transitions and state records into transactions.

    A state record goes with the chunk holding the last transition of its
    alarm, and records without a transition go with the last chunk: if a
    later chunk fails, the stored state never runs ahead of the stored events.

    :param changes: ``(key, value)`` per changed record: the record itself,
        or what builds it (the intake passes the fingerprint, and builds each
        chunk's records when it stores that chunk)
    :returns: ``(transitions, changes)`` per transaction; at least one
    """
    pending = dict(changes)
    chunk_of_key: dict[str, int] = {}
    for index, transition in enumerate(transitions):
        chunk_of_key[state_key(transition.alert.fingerprint)] = index // size
    count = max(1, -(-len(transitions) // size))
    # One pass over the keys, not one per chunk: a storm of 50,000 alarms in 25
    # chunks walked 1.25 million entries on the loop before its first chunk.
    states: list[list[tuple[str, V]]] = [[] for _ in range(count)]
    last = count - 1
    for key, chunk in chunk_of_key.items():
        if chunk != last and key in pending:
            states[chunk].append((key, pending.pop(key)))
    states[last] = list(pending.items())
    return [(transitions[chunk * size:(chunk + 1) * size], states[chunk])
            for chunk in range(count)]


def alert_to_json(alert: Alert) -> dict[str, Any]:
    """An alert as a JSON-able dict, for the shared inbox (:func:`alert_from_json` reads it).

    The fingerprint travels with it, so the owner sees the very alert the
    receiving relay parsed (replica labels already left out).
    """
    return {"fingerprint": alert.fingerprint, "labels": dict(alert.labels),
            "annotations": dict(alert.annotations), "startsAt": _time(alert.starts_at),
            "endsAt": _time(alert.ends_at), "status": alert.status, "state": alert.state,
            "silencedBy": list(alert.silenced_by), "inhibitedBy": list(alert.inhibited_by),
            "generatorURL": alert.generator_url, "updatedAt": _time(alert.updated_at)}


def alert_from_json(obj: Mapping[str, Any]) -> Alert:
    """The alert :func:`alert_to_json` wrote."""
    return Alert(obj["fingerprint"], dict(obj["labels"]), dict(obj["annotations"]),
                 _parse(obj["startsAt"]), _parse(obj["endsAt"]), obj["status"], obj["state"],
                 tuple(obj["silencedBy"]), tuple(obj["inhibitedBy"]), obj["generatorURL"],
                 _parse(obj["updatedAt"]))


def _time(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


class _NotOwned(Exception):
    """The unit was released (or never taken) before the observation ran."""


@dataclasses.dataclass(eq=False)
class _Unit:
    cluster: str
    tracker: LifecycleTracker
    fence: int | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    # A store failure left the tracker ahead of the store and the rebuild failed too.
    stale: bool = False


class Intake:
    """Runs the trackers of the units this relay owns and stores what they decide.

    :param clusters: the configured cluster names
    :param make_tracker: a fresh tracker for a cluster name (also used to rebuild
        one after a failed store)
    :param store: where events and state records go, one transaction per chunk
    :param transformer: turns transitions into events
    :param db_executor: the one thread the store's calls run in
    :param on_stored: called after each stored chunk (wakes the dispatcher)
    :param chunk: transitions per transaction
    :param coordinated: several relays share the store: no unit is owned until
        :meth:`take`, and every write is fenced
    :param partitions: ``[coordination] partitions``
    :param on_fenced: called with a unit whose write was fenced (it is already
        dropped here; the ownership stage steps down)
    :param heap: freezes the heap after the tracked alarms grew a lot
        (:mod:`daemon.heap`)
    :param pace: awaited with the ``time.monotonic()`` the storing began, before
        each chunk of one poll's observation after its first (the service's: while
        the outbox holds more than ``[publisher] store_ahead`` events, at most
        ``pause_polls_max`` seconds in all); never for webhook deliveries, the
        inbox or expiry, nor with several relays (the unit's lock, held until the
        last chunk, is what ownership checks wait on); None: no pacing
    """

    def __init__(self, *, clusters: Sequence[str],
                 make_tracker: Callable[[str], LifecycleTracker], store: Store,
                 transformer: Transformer, db_executor: concurrent.futures.Executor,
                 on_stored: Callable[[], None] = lambda: None,
                 chunk: int = STORE_CHUNK, coordinated: bool = False, partitions: int = 1,
                 on_fenced: Callable[[str], None] = lambda unit: None,
                 heap: LongLivedHeap | None = None,
                 pace: Callable[[float], Awaitable[None]] | None = None) -> None:
        self._make_tracker = make_tracker
        self._pace = pace
        self._store = store
        self._transformer = transformer
        self._executor = db_executor
        self._on_stored = on_stored
        self._on_fenced = on_fenced
        self._chunk = chunk
        self.coordinated = coordinated
        self.partitions = partitions if coordinated else 1
        self._clusters = list(clusters)
        self._answered = dict.fromkeys(clusters, False)
        self._units: dict[str, _Unit] = {}
        if not coordinated:
            self._units = {name: _Unit(name, make_tracker(name)) for name in clusters}
        self.accepting = False
        self._heap = heap or LongLivedHeap()

    # -- state ---------------------------------------------------------------

    @property
    def tracked(self) -> int:
        """Alarms firing, summed over every unit owned."""
        return sum(u.tracker.tracked for u in self._units.values())

    def answered(self) -> Mapping[str, bool]:
        """Per cluster: has a replica answered a poll since start-up (readiness)."""
        return dict(self._answered)

    def owned(self) -> dict[str, int | None]:
        """The units held now, with the epoch their writes are fenced with."""
        return {name: unit.fence for name, unit in self._units.items()}

    def units(self) -> list[str]:
        """Every unit of every configured cluster."""
        return [u for cluster in self._clusters for u in cluster_units(cluster, self.partitions)]

    def tracker(self, unit: str) -> LifecycleTracker:
        """The current tracker of a unit owned (read-only use: checks, tests)."""
        return self._units[unit].tracker

    def unit_of(self, cluster: str, fp: str) -> str:
        """The unit an alarm of ``cluster`` belongs to."""
        return unit_name(cluster, partition_of(fp, self.partitions), self.partitions)

    def _cluster_of_unit(self, unit: str) -> str:
        return unit.rpartition("/")[0] if self.partitions > 1 else unit

    async def restore(self) -> None:
        """Load the stored state into every tracker (single relay, at start).

        With coordination, nothing is owned at start: :meth:`take` loads a unit.
        """
        if self.coordinated:
            return
        states = await self._db(self._store.load_states)
        for unit in self._units.values():
            unit.tracker.restore(states)
        orphans: dict[str, int] = {}
        for record in states:
            name = record.get("cluster")
            if name not in self._units:
                orphans[str(name)] = orphans.get(str(name), 0) + 1
        # Their alarms are neither resolved nor forgotten: configuring the
        # cluster again picks them up where they were.
        for name, count in sorted(orphans.items()):
            LOG.warning("%d alarm states of Alertmanager cluster %s are kept but not tracked: "
                        "the cluster is no longer configured", count, name)
        telemetry.ALERTS_TRACKED.set(self.tracked)

    async def take(self, unit: str, epoch: int) -> int:
        """Own ``unit`` from now on: load its state; writes are fenced with ``epoch``.

        :returns: how many alarms of the unit are firing
        :raises StoreError: its state did not load (the unit is not taken)
        """
        cluster = self._cluster_of_unit(unit)
        tracker = self._make_tracker(cluster)
        tracker.restore(await self._unit_states(unit, cluster))
        self._units[unit] = _Unit(cluster, tracker, epoch)
        telemetry.ALERTS_TRACKED.set(self.tracked)
        return tracker.tracked

    async def _unit_states(self, unit: str, cluster: str) -> list[dict[str, Any]]:
        if self.partitions == 1:
            return await self._db(self._store.load_states, [unit])
        # With partitions, the records a single relay wrote (`db copy` gives them their
        # cluster as unit) or written while partitions was 1 are found under the
        # cluster's name: each partition takes its own from there too, and stores them
        # under its unit at their next change.
        records = await self._db(self._store.load_states, [unit, cluster])
        return [r for r in records
                if self.unit_of(cluster, str(r.get("fingerprint", ""))) == unit]

    async def verify(self, name: str) -> bool:
        """Is ``name`` still ours? An empty write fenced with its epoch says.

        The ownership stage asks at every check, so a relay that was paused or
        cut off learns it lost a unit even when it has nothing to write.

        :returns: False when the unit is not owned here (any more); a fenced
            write is counted and the unit dropped
        :raises StoreError: the database did not answer (the unit is kept)
        """
        unit = self._units.get(name)
        if unit is None:
            return False
        if unit.fence is None:
            return True
        async with unit.lock:
            if self._units.get(name) is not unit:
                return False
            try:
                await self._db(functools.partial(self._store.put, [], (), unit=name,
                                                 fence=unit.fence))
            except exception.FencedWrite as err:
                self._fenced(name, unit, err)
                return False
        return True

    async def release(self, unit: str) -> None:
        """Stop owning ``unit``: an observation being stored for it finishes first."""
        held = self._units.get(unit)
        if held is None:
            return
        async with held.lock:
            if self._units.get(unit) is held:
                del self._units[unit]
        telemetry.ALERTS_TRACKED.set(self.tracked)

    # -- observations ----------------------------------------------------------

    async def on_poll(self, result: PollResult) -> None:
        """One poll cycle of a cluster (the poller's ``on_result``).

        Observed for the cluster's units owned here, each with the alerts of
        its partition. A full outbox or a store that fails (database
        unreachable) is logged and the result dropped: Alertmanager still holds
        the alerts, the next poll brings them again, and nothing is resolved
        meanwhile.
        """
        if any(replica.ok for replica in result.replicas):
            self._answered[result.cluster] = True
        if not self.accepting:
            return
        for name in [n for n, u in self._units.items() if u.cluster == result.cluster]:
            part = result if self.partitions == 1 else self._partition(result, name)
            try:
                await self._observe(name,
                                    lambda tracker, now, r=part: tracker.observe_poll(r, now),
                                    paced=True)
            except (exception.OutboxFull, exception.StoreError) as err:
                LOG.warning("Poll result not taken, %s; retrying at the next poll", err)
                return
            except (exception.FencedWrite, _NotOwned):
                continue  # a fenced write is counted and logged; the unit is dropped

    def _partition(self, result: PollResult, unit: str) -> PollResult:
        def mine(fp: str) -> bool:
            return self.unit_of(result.cluster, fp) == unit

        replicas = tuple(
            dataclasses.replace(
                replica,
                alerts=None if replica.alerts is None
                else [a for a in replica.alerts if mine(a.fingerprint)],
                invalid=frozenset(fp for fp in replica.invalid if mine(fp)))
            for replica in result.replicas)
        return dataclasses.replace(result, replicas=replicas)

    async def on_webhook(self, alerts: list[Alert], source_url: str, cluster: str) -> None:
        """One webhook delivery for a cluster (the receiver's ``on_alerts``).

        Alerts of units owned here are observed and stored now; the others are
        stored in the shared inbox for their owner. Either way the delivery is
        committed when this returns (the receiver then answers 200).

        :raises OutboxFull: no room, or the relay is stopping (the receiver
            answers 503 and Alertmanager retries)
        :raises StoreError: the database failed; nothing was stored (503: Alertmanager
            retries)
        """
        if not self.accepting:
            raise exception.OutboxFull(depth=-1, limit=-1, message="relay is stopping")
        by_unit: dict[str, list[Alert]] = {}
        for alert in alerts:
            by_unit.setdefault(self.unit_of(cluster, alert.fingerprint), []).append(alert)
        for name, part in by_unit.items():
            if name in self._units:
                try:
                    await self._observe(
                        name, lambda tracker, now, a=part: tracker.observe_webhook(
                            a, now, source_url))
                    continue
                except (exception.FencedWrite, _NotOwned):
                    pass  # no longer ours: its new owner takes it from the inbox
            await self._db(self._store.inbox_put, name, cluster, source_url,
                           [alert_to_json(a) for a in part])
            LOG.debug("Webhook delivery for unit %s (%d alerts) left in the inbox for its owner",
                      name, len(part))

    async def drain_inbox(self, limit: int = INBOX_BATCH) -> int:
        """Observe the deliveries other relays left in the inbox for the units owned.

        Each delivery is stored with its results and deleted in one transaction.

        :returns: how many deliveries were handled
        """
        done = 0
        for name in list(self._units):
            if name not in self._units:
                continue
            items: list[InboxItem] = await self._db(self._store.inbox_take, name, limit)
            for item in items:
                alerts = [alert_from_json(obj) for obj in item.alerts]
                try:
                    await self._observe(
                        name, lambda tracker, now, a=alerts, u=item.source_url:
                        tracker.observe_webhook(a, now, u), inbox_done=[item.id])
                except (exception.FencedWrite, _NotOwned):
                    break
                done += 1
        return done

    async def run_inbox(self, interval: float = 0.2) -> None:
        """Call :meth:`drain_inbox` every ``interval`` seconds, until cancelled."""
        failing = False
        while True:
            try:
                handled = self.accepting and await self.drain_inbox()
            except (exception.OutboxFull, exception.StoreError) as err:
                # Once per outage: the loop looks again every `interval`.
                if not failing:
                    LOG.warning("Inbox deliveries wait: %s", err)
                failing = True
            except Exception:
                LOG.exception("Draining the webhook inbox failed")
            else:
                if failing:
                    LOG.info("Inbox deliveries are taken again")
                failing = False
                if handled:
                    continue  # more may wait: look again at once
            await asyncio.sleep(interval)

    async def expire(self) -> None:
        """Housekeeping of every tracker (forget old resolved occurrences)."""
        for name in list(self._units):
            try:
                await self._observe(name, lambda tracker, now: tracker.expire(now))
            except (exception.OutboxFull, exception.StoreError) as err:
                LOG.warning("Expiry check of unit %s postponed, %s", name, err)
            except (exception.FencedWrite, _NotOwned):
                continue

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
        for unit in list(self._units.values()):
            async with unit.lock:
                pass

    # -- one observation ---------------------------------------------------------

    async def _observe(self, name: str, observe: Observation,
                       inbox_done: Sequence[int] = (), *, paced: bool = False) -> None:
        """Run one observation through a unit's tracker and store its events.

        Only this unit's lock is held, also while resolvers are awaited.

        :raises FencedWrite: another relay owns the unit now; it was dropped here
        :raises _NotOwned: the unit is not owned (any more)
        """
        unit = self._units.get(name)
        if unit is None:
            raise _NotOwned(name)
        async with unit.lock:
            if self._units.get(name) is not unit:
                raise _NotOwned(name)
            if unit.stale:
                unit.tracker = await self._rebuild(name, unit.cluster)
                unit.stale = False
            await self._db(self._store.check_room)
            tracker = unit.tracker
            transitions = observe(tracker, utcnow())
            # One labels() per kind and reason, not per transition.
            counts = collections.Counter((t.kind, t.reason or "") for t in transitions)
            for (kind, reason), count in counts.items():
                telemetry.TRANSITIONS.labels(kind=kind, reason=reason).inc(count)
            # Before the chunks are stored and published, so that their collections
            # do not walk the new alarms again and again.
            self._heap.note_tracked(self.tracked)
            # State can change without a transition (which replicas hold an
            # alarm, a refreshed endsAt); it is stored too, so a restart during
            # an Alertmanager outage does not resume from stale state.
            if transitions or tracker.pending_changes or inbox_done:
                try:
                    await self._store_transitions(name, unit, transitions, inbox_done,
                                                  paced=paced and not self.coordinated)
                except exception.FencedWrite as err:
                    self._fenced(name, unit, err)
                    raise
                except BaseException:
                    # Until rebuilt from the store, the tracker holds transitions
                    # never stored: the next observation must not start from it.
                    unit.stale = True
                    unit.tracker = await self._rebuild(name, unit.cluster)
                    unit.stale = False
                    raise
        telemetry.ALERTS_TRACKED.set(self.tracked)

    def _fenced(self, name: str, unit: _Unit, err: exception.FencedWrite) -> None:
        if self._units.get(name) is unit:
            del self._units[name]
        telemetry.FENCED_WRITES.inc()
        LOG.warning("Stepping down from unit %s: %s (another relay owns it now; nothing "
                    "was stored)", name, err)
        telemetry.ALERTS_TRACKED.set(self.tracked)
        self._on_fenced(name)

    async def _store_transitions(self, name: str, unit: _Unit, transitions: list[Transition],
                                 inbox_done: Sequence[int] = (), *, paced: bool = False,
                                 ) -> None:
        """Transform and store, chunk by chunk, so publishing starts early.

        Each chunk's events are committed with the state of the alarms whose
        last transition is in that chunk: if a later chunk fails, the stored
        state never runs ahead of the stored events. The inbox rows go with
        the last chunk.
        """
        tracker = unit.tracker
        # Each chunk's state records are built when it is stored (the unit's lock
        # keeps the tracker as it is until the last one): 50,000 records built at
        # once were 400,000 objects every full collection walked until the end.
        plan = plan_store_chunks(transitions, tracker.changed_keys(), tracker.state_key,
                                 self._chunk)
        started = time.monotonic()
        for index, (batch, changed) in enumerate(plan):
            if index and paced and self._pace is not None and self.accepting:
                # A storm's chunks are stored as the outbox drains, not all at once:
                # storing takes the CPU the publishing needs (docs/performance.md).
                await self._pace(started)
            states = tracker.export_changes(fp for _, fp in changed)
            events = await self._transform(batch)
            done = inbox_done if index == len(plan) - 1 else ()
            await self._db(functools.partial(self._store.put, events, states, unit=name,
                                             fence=unit.fence, inbox_done=done))
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

    async def _rebuild(self, name: str, cluster: str) -> LifecycleTracker:
        tracker = self._make_tracker(cluster)
        if self.coordinated:
            tracker.restore(await self._unit_states(name, cluster))
        else:
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
