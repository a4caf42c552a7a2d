"""Issue 5, must show 2 and 4: a broker outage loses nothing and never blocks the loop."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures

from daemon import telemetry
from daemon.publish import Dispatcher, Notifier, ThreadSender
from daemon.store import SQLiteStore
from tests.functional.publish.helpers import alarm_event, relay_config
from tools.harness.bus import Consumer

TOTAL = 1000


class Heartbeat:
    """Measures how late a 10 ms sleep wakes up on the loop."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.beats = 0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)
            self.beats += 1


async def test_broker_outage_loses_nothing(tmp_path, rabbit_node, unique_name):
    url = rabbit_node.transport_url
    exchange, topic = f"{unique_name}-x", f"{unique_name}-alarms"
    conf = relay_config(tmp_path, url, exchange=exchange, topic=topic)
    outbox = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=10 * TOTAL)
    outbox.open()
    notifier = Notifier(conf)
    notifier.open()
    db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="test-db")
    pub = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="test-pub")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    failures = telemetry.PUBLISH_FAILURES.labels(recoverable="true")
    # 100 alarms, 10 transitions each: firing, 8 updates, resolved.
    events = [alarm_event(alarm_no=a, sequence=s + 1,
                          kind="firing" if s == 0 else "resolved" if s == 9 else "updated",
                          minute=s)
              for s in range(10) for a in range(100)]
    try:
        with Consumer(url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
            dispatcher = Dispatcher(outbox, ThreadSender(notifier, pub), db_executor=db,
                                    threads=8, backoff_max=2.0)
            task = asyncio.create_task(dispatcher.run(stop))
            heartbeat = Heartbeat()
            beat = asyncio.create_task(heartbeat.run(stop))
            # Before the outage: the path works.
            await loop.run_in_executor(db, outbox.put, events[:100])
            dispatcher.wake()
            assert await loop.run_in_executor(None, consumer.collector.wait_for, 100, 30)

            await loop.run_in_executor(None, rabbit_node.stop_app)
            # Measure from here: rabbitmqctl boots an Erlang VM that takes both CPUs of a
            # small test machine for a moment, which is no lag of ours.
            overall, heartbeat.worst = heartbeat.worst, 0.0
            failed_before = failures._value.get()
            outage_started = loop.time()
            # The other 900 transitions happen while the broker is down.
            for i in range(100, TOTAL, 50):
                await loop.run_in_executor(db, outbox.put, events[i:i + 50])
                dispatcher.wake()
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, 5.0 - (loop.time() - outage_started)))
            depth = await loop.run_in_executor(db, outbox.depth)
            assert depth >= TOTAL - 100 - 8, depth   # nothing confirmed while down
            assert failures._value.get() > failed_before
            lag_while_down = heartbeat.worst

            await loop.run_in_executor(None, rabbit_node.start_app)
            overall = max(overall, heartbeat.worst)
            got_all = await loop.run_in_executor(
                None, consumer.collector.wait_for, TOTAL, 90)
            assert await dispatcher.drain(30)
            stop.set()
            await asyncio.gather(task, beat)
            received = list(consumer.collector.received)
    finally:
        stop.set()
        notifier.close()
        outbox.close()
        pub.shutdown(wait=True)
        db.shutdown(wait=True)

    ids = [p["event_id"] for _, _, p, _ in received]
    assert got_all, f"{len(set(ids))} distinct of {TOTAL}"
    assert set(ids) == {e.event_id for e in events}          # none lost
    by_id = {e.event_id: e for e in events}
    duplicates = [i for i, n in collections.Counter(ids).items() if n > 1]
    for _, _, payload, metadata in received:                 # a duplicate is the same event
        assert payload == by_id[payload["event_id"]].payload
        assert metadata["message_id"] == payload["event_id"]
    seen, last = set(), {}
    for _, _, payload, _ in received:                        # first deliveries in order
        if payload["event_id"] in seen:
            continue
        seen.add(payload["event_id"])
        assert last.get(payload["alarm_id"], 0) < payload["sequence"]
        last[payload["alarm_id"]] = payload["sequence"]
    # While the dispatcher retries against a dead broker the loop stays responsive.
    assert lag_while_down < 0.1, lag_while_down
    assert heartbeat.beats > 500
    overall = max(overall, heartbeat.worst)
    print(f"outage: {len(duplicates)} duplicates, worst loop lag {lag_while_down * 1000:.1f} ms"
          f" while down, {overall * 1000:.1f} ms overall (recovery included)")
