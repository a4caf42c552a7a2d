"""Benchmark: events per second from the outbox to the broker, next to a raw publish loop.

Both paths send the same realistic events (DESIGN.md payload, ~1.5 KB) through the
same oslo.messaging notification transport with the same number of threads:

- raw: ``threads`` threads call ``Notifier.publish`` (one confirmed publish each)
  in a tight loop, nothing else;
- outbox: the events are stored in a fresh SQLite outbox first (timed separately as
  ``put_eps``), then the :class:`~daemon.publish.Dispatcher` drains it with
  ``threads`` publishing threads: read, send in order per alarm, acknowledge.
  With ``--store postgresql`` (or ``mariadb``) the outbox is an SQLStore on a fresh
  database of the machine's shared server instead (created, synced, dropped at the end),
  as several relays share one (issue 15).

Runs alternate, raw first in odd rounds and outbox first in even ones, so drift on
the machine hits both. Reported: the best run of each and their ratio (``ratio``),
and the median of the ratios of the two runs of each round (``ratio_median``, the
steadier figure on a busy machine). Also the CPU time this process spent per event
in each path (``*_cpu_us_per_event``; the outbox figure counts the drain only, not
the put) and how busy all the machine's cores were (``machine_busy``, 1.0 = every
core): a confirmed publish costs CPU both here and in the broker, so on a small
machine the rate is set by CPU, not by the confirm round trip. Messages go to a
unique exchange and topic on the broker, whose queue is deleted at the end.

    .venv/bin/python benchmarks/bench_publish.py [--url rabbit://...] [--events 12000]
        [--threads 8] [--rounds 4] [--alarms 500] [--store sqlite|postgresql|mariadb]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import daemon  # noqa: E402,F401 - selects the oslo.service backend first
from daemon.publish import (  # noqa: E402
    Dispatcher,
    Notifier,
    ProcessSender,
    ThreadSender,
)
from daemon.store import SQLiteStore, SQLStore, Store, migration  # noqa: E402
from daemon.store.sql import create_engine  # noqa: E402
from tests.functional.publish.helpers import alarm_event, relay_config  # noqa: E402
from tools.harness.bus import delete_entities  # noqa: E402


def make_events(count: int, alarms: int) -> list:
    """``count`` events over ``alarms`` alarms, interleaved as transitions happen."""
    events = []
    for i in range(count):
        alarm_no, step = i % alarms, i // alarms
        events.append(alarm_event(alarm_no=alarm_no, sequence=step + 1,
                                  kind="firing" if step == 0 else "updated", minute=step))
    return events


def cpu_seconds() -> float:
    """CPU time of this process so far (all threads, user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot; None where /proc is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


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
               workdir: str, cpu: list | None = None,
               database_url: str | None = None,
               processes: int = 0, conf: Any = None) -> tuple[float, float]:
    """Fill a fresh outbox, then drain it; returns (drain events/s, put events/s).

    :param cpu: if given, the CPU seconds of the drain are appended to it (this
        process's only: not the publishing processes')
    :param database_url: an SQLStore on this (empty, synced) database instead of
        a fresh SQLite file
    :param processes: send from this many child processes ([publisher]
        publish_processes, configured by ``conf``); 0: from ``threads`` threads here
    """
    path = os.path.join(workdir, f"outbox-{uuid.uuid4().hex[:6]}.sqlite")
    outbox: Store
    if database_url:
        outbox = SQLStore(database_url, max_events=len(events) + 1,
                          engine_options={"max_retries": 0})
    else:
        outbox = SQLiteStore(path, max_events=len(events) + 1)
    outbox.open()
    try:
        started = time.perf_counter()
        for i in range(0, len(events), 100):
            outbox.put(events[i:i + 100])
        put_eps = len(events) / (time.perf_counter() - started)
        db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="db")
        pub = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="pub")
        sender: ThreadSender | ProcessSender = ThreadSender(notifier, pub)
        if processes:
            sender = ProcessSender(conf, processes=processes, threads=threads)
            sender.open()
            assert sender.wait_ready(60), "publishing processes did not start"
        try:
            dispatcher = Dispatcher(outbox, sender, db_executor=db, threads=threads)

            async def drain() -> float:
                started = time.perf_counter()
                assert await dispatcher.drain(600), "outbox not drained"
                return time.perf_counter() - started

            cpu_before = cpu_seconds()
            elapsed = asyncio.run(drain())
            if cpu is not None:
                cpu.append(cpu_seconds() - cpu_before)
        finally:
            if isinstance(sender, ProcessSender):
                sender.close()
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
    parser.add_argument("--events", type=int, default=12000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--processes", type=int, default=0,
                        help="drain the outbox from this many publishing processes "
                        "([publisher] publish_processes; 0: threads of this process)")
    parser.add_argument("--alarms", type=int, default=500)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "mariadb"),
                        default="sqlite", help="the outbox's database (default: the "
                        "embedded SQLite file of a single relay)")
    args = parser.parse_args(argv)
    database = None
    if args.store != "sqlite":
        from tools.harness.databases import MariaDBDatabase, PostgresDatabase

        database = (PostgresDatabase() if args.store == "postgresql"
                    else MariaDBDatabase()).create()
        engine = create_engine(database.url, max_retries=0)
        migration.upgrade(engine)   # alarm-relay-manage db sync
        engine.dispose()
    try:
        return _main(args, database.url if database else None)
    finally:
        if database is not None:
            database.drop()


