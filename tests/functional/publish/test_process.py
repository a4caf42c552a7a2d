"""Issue 16: publishing from child processes ([publisher] publish_processes), on the real broker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import time

import pytest

from daemon.publish import Dispatcher, ProcessSender
from daemon.store import SQLiteStore
from tests.functional.publish.helpers import incident, relay_config
from tools.harness.bus import Consumer


@pytest.fixture
def outbox(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=100_000)
    store.open()
    yield store
    store.close()


@pytest.fixture
def db():
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="test-db")
    yield executor
    executor.shutdown(wait=True)


@contextlib.asynccontextmanager
async def started(conf, **kwargs):
    """A ProcessSender whose children are ready; closed (its children ended) on exit."""
    loop = asyncio.get_running_loop()
    sender = ProcessSender(conf, **kwargs)
    sender.open()
    try:
        assert await loop.run_in_executor(None, sender.wait_ready, 60)
        yield sender
    finally:
        await loop.run_in_executor(None, sender.close)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_child_process_publishes_every_event_in_order(tmp_path, rabbit_url, names,
                                                                outbox, db):
    exchange, topic = names
    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    events = incident(alarms=20, updates=3)
    loop = asyncio.get_running_loop()
    with Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
        async with started(conf, processes=2, threads=4) as sender:
            pids = sender.pids
            await loop.run_in_executor(db, outbox.put, events)
            dispatcher = Dispatcher(outbox, sender, db_executor=db, threads=4)
            assert await dispatcher.drain(30)
            assert await loop.run_in_executor(None, consumer.collector.wait_for,
                                              len(events), 30)
        received = list(consumer.collector.received)
    # Sent by two other processes, which end with the sender.
    assert len(pids) == 2 and os.getpid() not in pids
    assert not any(_alive(pid) for pid in pids)
    by_id = {payload["event_id"]: (publisher_id, payload)
             for publisher_id, _, payload, _ in received}
    assert set(by_id) == {e.event_id for e in events}
    for event in events:
        publisher_id, payload = by_id[event.event_id]
        assert publisher_id == "alarm-relay:relay-test"
        assert payload == event.payload
    last: dict[str, int] = {}
    for _, _, payload, _ in received:
        assert last.get(payload["alarm_id"], 0) < payload["sequence"], payload
        last[payload["alarm_id"]] = payload["sequence"]


async def test_a_killed_child_is_replaced_and_no_event_is_lost(tmp_path, rabbit_url, names,
                                                                outbox, db):
    exchange, topic = names
    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    events = incident(alarms=200, updates=8)   # 2,000 events
    loop = asyncio.get_running_loop()
    with Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
        async with started(conf, processes=1, threads=4, restart_delay=0.2) as sender:
            (first,) = sender.pids
            await loop.run_in_executor(db, outbox.put, events)
            dispatcher = Dispatcher(outbox, sender, db_executor=db, threads=4,
                                    backoff_initial=0.05, backoff_max=0.5)
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop))
            # Killed while it sends: its jobs in flight fail, a new child takes over.
            await loop.run_in_executor(None, consumer.collector.wait_for, 200, 30)
            os.kill(first, signal.SIGKILL)
            got_all = await loop.run_in_executor(None, _wait_distinct, consumer,
                                                 len(events), 60)
            assert await dispatcher.drain(30)
            stop.set()
            await task
            replacement = sender.pids
    assert got_all, f"{len(set(consumer.collector.event_ids()))} of {len(events)} received"
    assert replacement and first not in replacement
    assert set(consumer.collector.event_ids()) == {e.event_id for e in events}
    assert outbox.depth() == 0


def _wait_distinct(consumer: Consumer, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(set(consumer.collector.event_ids())) >= count:
            return True
        time.sleep(0.1)
    return False


async def test_a_job_cancelled_before_its_reply_does_not_stop_the_child(tmp_path, rabbit_url,
                                                                         names):
    """asyncio.wrap_future cancels the job's future with the awaiting side; the reply
    that comes later must not end the thread that serves the child."""
    exchange, topic = names
    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    events = incident(alarms=40, updates=1)
    loop = asyncio.get_running_loop()
    with Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
        async with started(conf, processes=1, threads=2) as sender:
            cancelled = sender.submit(events[:40])
            assert cancelled.cancel()
            assert await loop.run_in_executor(None, consumer.collector.wait_for, 40, 30)
            later = sender.submit(events[40:])
            sent, err = await asyncio.wrap_future(later)
            pids = sender.pids
    assert (sent, err) == (len(events) - 40, None)
    assert len(pids) == 1
