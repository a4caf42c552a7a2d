"""Issue 5, must show 1 and 3: a consumer gets every event in order; the outbox survives a crash."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

from daemon.publish import Dispatcher, Notifier, ThreadSender
from daemon.store import SQLiteStore
from tests.functional.publish.helpers import incident, relay_config
from tools.harness.bus import Consumer

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def executors():
    db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="test-db")
    pub = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="test-pub")
    yield db, pub
    pub.shutdown(wait=True)
    db.shutdown(wait=True)


def _first_seen_in_order(received):
    """Per alarm, the first delivery of each event comes in sequence order."""
    seen, last = set(), {}
    for _, _, payload, _ in received:
        if payload["event_id"] in seen:
            continue
        seen.add(payload["event_id"])
        assert last.get(payload["alarm_id"], 0) < payload["sequence"], payload
        last[payload["alarm_id"]] = payload["sequence"]


async def test_consumer_receives_scripted_incident(tmp_path, rabbit_url, names, executors):
    exchange, topic = names
    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    events = incident(alarms=6, updates=3)
    outbox = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=1000)
    outbox.open()
    notifier = Notifier(conf)
    notifier.open()
    db, pub = executors
    loop = asyncio.get_running_loop()
    try:
        with Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
            dispatcher = Dispatcher(outbox, ThreadSender(notifier, pub), db_executor=db,
                                    threads=4)
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop))
            # Transitions arrive over time, a few per put, as the service stores them.
            for i in range(0, len(events), 5):
                await loop.run_in_executor(db, outbox.put, events[i:i + 5])
                dispatcher.wake()
                await asyncio.sleep(0.01)
            got_all = await loop.run_in_executor(
                None, consumer.collector.wait_for, len(events), 30)
            assert await dispatcher.drain(10)
            stop.set()
            await task
            received = list(consumer.collector.received)
    finally:
        notifier.close()
        outbox.close()
    assert got_all, f"{len(received)} of {len(events)} received"
    by_id = {p["event_id"]: (pub_id, etype, p, meta) for pub_id, etype, p, meta in received}
    assert set(by_id) == {e.event_id for e in events}
    for event in events:
        publisher_id, event_type, payload, metadata = by_id[event.event_id]
        assert publisher_id == "alarm-relay:relay-test"
        assert event_type == event.event_type
        assert payload == event.payload
        assert metadata["message_id"] == event.event_id
        assert metadata["timestamp"]
    _first_seen_in_order(received)


_CRASHING_WRITER = textwrap.dedent("""
    import json, sys, time
    import daemon
    from daemon.store import SQLiteStore
    from tests.functional.publish.helpers import incident
    box = SQLiteStore(sys.argv[1], max_events=1000)
    box.open()
    events = incident(alarms=5, updates=2)
    for i in range(0, len(events), 4):
        box.put(events[i:i + 4], states=[("k%d" % i, {"i": i})])
    print(json.dumps([e.event_id for e in events]), flush=True)
    time.sleep(300)   # killed here, before any dispatcher ran
""")


def _put_then_sigkill(path: str) -> list[str]:
    """A process stores events and state, then is SIGKILLed before sending any."""
    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_WRITER, path],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return json.loads(line)


async def test_outbox_survives_sigkill(tmp_path, rabbit_url, names, executors):
    exchange, topic = names
    path = str(tmp_path / "state.sqlite")
    event_ids = await asyncio.wait_for(
        asyncio.get_running_loop().run_in_executor(None, _put_then_sigkill, path), 60)

    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    outbox = SQLiteStore(path, max_events=1000)
    outbox.open()
    notifier = Notifier(conf)
    notifier.open()
    db, pub = executors
    try:
        assert outbox.depth() == len(event_ids)
        assert len(outbox.load_states()) == len(range(0, len(event_ids), 4))
        with Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
            dispatcher = Dispatcher(outbox, ThreadSender(notifier, pub), db_executor=db,
                                    threads=4)
            assert await dispatcher.drain(30)
            got_all = await asyncio.get_running_loop().run_in_executor(
                None, consumer.collector.wait_for, len(event_ids), 30)
            received = consumer.collector.event_ids()
    finally:
        notifier.close()
        outbox.close()
    assert got_all
    assert sorted(set(received)) == sorted(event_ids)