def _main(args: argparse.Namespace, database_url: str | None) -> int:

    name = f"bench-{uuid.uuid4().hex[:8]}"
    exchange, topic = f"{name}-x", f"{name}-alarms"
    raw, drained, puts, ratios = [], [], [], []
    raw_cpu: list[float] = []
    drain_cpu: list[float] = []
    ticks_start = None
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as workdir:
        conf = relay_config(Path(workdir), args.url, exchange=exchange, topic=topic,
                            publisher={"send_retry": 3})
        notifier = Notifier(conf)
        notifier.open()
        try:
            # Warm up: connections in the pool, exchange and queue declared.
            run_raw(notifier, make_events(args.threads * 50, args.alarms), args.threads)
            ticks_start = machine_ticks()
            for round_no in range(args.rounds):
                for path in ("raw", "outbox") if round_no % 2 == 0 else ("outbox", "raw"):
                    events = make_events(args.events, args.alarms)
                    if path == "raw":
                        cpu_before = cpu_seconds()
                        raw.append(run_raw(notifier, events, args.threads))
                        raw_cpu.append(cpu_seconds() - cpu_before)
                    else:
                        eps, put_eps = run_outbox(notifier, events, args.threads, workdir,
                                                  drain_cpu, database_url,
                                                  processes=args.processes, conf=conf)
                        drained.append(eps)
                        puts.append(put_eps)
                ratios.append(drained[-1] / raw[-1])
                print(f"round {round_no + 1}: raw {raw[-1]:.0f}/s, outbox->broker "
                      f"{drained[-1]:.0f}/s ({ratios[-1]:.2f}x), outbox put "
                      f"{puts[-1]:.0f}/s", flush=True)
            ticks_end = machine_ticks()
        finally:
            notifier.close()
            delete_entities(args.amqp_url, exchanges=[exchange], queues=[f"{topic}.info"])
    busy = None
    if ticks_start and ticks_end and ticks_end[1] > ticks_start[1]:
        busy = (ticks_end[0] - ticks_start[0]) / (ticks_end[1] - ticks_start[1])

    def us_per_event(seconds: list[float]) -> float:
        return round(statistics.median(seconds) / args.events * 1e6, 1)

    result = {
        "benchmark": "publish",
        "store": args.store,
        "events": args.events,
        "threads": args.threads,
        "alarms": args.alarms,
        "rounds": args.rounds,
        "raw_eps": round(max(raw)),
        "outbox_eps": round(max(drained)),
        "ratio": round(max(drained) / max(raw), 3),
        "ratio_median": round(statistics.median(ratios), 3),
        "outbox_put_eps": round(max(puts)),
        "raw_eps_runs": [round(x) for x in raw],
        "outbox_eps_runs": [round(x) for x in drained],
        "raw_cpu_us_per_event": us_per_event(raw_cpu),
        "outbox_cpu_us_per_event": us_per_event(drain_cpu),
        "cores": os.cpu_count(),
        "machine_busy": None if busy is None else round(busy, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
