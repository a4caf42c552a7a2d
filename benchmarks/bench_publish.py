"""Benchmark: events per second from the outbox to the broker, next to a raw publish loop.

Both paths send the same realistic events (DESIGN.md payload, ~1.5 KB) through the
same oslo.messaging notification transport with the same number of threads:

- raw: ``threads`` threads call ``Notifier.publish`` (one confirmed publish each)
  in a tight loop, nothing else;
- outbox: the events are stored in a fresh SQLite outbox first (timed separately as
  ``put_eps``), then the :class:`~daemon.publish.Dispatcher` drains it with
  ``threads`` publishing threads: read, send in order per alarm, acknowledge.

Runs alternate (raw, outbox, raw, outbox, ...) so drift on the machine hits both;
the best run of each is reported. Messages go to a unique exchange and topic on
the broker, whose queue is deleted at the end.

    .venv/bin/python benchmarks/bench_publish.py [--url rabbit://...] [--events 20000]
        [--threads 8] [--rounds 2] [--alarms 500]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import daemon  # noqa: E402,F401 - selects the oslo.service backend first
from daemon.publish import Dispatcher, Notifier, Outbox  # noqa: E402
from tests.functional.publish.helpers import alarm_event, relay_config  # noqa: E402
from tests.harness.bus import delete_entities  # noqa: E402


def make_events(count: int, alarms: int) -> list:
    """``count`` events over ``alarms`` alarms, interleaved as transitions happen."""
    events = []
    for i in range(count):
        alarm_no, step = i % alarms, i // alarms
        events.append(alarm_event(alarm_no=alarm_no, sequence=step + 1,
                                  kind="firing" if step == 0 else "updated", minute=step))
    return events


def run_raw(notifier: Notifier, events: list, threads: int) -> float:
    """Confirmed publishes in ``threads`` threads; returns events per second."""
    it = iter(events)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                event = next(it, None)
            if event is None:
                return
            notifier.publish(event)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return len(events) / (time.perf_counter() - started)


def run_outbox(notifier: Notifier, events: list, threads: int,
               workdir: str) -> tuple[float, float]:
    """Fill a fresh outbox, then drain it; returns (drain events/s, put events/s)."""
    path = os.path.join(workdir, f"outbox-{uuid.uuid4().hex[:6]}.sqlite")
    outbox = Outbox(path, max_events=len(events) + 1)
    outbox.open()
    try:
        started = time.perf_counter()
        for i in range(0, len(events), 100):
            outbox.put(events[i:i + 100])
        put_eps = len(events) / (time.perf_counter() - started)
        db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="db")
        pub = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="pub")
        try:
            dispatcher = Dispatcher(outbox, notifier, db_executor=db, publish_executor=pub,
                                    threads=threads)

            async def drain() -> float:
                started = time.perf_counter()
                assert await dispatcher.drain(600), "outbox not drained"
                return time.perf_counter() - started

            elapsed = asyncio.run(drain())
        finally:
            pub.shutdown(wait=True)
            db.shutdown(wait=True)
        assert outbox.depth() == 0
        return len(events) / elapsed, put_eps
    finally:
        outbox.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="rabbit://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//",
                        help="kombu URL of the same broker, to delete the queue at the end")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alarms", type=int, default=500)
    args = parser.parse_args(argv)

    name = f"bench-{uuid.uuid4().hex[:8]}"
    exchange, topic = f"{name}-x", f"{name}-alarms"
    raw, drained, puts = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as workdir:
        conf = relay_config(Path(workdir), args.url, exchange=exchange, topic=topic,
                            publisher={"send_retry": 3})
        notifier = Notifier(conf)
        notifier.open()
        try:
            # Warm up: connections in the pool, exchange and queue declared.
            run_raw(notifier, make_events(args.threads * 50, args.alarms), args.threads)
            for round_no in range(args.rounds):
                events = make_events(args.events, args.alarms)
                raw.append(run_raw(notifier, events, args.threads))
                events = make_events(args.events, args.alarms)
                eps, put_eps = run_outbox(notifier, events, args.threads, workdir)
                drained.append(eps)
                puts.append(put_eps)
                print(f"round {round_no + 1}: raw {raw[-1]:.0f}/s, outbox->broker "
                      f"{drained[-1]:.0f}/s, outbox put {put_eps:.0f}/s", flush=True)
        finally:
            notifier.close()
            delete_entities(args.amqp_url, exchanges=[exchange], queues=[f"{topic}.info"])
    result = {
        "benchmark": "publish",
        "events": args.events,
        "threads": args.threads,
        "alarms": args.alarms,
        "rounds": args.rounds,
        "raw_eps": round(max(raw)),
        "outbox_eps": round(max(drained)),
        "ratio": round(max(drained) / max(raw), 3),
        "outbox_put_eps": round(max(puts)),
        "raw_eps_runs": [round(x) for x in raw],
        "outbox_eps_runs": [round(x) for x in drained],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
