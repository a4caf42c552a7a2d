"""Dispatcher: every event sent and acknowledged, in order per alarm, never dropped."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time

import pytest

from daemon import exception, telemetry
from daemon.publish.dispatcher import Dispatcher
from daemon.publish.sender import ThreadSender
from daemon.store import SQLiteStore
from tests.unit.publish.conftest import make_event


class FakeNotifier:
    """Records sends; checks that no alarm ever has two sends in flight."""

    def __init__(self, *, delay=0.0, jitter=0.0):
        self.delay = delay
        self.jitter = jitter
        self.lock = threading.Lock()
        self.sent = []                  # confirmed, in confirmation order
        self.attempts = 0
        self.inflight = set()
        self.max_parallel = 0
        self.violations = []
        self.fail = None                # callable(event, attempt) -> PublishError | None

    def publish(self, event):
        with self.lock:
            self.attempts += 1
            attempt = self.attempts
            if event.alarm_id in self.inflight:
                self.violations.append(event)
            self.inflight.add(event.alarm_id)
            self.max_parallel = max(self.max_parallel, len(self.inflight))
        try:
            pause = self.delay + random.uniform(0, self.jitter)
            if pause:
                time.sleep(pause)
            error = self.fail(event, attempt) if self.fail else None
            if error is not None:
                raise error
            with self.lock:
                self.sent.append(event)
        finally:
            with self.lock:
                self.inflight.discard(event.alarm_id)


@pytest.fixture
def executors():
    db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="db")
    pub = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="pub")
    yield db, pub
    pub.shutdown(wait=True)
    db.shutdown(wait=True)


@pytest.fixture
def outbox(tmp_path):
    box = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=100000)
    box.open()
    yield box
    box.close()


def _dispatcher(outbox, notifier, executors, threads=8, **kwargs):
    db, pub = executors
    kwargs.setdefault("backoff_initial", 0.01)
    kwargs.setdefault("backoff_max", 0.05)
    return Dispatcher(outbox, ThreadSender(notifier, pub), db_executor=db,
                      threads=threads, **kwargs)


def _incident(alarms=20, per_alarm=10):
    """Events interleaved across alarms as a tracker would put them."""
    events = []
    for seq in range(1, per_alarm + 1):
        for a in range(alarms):
            kind = "alarm.firing" if seq == 1 else (
                "alarm.resolved" if seq == per_alarm else "alarm.updated")
            events.append(make_event(f"alarm-{a}", seq, event_type=kind))
    return events


async def _put(executors, outbox, events, states=()):
    await asyncio.get_running_loop().run_in_executor(executors[0], outbox.put, events, states)


async def _until(predicate, limit=10.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def _assert_ordered(sent):
    last = {}
    for event in sent:
        assert last.get(event.alarm_id, 0) < event.sequence, event
        last[event.alarm_id] = event.sequence


async def _send_all(dispatcher, notifier, events):
    """Run the dispatcher until every event is sent; check none is missing or out of order."""
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _until(lambda: len(notifier.sent) == len(events))
    stop.set()
    await task
    assert sorted(e.event_id for e in notifier.sent) == sorted(e.event_id for e in events)
    _assert_ordered(notifier.sent)
    assert not notifier.violations


async def _depth(executors, outbox):
    return await asyncio.get_running_loop().run_in_executor(executors[0], outbox.depth)


async def test_sends_everything_in_order_per_alarm(outbox, executors):
    events = _incident()
    await _put(executors, outbox, events)
    notifier = FakeNotifier(delay=0.001, jitter=0.003)
    dispatcher = _dispatcher(outbox, notifier, executors, window=50, batch_size=20)
    await _send_all(dispatcher, notifier, events)
    assert notifier.max_parallel > 1          # different alarms in parallel
    assert await _depth(executors, outbox) == 0
    assert telemetry.OUTBOX_DEPTH._value.get() == 0


async def test_wake_after_put_sends_promptly(outbox, executors):
    notifier = FakeNotifier()
    dispatcher = _dispatcher(outbox, notifier, executors, poll_interval=30)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.05)
    event = make_event()
    await _put(executors, outbox, [event])
    started = time.monotonic()
    dispatcher.wake()
    await _until(lambda: notifier.sent, limit=10)
    # Woken, not waiting for the 30 s re-read (a wide bound: a loaded CI machine).
    assert time.monotonic() - started < 10
    stop.set()
    await task
    assert notifier.sent == [event]


async def test_wake_from_another_thread(outbox, executors):
    notifier = FakeNotifier()
    dispatcher = _dispatcher(outbox, notifier, executors, poll_interval=30)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.05)
    event = make_event()

    def put_and_wake():
        outbox.put([event])
        dispatcher.wake()

    await asyncio.get_running_loop().run_in_executor(executors[0], put_and_wake)
    await _until(lambda: notifier.sent, limit=2)
    stop.set()
    await task


async def test_recoverable_failures_are_retried_never_dropped(outbox, executors):
    events = _incident(alarms=5, per_alarm=6)
    await _put(executors, outbox, events)
    notifier = FakeNotifier(delay=0.001)
    # The broker is "down" for the first 40 attempts, then flaky.
    notifier.fail = lambda e, n: (exception.PublishError(problem="down", recoverable=True)
                                  if n <= 40 or n % 7 == 0 else None)
    before = telemetry.PUBLISH_FAILURES.labels(recoverable="true")._value.get()
    dispatcher = _dispatcher(outbox, notifier, executors)
    await _send_all(dispatcher, notifier, events)
    failures = telemetry.PUBLISH_FAILURES.labels(recoverable="true")._value.get() - before
    assert failures == notifier.attempts - len(events) >= 40
    assert await _depth(executors, outbox) == 0


async def test_outage_backs_off_and_logs_once(outbox, executors, caplog):
    caplog.set_level(logging.INFO, logger="daemon.publish.dispatcher")
    await _put(executors, outbox, _incident(alarms=10, per_alarm=1))
    notifier = FakeNotifier()
    down = True
    notifier.fail = lambda e, n: (exception.PublishError(problem="broker down",
                                                         recoverable=True) if down else None)
    dispatcher = _dispatcher(outbox, notifier, executors,
                             backoff_initial=0.02, backoff_max=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(1.0)
    # Backoff: a handful of probes in a second, not a busy loop.
    assert 3 <= notifier.attempts <= 30, notifier.attempts
    down = False
    await _until(lambda: len(notifier.sent) == 10)
    stop.set()
    await task
    warnings = [r for r in caplog.records if "publish failed" in r.getMessage()
                and r.levelname == "WARNING"]
    resumed = [r for r in caplog.records if "publishing resumed" in r.getMessage()]
    assert len(warnings) == 1 and len(resumed) == 1


async def test_unrecoverable_failure_holds_only_its_alarm(outbox, executors):
    bad = make_event("bad", 1)
    after_bad = make_event("bad", 2)
    good = [make_event("good", i) for i in range(1, 6)]
    await _put(executors, outbox, [bad, after_bad, *good])
    notifier = FakeNotifier()
    broken = True
    notifier.fail = lambda e, n: (exception.PublishError(problem="refused", recoverable=False)
                                  if broken and e.alarm_id == "bad" else None)
    dispatcher = _dispatcher(outbox, notifier, executors, hold_seconds=0.3)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _until(lambda: len(notifier.sent) == 5)
    assert all(e.alarm_id == "good" for e in notifier.sent)
    assert await _depth(executors, outbox) == 2     # kept, not dropped
    broken = False
    await _until(lambda: len(notifier.sent) == 7)
    stop.set()
    await task
    assert [e for e in notifier.sent if e.alarm_id == "bad"] == [bad, after_bad]


async def test_unexpected_exception_is_retried(outbox, executors):
    event = make_event()
    await _put(executors, outbox, [event])
    notifier = FakeNotifier()
    notifier.fail = lambda e, n: RuntimeError("bug") if n == 1 else None
    dispatcher = _dispatcher(outbox, notifier, executors)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _until(lambda: notifier.sent == [event])
    stop.set()
    await task


async def test_window_bounds_memory(outbox, executors):
    await _put(executors, outbox, _incident(alarms=50, per_alarm=20))
    notifier = FakeNotifier()
    notifier.fail = lambda e, n: exception.PublishError(problem="down", recoverable=True)
    dispatcher = _dispatcher(outbox, notifier, executors, window=100, batch_size=40)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.3)
    assert 0 < dispatcher._loaded <= 100
    stop.set()
    await task


async def test_loop_is_never_blocked(outbox, executors):
    """Slow sends and a slow outbox never stall other coroutines on the loop."""
    await _put(executors, outbox, _incident(alarms=30, per_alarm=3))
    notifier = FakeNotifier(delay=0.2)
    notifier.fail = lambda e, n: (exception.PublishError(problem="down", recoverable=True)
                                  if n <= 16 else None)
    dispatcher = _dispatcher(outbox, notifier, executors, backoff_initial=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    worst = 0.0
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5
    while loop.time() < end:
        before = loop.time()
        await asyncio.sleep(0.01)
        worst = max(worst, loop.time() - before - 0.01)
    stop.set()
    await task
    assert worst < 0.05, worst


async def test_drain_sends_then_reports_empty(outbox, executors):
    events = _incident(alarms=10, per_alarm=5)
    await _put(executors, outbox, events)
    notifier = FakeNotifier(delay=0.001)
    dispatcher = _dispatcher(outbox, notifier, executors)
    assert await dispatcher.drain(10) is True
    assert len(notifier.sent) == len(events)
    assert await _depth(executors, outbox) == 0
    assert await dispatcher.drain(1) is True


async def test_drain_after_run_stopped(outbox, executors):
    events = _incident(alarms=4, per_alarm=5)
    notifier = FakeNotifier(delay=0.01)
    dispatcher = _dispatcher(outbox, notifier, executors)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _put(executors, outbox, events)
    dispatcher.wake()
    await asyncio.sleep(0.02)
    stop.set()
    await task
    assert await dispatcher.drain(10) is True
    assert sorted(e.event_id for e in notifier.sent) == sorted(e.event_id for e in events)
    _assert_ordered(notifier.sent)
    assert await _depth(executors, outbox) == 0


async def test_drain_while_running(outbox, executors):
    notifier = FakeNotifier(delay=0.001)
    dispatcher = _dispatcher(outbox, notifier, executors)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _put(executors, outbox, _incident(alarms=5, per_alarm=5))
    dispatcher.wake()
    assert await dispatcher.drain(10) is True
    stop.set()
    await task


async def test_drain_gives_up_at_timeout(outbox, executors):
    await _put(executors, outbox, [make_event()])
    notifier = FakeNotifier()
    notifier.fail = lambda e, n: exception.PublishError(problem="down", recoverable=True)
    dispatcher = _dispatcher(outbox, notifier, executors)
    started = time.monotonic()
    assert await dispatcher.drain(0.3) is False
    # Gave up near its timeout instead of retrying on (a wide bound: a loaded CI machine).
    assert time.monotonic() - started < 5
    assert await _depth(executors, outbox) == 1


async def test_restart_resends_unacknowledged(tmp_path, executors):
    """Sent but not acknowledged (crash): sent again with the same event_id."""
    path = str(tmp_path / "s.sqlite")
    events = _incident(alarms=3, per_alarm=2)
    box = SQLiteStore(path, max_events=100)
    box.open()
    box.put(events)
    box.close()   # the first process died before its dispatcher ran
    box = SQLiteStore(path, max_events=100)
    box.open()
    try:
        notifier = FakeNotifier()
        assert await _dispatcher(box, notifier, executors).drain(10) is True
        assert sorted(e.event_id for e in notifier.sent) == sorted(e.event_id for e in events)
    finally:
        box.close()


async def test_counts_published_by_type(outbox, executors):
    counter = telemetry.EVENTS_PUBLISHED.labels(event_type="alarm.resolved")
    before = counter._value.get()
    await _put(executors, outbox, _incident(alarms=3, per_alarm=2))
    assert await _dispatcher(outbox, FakeNotifier(), executors).drain(5)
    assert counter._value.get() == before + 3


async def test_a_backlog_is_shared_out_over_all_threads(outbox, executors, monkeypatch):
    # 4 threads busy with 100 events when 100 more arrive: the first thread
    # free takes a quarter of them, not 64 (the last jobs of a backlog end together).
    await _put(executors, outbox, [make_event(f"alarm-{a}") for a in range(100)])
    notifier = FakeNotifier(delay=0.002)
    dispatcher = _dispatcher(outbox, notifier, executors, threads=4)
    sizes = []
    sender = dispatcher._sender
    submit = sender.submit
    monkeypatch.setattr(sender, "submit", lambda job: sizes.append(len(job)) or submit(job))
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _until(lambda: len(sizes) == 4)
    await _put(executors, outbox, [make_event(f"alarm-{a}", 2) for a in range(100)])
    dispatcher.wake()
    await _until(lambda: len(notifier.sent) == 200)
    stop.set()
    await task
    assert sizes[:4] == [25, 25, 25, 25]
    assert max(sizes[4:]) <= 25
    _assert_ordered(notifier.sent)


@pytest.mark.timeout(10)
async def test_flush_returns_when_the_ack_is_done_before_its_callback_ran(outbox, executors):
    # Issue 13: the acknowledgement finished, but its done-callback (which
    # clears _ack) has not run yet when flushing starts. Awaiting a done
    # future does not yield, so a flush that waits for the callback without
    # yielding spins at 100% CPU forever (a relay that never exits on SIGTERM).
    event = make_event("alarm-1")
    await _put(executors, outbox, [event])
    dispatcher = _dispatcher(outbox, FakeNotifier(), executors)
    dispatcher._attach()
    dispatcher._loaded = 1
    dispatcher._to_ack = [event.event_id]
    fut = dispatcher._start_ack()
    executors[0].submit(lambda: None).result()  # the DB thread wrote the ack
    # One turn of the loop: the executor's result reaches the future, which
    # schedules _on_acked behind this task.
    await asyncio.sleep(0)
    assert fut.done() and dispatcher._ack is fut, "precondition: callback not run yet"

    await dispatcher._flush_acks()

    assert dispatcher._ack is None and not dispatcher._to_ack
    assert outbox.depth() == 0


# -- several relays (issue 15): only the units owned ------------------------------


async def _put_unit(executors, outbox, events, unit):
    await asyncio.get_running_loop().run_in_executor(
        executors[0], lambda: outbox.put(events, (), unit=unit))


async def test_sends_only_the_units_owned_and_a_taken_units_backlog(outbox, executors):
    mine = [make_event(f"a-{i}", 1) for i in range(5)]
    theirs = [make_event(f"b-{i}", seq) for seq in (1, 2) for i in range(5)]
    await _put_unit(executors, outbox, mine, "c/0")
    await _put_unit(executors, outbox, theirs, "c/1")
    notifier = FakeNotifier()
    dispatcher = _dispatcher(outbox, notifier, executors, units=frozenset({"c/0"}),
                             poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await _until(lambda: len(notifier.sent) == 5)
        await asyncio.sleep(0.3)
        assert {e.alarm_id for e in notifier.sent} == {e.alarm_id for e in mine}
        # c/1's owner died: its backlog, stored before the cursor, is sent now, in order.
        dispatcher.set_units(frozenset({"c/0", "c/1"}))
        await _until(lambda: len(notifier.sent) == 15)
        await asyncio.sleep(0.3)
        assert len(notifier.sent) == 15  # re-reading from the start sent nothing twice
        _assert_ordered(notifier.sent)
        # c/0 given up: its new events are not sent here.
        dispatcher.set_units(frozenset({"c/1"}))
        await _put_unit(executors, outbox, [make_event("a-0", 2)], "c/0")
        dispatcher.wake()
        await asyncio.sleep(0.3)
        assert len(notifier.sent) == 15
    finally:
        stop.set()
        await task


async def test_store_outage_is_logged_once_and_its_end_once(tmp_path, executors, caplog):
    class FailingStore(SQLiteStore):
        failures = 3

        def depth(self, units=None):
            if self.failures:
                self.failures -= 1
                raise exception.StoreError(problem="database: connection refused")
            return super().depth(units)

    caplog.set_level(logging.INFO, logger="daemon.publish")
    with FailingStore(str(tmp_path / "s.sqlite"), max_events=10) as store:
        dispatcher = _dispatcher(store, FakeNotifier(), executors)
        watch = asyncio.ensure_future(dispatcher.watch_store(interval=0.01))
        try:
            await _until(lambda: store.failures == 0 and dispatcher.store_ok)
        finally:
            watch.cancel()
    assert caplog.text.count("The outbox is not readable") == 1
    assert "Traceback" not in caplog.text
    assert caplog.text.count("The outbox is readable again") == 1


# -- the pace of a storm's storing ([publisher] store_ahead, issue 16) -------------


@pytest.mark.timeout(20)
async def test_wait_backlog_returns_once_the_outbox_holds_at_most_the_limit(outbox, executors):
    await _put(executors, outbox, [make_event(f"alarm-{a}") for a in range(200)])
    notifier = FakeNotifier(delay=0.002)
    dispatcher = _dispatcher(outbox, notifier, executors, threads=2, ack_batch=10,
                             batch_size=50)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _until(lambda: dispatcher.depth is not None)
    assert dispatcher.depth > 150
    await dispatcher.wait_backlog(50, max_wait=60)
    depth_then, sent_then = dispatcher.depth, len(notifier.sent)
    stop.set()
    await task
    assert depth_then <= 50 and sent_then >= 150
    assert sent_then < 200, "it waited for the whole outbox, not for the limit"


@pytest.mark.timeout(20)
async def test_wait_backlog_does_not_wait_while_publishing_fails(outbox, executors):
    await _put(executors, outbox, [make_event(f"alarm-{a}") for a in range(50)])
    notifier = FakeNotifier()
    notifier.fail = lambda event, attempt: exception.PublishError(problem="broker down",
                                                                  recoverable=True)
    dispatcher = _dispatcher(outbox, notifier, executors, backoff_initial=5, backoff_max=5)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _until(lambda: notifier.attempts > 0 and dispatcher._failures > 0)
    # The test's timeout (20 s) is shorter than the wait allowed: only the outage ends it.
    await dispatcher.wait_backlog(1, max_wait=60)
    assert dispatcher.depth == 50
    stop.set()
    await task


@pytest.mark.timeout(20)
async def test_wait_backlog_ends_after_max_wait_and_when_not_running(outbox, executors):
    await _put(executors, outbox, [make_event(f"alarm-{a}") for a in range(50)])
    gate = threading.Event()
    notifier = FakeNotifier()
    notifier.fail = lambda event, attempt: None if gate.wait(30) else None
    dispatcher = _dispatcher(outbox, notifier, executors)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await _until(lambda: dispatcher.depth == 50 and notifier.attempts > 0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await dispatcher.wait_backlog(1, max_wait=0.3)  # nothing is confirmed: max_wait ends it
    assert loop.time() - began >= 0.3
    assert dispatcher.depth == 50
    stop.set()
    await task
    # Stopped, with 50 events still waiting: no wait at all (the test's timeout is
    # shorter than the max_wait given).
    await dispatcher.wait_backlog(1, max_wait=60)
    assert dispatcher.depth == 50
    gate.set()
