"""Drain the outbox to the broker: in order per alarm, in parallel across alarms.

The :class:`Dispatcher` lives on the event loop and never blocks it: every
outbox call runs in the service's single DB executor thread, every publish in
its :class:`~daemon.publish.sender.Sender` (threads of this process, or child
processes). It keeps a bounded window of unsent events in memory,
one lane (a FIFO) per ``alarm_id``:

- an alarm's next event is sent only after the broker confirmed the previous
  one; lanes of different alarms are sent in parallel, up to ``threads``
  sends in flight;
- a confirmed event is acknowledged (removed from the outbox) in batches; an
  event that was sent but not yet acknowledged when the process dies is sent
  again after restart with the same ``event_id`` (at-least-once);
- a recoverable failure puts the event back at the head of its lane and
  pauses all sending (the broker is most likely down): exponential backoff
  with jitter, then one probe send at a time until one succeeds, then full
  speed again. A failure that resending cannot fix (an event oslo.messaging
  refuses) holds only that alarm's lane and is retried every
  ``hold_seconds``; nothing is ever dropped.

Logging fits an outage of hours: one WARNING when publishing starts failing,
one INFO when it recovers (with the counts), successes at DEBUG and an INFO
summary at most every ``summary_interval`` seconds.

The dispatcher is the one writer of ``alarm_relay_outbox_depth`` and
``alarm_relay_outbox_oldest_age_seconds``: every read and acknowledgement
updates them, and :meth:`Dispatcher.watch_store` refreshes them while nothing
moves (a broker outage).

Several relays (issue 15): the dispatcher sends only the events of the units
this relay owns (:meth:`Dispatcher.set_units`). A unit taken over brings the
backlog its previous owner left; a unit given up stops being read (sends in
flight finish: the new owner may send them again, under the same event_id).

This module is longer than the others on purpose: the lanes, the window, the
backoff and the batched acknowledgements are one state machine on the event
loop, and its invariants (order per alarm, nothing dropped) read best in one
place.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import random
import time
from typing import Any

from oslo_log import log

from daemon import exception, telemetry
from daemon.pipeline.event import AlarmEvent
from daemon.publish.sender import JobResult, Sender
from daemon.store import Store

__all__ = ["Dispatcher"]

LOG = log.getLogger(__name__)


class Dispatcher:
    """Sends the outbox's events through a :class:`~daemon.publish.sender.Sender`.

    :param outbox: the open outbox (called only in ``db_executor``)
    :param sender: sends the jobs (:class:`~daemon.publish.sender.ThreadSender`
        or :class:`~daemon.publish.process.ProcessSender`)
    :param db_executor: the single thread that owns the outbox
    :param threads: most jobs in flight (at most the sender's threads)
    :param window: most unconfirmed events held in memory
    :param batch_size: most events read from the outbox at once
    :param ack_batch: confirmed events acknowledged per outbox write
    :param ack_delay: longest wait before a partial batch is acknowledged
    :param backoff_initial: first pause after a recoverable failure
    :param backoff_max: longest pause between attempts while failing
    :param hold_seconds: pause of one alarm's lane after an unrecoverable failure
    :param poll_interval: how often the outbox is re-read without :meth:`wake`
    :param summary_interval: seconds between INFO summaries of published events
    :param max_chunk: most events one publishing thread sends in a row per job
    :param units: the units whose events are sent (None: every event, a single
        relay); changed with :meth:`set_units`
    """

    def __init__(self, outbox: Store, sender: Sender, *,
                 db_executor: concurrent.futures.Executor,
                 threads: int,
                 window: int | None = None,
                 batch_size: int = 500,
                 ack_batch: int = 500,
                 ack_delay: float = 0.1,
                 backoff_initial: float = 0.5,
                 backoff_max: float = 30.0,
                 hold_seconds: float = 300.0,
                 poll_interval: float = 1.0,
                 summary_interval: float = 60.0,
                 max_chunk: int = 64,
                 units: frozenset[str] | None = None) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._outbox = outbox
        self._sender = sender
        self._db_executor = db_executor
        self._threads = threads
        self._batch_size = batch_size
        self._window = window if window is not None else max(4000, 4 * batch_size)
        self._ack_batch = ack_batch
        self._ack_delay = ack_delay
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._hold_seconds = hold_seconds
        self._poll_interval = poll_interval
        self._summary_interval = summary_interval
        self._max_chunk = max_chunk

        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None
        self._depth_changed: asyncio.Event | None = None
        self._running = False
        # Read state.
        self._cursor = 0
        self._more = True               # the outbox may hold unread events
        self._wake_gen = 0
        self._refill: asyncio.Future | None = None
        self._last_read = 0.0
        # Lanes: alarm_id -> events not yet sent; `_ready` holds each alarm
        # whose head can go now (lane non-empty, not busy, not held), once.
        self._lanes: dict[str, collections.deque[AlarmEvent]] = {}
        self._ready: collections.deque[str] = collections.deque()
        self._busy: set[str] = set()
        self._held: dict[str, float] = {}
        self._loaded = 0                # in memory, not yet acknowledged
        self._known: set[str] = set()   # their event ids (a re-read skips them)
        self._units = units
        self._units_gen = 0             # bumped by set_units: older reads are dropped
        self._queued = 0                # in lanes, waiting to be sent
        self._counters: dict[str, Any] = {}
        self._inflight: set[asyncio.Future] = set()
        # Acknowledgements.
        self._to_ack: list[str] = []
        self._to_ack_since = 0.0
        self._ack: asyncio.Future | None = None
        self._depth: int | None = None  # last depth the outbox reported
        self.store_ok = True            # the last periodic read of the store worked
        # Failure handling.
        self._failures = 0              # consecutive recoverable failures
        self._epoch = 0                 # bumped by every backoff decision
        self._retry_at = 0.0
        self._outage_started: float | None = None
        self._outage_failures = 0
        self._last_error = ""
        # Summary.
        self._published = 0
        self._summary_at = time.monotonic()

    # -- public -----------------------------------------------------------

    @property
    def depth(self) -> int | None:
        """Events in the outbox at the last read or acknowledgement (None before any)."""
        return self._depth

    def backlog(self, limit: int) -> str | None:
        """Why polls should wait: more than ``limit`` events unsent (0: never).

        The answer for ``[publisher] pause_polls_above``, given to the pollers.
        """
        depth = self._depth
        if not limit or depth is None or depth <= limit:
            return None
        return f"{depth} events wait in the outbox ([publisher] pause_polls_above {limit})"

    async def wait_backlog(self, limit: int, max_wait: float) -> None:
        """Return once at most ``limit`` events wait in the outbox (call on the loop).

        The pace of a storm's storing (``Intake``'s ``pace``, ``[publisher]
        store_ahead``): storing all of it at once takes the CPU the publishing
        needs, while stored events only wait behind the backlog. Returns at
        once when ``limit`` is 0, when sending fails (a broker outage: everything
        is stored as it comes) or when the dispatcher is not running, and after
        ``max_wait`` seconds in any case.

        :param limit: events (count) the outbox may hold
        :param max_wait: longest wait, in seconds
        """
        self._attach()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        changed = self._depth_changed
        assert changed is not None
        while (limit and self._running and not self._failures
               and self._depth is not None and self._depth > limit):
            left = deadline - loop.time()
            if left <= 0:
                return
            changed.clear()
            # Woken by every read and acknowledgement; the slice bounds a wait
            # that no acknowledgement ends (run() stopping, a failure starting).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, 0.5))

    def wake(self) -> None:
        """Tell the dispatcher new events were put; safe from any thread."""
        self._wake_gen += 1
        self._more = True
        loop, kick = self._loop, self._kick
        if loop is None or kick is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            kick.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(kick.set)

    def set_units(self, units: frozenset[str]) -> None:
        """Send the events of these units only, from now on (call on the loop).

        The events queued in memory are dropped and the outbox is read again
        from its start, so a unit taken over brings its whole backlog, in order,
        and a unit given up is sent no more. Sends in flight finish.
        """
        if units == self._units:
            return
        self._units = frozenset(units)
        self._units_gen += 1
        for alarm_id, lane in self._lanes.items():
            if alarm_id in self._busy:
                continue
            for event in lane:
                self._known.discard(event.event_id)
            self._loaded -= len(lane)
            self._queued -= len(lane)
            lane.clear()
        self._lanes = {alarm_id: lane for alarm_id, lane in self._lanes.items() if lane
                       or alarm_id in self._busy}
        self._ready = collections.deque(a for a in self._ready if self._lanes.get(a))
        self._cursor = 0
        self._more = True
        self._wake_gen += 1
        self._kick_now()

    async def run(self, stop: asyncio.Event) -> None:
        """Send events until ``stop`` is set.

        On return, confirmed events are acknowledged; sends still in flight
        finish in their threads and are acknowledged by :meth:`drain` (or
        sent again after a restart).

        :param stop: set to end the loop
        """
        self._attach()
        self._running = True
        watcher = asyncio.ensure_future(self._kick_on(stop))
        LOG.info("dispatcher started (%d sends in flight at most)", self._threads)
        try:
            await self._pump(lambda: stop.is_set())
        finally:
            self._running = False
            watcher.cancel()
            await self._flush_acks()
            LOG.info("dispatcher stopped (%d events in memory unsent, %d in flight)",
                     self._loaded - len(self._to_ack), len(self._inflight))

    async def watch_store(self, interval: float = 5.0) -> None:
        """Refresh the outbox gauges and :attr:`store_ok` every ``interval`` seconds.

        Runs until cancelled; a failing read is logged and makes ``store_ok``
        false (``/readyz`` reports it), the next one that works makes it true.
        """
        loop = asyncio.get_running_loop()
        store = self._outbox
        while True:
            try:
                units = self._units
                depth = await loop.run_in_executor(self._db_executor, store.depth, units)
                age = await loop.run_in_executor(self._db_executor, store.oldest_age,
                                                 time.time(), units)
                self._set_gauges(depth, age)
                if not self.store_ok:
                    LOG.info("The outbox is readable again")
                self.store_ok = True
            except exception.StoreError as err:
                # The database is down: said once, not at every interval.
                if self.store_ok:
                    LOG.warning("The outbox is not readable: %s", err)
                self.store_ok = False
            except Exception:
                self.store_ok = False
                LOG.exception("The outbox is not readable")
            await asyncio.sleep(interval)

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - the contract
        """Send what can be sent within ``timeout`` seconds, for shutdown.

        :param timeout: seconds to try
        :returns: True when the outbox is empty
        """
        self._attach()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        self._more = True
        if self._running:
            # run() is sending: watch it until the outbox is empty.
            while not self._is_empty() and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
            return self._is_empty()
        self._running = True
        try:
            await self._pump(lambda: self._is_empty() or loop.time() >= deadline,
                             deadline=deadline)
        finally:
            self._running = False
            await self._flush_acks()
        empty = self._is_empty()
        if not empty:
            LOG.warning("shutdown with %s events unsent; they are sent after restart",
                        self._depth if self._depth is not None else "some")
        return empty

    # -- the loop ---------------------------------------------------------

    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._kick = asyncio.Event()
            self._depth_changed = asyncio.Event()

    async def _kick_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        assert self._kick is not None
        self._kick.set()

    async def _pump(self, done: Any, deadline: float | None = None) -> None:
        loop = self._loop
        kick = self._kick
        assert loop is not None and kick is not None
        while not done():
            now = loop.time()
            mono = time.monotonic()
            self._release_holds(now)
            self._maybe_refill(mono)
            self._launch(now)
            self._maybe_ack(mono)
            self._maybe_summarise(mono)
            if done():
                break
            delay = self._next_timer(now, mono)
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - now))
            kick.clear()
            timer = loop.call_later(delay, kick.set)
            try:
                await kick.wait()
            finally:
                timer.cancel()

    def _next_timer(self, now: float, mono: float) -> float:
        delay = self._poll_interval
        if self._to_ack:
            delay = min(delay, max(0.0, self._to_ack_since + self._ack_delay - mono))
        if self._retry_at > now:
            delay = min(delay, self._retry_at - now)
        if self._held:
            delay = min(delay, max(0.0, min(self._held.values()) - now))
        return max(delay, 0.001)

    def _is_empty(self) -> bool:
        return (self._loaded == 0 and not self._inflight and not self._to_ack
                and self._ack is None and self._refill is None
                and not self._more and self._depth == 0)

    # -- reading ----------------------------------------------------------

    def _maybe_refill(self, mono: float) -> None:
        if self._refill is not None:
            return
        if not self._more and mono - self._last_read >= self._poll_interval:
            self._more = True
        room = self._window - self._loaded
        if not self._more or room < min(self._batch_size, self._window) // 2:
            return
        assert self._loop is not None
        self._last_read = mono
        gen = self._wake_gen
        limit = min(self._batch_size, room)
        units, units_gen = self._units, self._units_gen
        fut = self._loop.run_in_executor(self._db_executor, self._read,
                                         self._cursor, limit, units)
        self._refill = fut
        fut.add_done_callback(lambda f: self._on_read(f, limit, gen, units_gen))

    def _read(self, cursor: int, limit: int, units: frozenset[str] | None,
              ) -> tuple[list[AlarmEvent], int, int, float | None]:
        """DB thread: the next events and the outbox's depth and oldest age."""
        if units is None:  # a single relay: the calls it always made
            events, cursor = self._outbox.pending_after(cursor, limit)
            return events, cursor, self._outbox.depth(), self._outbox.oldest_age(time.time())
        events, cursor = self._outbox.pending_after(cursor, limit, units=units)
        return (events, cursor, self._outbox.depth(units),
                self._outbox.oldest_age(time.time(), units))

    def _on_read(self, fut: asyncio.Future, limit: int, gen: int, units_gen: int) -> None:
        self._refill = None
        self._kick_now()
        if fut.cancelled():
            return
        err = fut.exception()
        if err is not None:
            LOG.error("reading the outbox failed: %s", err)
            return
        if units_gen != self._units_gen:
            return  # read for the units before set_units: read again
        events, self._cursor, depth, age = fut.result()
        self._set_gauges(depth, age)
        if len(events) < limit and gen == self._wake_gen:
            self._more = False
        lanes, busy, held, known = self._lanes, self._busy, self._held, self._known
        if self._units is not None:
            # Read again after set_units: what is still in memory is not queued twice.
            events = [event for event in events if event.event_id not in known]
            known.update(event.event_id for event in events)
        for event in events:
            lane = lanes.get(event.alarm_id)
            if lane is None:
                lane = lanes[event.alarm_id] = collections.deque()
            if not lane and event.alarm_id not in busy and event.alarm_id not in held:
                self._ready.append(event.alarm_id)
            lane.append(event)
        self._loaded += len(events)
        self._queued += len(events)

    # -- sending ----------------------------------------------------------

    def _launch(self, now: float) -> None:
        if now < self._retry_at:
            return
        # After a failure only one probe (of one event) is in flight until it succeeds.
        probing = self._failures > 0
        limit = 1 if probing else self._threads
        loop = self._loop
        assert loop is not None
        ready, lanes, busy = self._ready, self._lanes, self._busy
        # Small jobs while the backlog is small (latency), up to max_chunk when
        # it is large (per-job overhead on the loop, the wake-ups of this thread
        # and of the publishing thread, is paid once). The backlog is shared out
        # over all the threads, not only the free ones, so that the last jobs of
        # a backlog end together.
        size = 1 if probing else max(1, min(self._max_chunk, self._queued // limit))
        while ready and len(self._inflight) < limit:
            # A job is a run of events one thread sends one after the other: the
            # whole lane of an alarm (or as much as fits), then the next alarm's.
            job: list[AlarmEvent] = []
            while ready and len(job) < size:
                alarm_id = ready.popleft()
                lane = lanes[alarm_id]
                take = size - len(job)
                if take >= len(lane):
                    job.extend(lane)
                    lane.clear()
                else:
                    job.extend(lane.popleft() for _ in range(take))
                busy.add(alarm_id)
            self._queued -= len(job)
            fut = asyncio.wrap_future(self._sender.submit(job), loop=loop)
            self._inflight.add(fut)
            fut.add_done_callback(
                lambda f, j=job, epoch=self._epoch: self._on_sent(f, j, epoch))

    def _on_sent(self, fut: asyncio.Future, job: list[AlarmEvent], epoch: int) -> None:
        self._inflight.discard(fut)
        self._kick_now()
        err: BaseException | None
        if fut.cancelled():
            sent, err = 0, exception.PublishError(problem="send cancelled", recoverable=True)
        elif fut.exception() is not None:
            sent, err = 0, fut.exception()
        else:
            result: JobResult = fut.result()
            sent, err = result
        alarms = dict.fromkeys(e.alarm_id for e in job)  # in job order
        busy = self._busy
        for alarm_id in alarms:
            busy.discard(alarm_id)
        if sent:
            self._on_success(job if sent == len(job) else job[:sent])
        if err is not None:
            self._on_failure(job[sent:], err, epoch)
        # Alarms with events left go back in line.
        lanes, ready, held = self._lanes, self._ready, self._held
        for alarm_id in alarms:
            lane = lanes.get(alarm_id)
            if lane:
                if alarm_id not in held and alarm_id not in ready:
                    ready.append(alarm_id)
            elif lane is not None:
                del lanes[alarm_id]

    def _on_failure(self, unsent: list[AlarmEvent], err: BaseException, epoch: int) -> None:
        event = unsent[0]
        if not isinstance(err, exception.PublishError):
            LOG.error("unexpected error publishing event %s: %r", event.event_id, err)
            err = exception.PublishError(problem=repr(err), recoverable=True)
        # Back to the heads of their lanes, in their order.
        for back in reversed(unsent):
            self._lanes[back.alarm_id].appendleft(back)
        self._queued += len(unsent)
        telemetry.PUBLISH_FAILURES.labels(
            recoverable="true" if err.recoverable else "false").inc()
        if err.recoverable:
            self._ready.appendleft(event.alarm_id)
            self._on_outage(err, stale=epoch != self._epoch)
        else:
            assert self._loop is not None
            self._held[event.alarm_id] = self._loop.time() + self._hold_seconds
            LOG.error("event %s (%s, alarm %s): %s; it stays in "
                      "the outbox and this alarm's events wait %.0f s before retrying",
                      event.event_id, event.event_type, event.alarm_id, err,
                      self._hold_seconds)

    def _on_success(self, sent: list[AlarmEvent]) -> None:
        if not self._to_ack:
            self._to_ack_since = time.monotonic()
        self._to_ack.extend(e.event_id for e in sent)
        self._published += len(sent)
        by_type: dict[str, int] = {}
        for event in sent:
            by_type[event.event_type] = by_type.get(event.event_type, 0) + 1
        counters = self._counters
        for event_type, count in by_type.items():
            counter = counters.get(event_type)
            if counter is None:
                counter = counters[event_type] = telemetry.EVENTS_PUBLISHED.labels(
                    event_type=event_type)
            counter.inc(count)
        if LOG.isEnabledFor(log.DEBUG):
            for event in sent:
                LOG.debug("event published: %s %s alarm %s sequence %d",
                          event.event_id, event.event_type, event.alarm_id, event.sequence)
        if self._failures:
            assert self._outage_started is not None
            LOG.info("publishing resumed after %.1f s: %d failed attempts, "
                     "%s events waiting in the outbox",
                     time.monotonic() - self._outage_started, self._outage_failures,
                     self._depth if self._depth is not None else "?")
            self._failures = 0
            self._outage_started = None
            self._outage_failures = 0
            self._retry_at = 0.0

    def _on_outage(self, err: exception.PublishError, *, stale: bool) -> None:
        """Count a recoverable failure and schedule the next attempt.

        :param stale: the send started before the last backoff decision; it
            is counted but does not lengthen the backoff (the sends in flight
            when the broker went away all fail together)
        """
        assert self._loop is not None
        self._outage_failures += 1
        if stale and self._failures:
            LOG.debug("%s (send started before the backoff)", err)
            return
        self._failures += 1
        self._epoch += 1
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            LOG.warning("%s; events stay in the outbox (%s unsent) "
                        "and are retried with backoff until the broker takes them",
                        err, self._depth if self._depth is not None else "?")
        elif str(err) != self._last_error:
            LOG.debug("%s (again)", err)
        self._last_error = str(err)
        exp = min(self._failures - 1, 30)
        delay = min(self._backoff_max, self._backoff_initial * (2 ** exp))
        delay *= random.uniform(0.5, 1.0)
        self._retry_at = self._loop.time() + delay

    def _release_holds(self, now: float) -> None:
        if not self._held:
            return
        for alarm_id, until in list(self._held.items()):
            if until <= now:
                del self._held[alarm_id]
                if self._lanes.get(alarm_id) and alarm_id not in self._busy:
                    self._ready.append(alarm_id)

    # -- acknowledging ----------------------------------------------------

    def _maybe_ack(self, mono: float) -> None:
        if self._ack is not None or not self._to_ack:
            return
        if (len(self._to_ack) < self._ack_batch and self._inflight
                and mono - self._to_ack_since < self._ack_delay):
            return
        self._start_ack()

    def _start_ack(self) -> asyncio.Future:
        assert self._loop is not None
        ids, self._to_ack = self._to_ack, []
        fut = self._loop.run_in_executor(self._db_executor, self._write_acks, ids)
        self._ack = fut
        fut.add_done_callback(lambda f: self._on_acked(f, ids))
        return fut

    def _write_acks(self, ids: list[str]) -> tuple[int, float | None]:
        """DB thread: remove confirmed events; the outbox's depth and oldest age."""
        self._outbox.ack(ids)
        units = self._units
        if units is None:
            return self._outbox.depth(), self._outbox.oldest_age(time.time())
        return self._outbox.depth(units), self._outbox.oldest_age(time.time(), units)

    def _on_acked(self, fut: asyncio.Future, ids: list[str]) -> None:
        self._ack = None
        self._kick_now()
        err = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or err is not None:
            LOG.error("acknowledging %d sent events in the outbox failed: %s; "
                      "retrying (a crash now would send them again)", len(ids), err)
            if not self._to_ack:
                self._to_ack_since = time.monotonic()
            self._to_ack[:0] = ids
            return
        self._loaded -= len(ids)
        self._known.difference_update(ids)
        self._set_gauges(*fut.result())

    async def _flush_acks(self) -> None:
        while self._ack is not None or self._to_ack:
            fut = self._ack if self._ack is not None else self._start_ack()
            try:
                await asyncio.shield(fut)
            except Exception:
                return  # logged by _on_acked; the ids are kept for later
            if self._ack is fut:
                # Done, but its done-callback (_on_acked, which clears _ack) has
                # not run yet: awaiting a done future does not yield to the loop,
                # so without this the loop would spin here forever. One turn of
                # the loop runs it (it was scheduled when the future finished).
                await asyncio.sleep(0)

    # -- helpers ----------------------------------------------------------

    def _kick_now(self) -> None:
        if self._kick is not None:
            self._kick.set()

    def _set_gauges(self, depth: int, age: float | None) -> None:
        self._depth = depth
        if self._depth_changed is not None:
            self._depth_changed.set()
        telemetry.OUTBOX_DEPTH.set(depth)
        telemetry.OUTBOX_OLDEST_AGE.set(age or 0.0)

    def _maybe_summarise(self, mono: float) -> None:
        if mono - self._summary_at < self._summary_interval:
            return
        if self._published:
            LOG.info("%d events published in the last %.0f s; %s waiting in the outbox",
                     self._published, mono - self._summary_at,
                     self._depth if self._depth is not None else "?")
        self._published = 0
        self._summary_at = mono
