"""Benchmark: alert storm, N new alerts appear in Alertmanager at once -> all N alarm events
confirmed by RabbitMQ.

A real Alertmanager (resolve_timeout 1 h, no webhook receiver: the poll path only) and the
daemon as a process (``[alertmanager] poll_interval`` 1 s, default publisher settings) on the
shared RabbitMQ with a unique exchange and topic.  A queue is bound first (an oslo.messaging
listener started and stopped), so every confirmed event is also counted in the queue.  Then
N alerts (50,000) are POSTed to Alertmanager in batches as fast as it takes them, while the
daemon polls (``--mode live``), or, by default (``--mode preload``), before the daemon starts:
Alertmanager itself needs tens of seconds to take 50,000 alerts here, and "appear at once"
is then only true when they are all there when the daemon first looks; the clock starts
when the daemon process is spawned (its start-up, about 2 s, is included).  The relay's
/metrics is sampled every 0.2 s to time the pieces:

- ``posted_s``: Alertmanager took every batch (its own ingestion; not in the figure
  with ``preload``); ``ready_s``: the daemon answered /readyz 200;
- ``decided_s``: the tracker decided every firing transition (transitions_total);
- ``stored_s``: every event in the outbox or sent (outbox_depth + events_published_total);
- ``confirmed_s``: every event confirmed by the broker (events_published_total) - the figure;
- ``publish_eps``: events confirmed per second between the first and the last confirm;
  ``drain_eps``: the same from ``stored_s`` on (publishing with no intake beside it);
- polls during the storm and their mean duration; Alertmanager's ``GET /api/v2/alerts``
  + ``json.loads`` with all N alerts (its API speed) and its RSS; the relay worker's RSS.

At the end the queue must hold N messages.  Then, in the same run, the fair floor: N raw
confirmed publishes through the relay's ``Notifier`` with 8 threads into a new queue with no
consumer (growing to N, as the storm's), of the events the relay makes of the storm's own
alerts (same mapping and transformer, so the same payloads: about 1,300 bytes of JSON each,
where bench_publish's generic events have 957; ``--floor-events generic`` for those).
The CPU seconds RabbitMQ, Alertmanager and the relay's processes used over the storm, and
the publisher's and RabbitMQ's over the floor, divided by the cores (``*_cpu_per_core_s``):
when that is close to the wall time, the machine's cores, not a wait, set the pace.
Targets: confirmed_s <= 20 s; confirmed_s <= 1.3x N / the floor's rate, and the storm's
publishing rate >= 0.8x the floor's.

    python benchmarks/bench_storm.py [--alerts 50000] [--batch 1000] [--timeout 180]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_publish, common  # noqa: E402
from benchmarks.common import log  # noqa: E402
from tools.harness.relay import RelayProcess  # noqa: E402
from tools.harness.services import Alertmanager, shared_transport_url  # noqa: E402

TARGET_S = 20.0
CORES = os.cpu_count() or 1


class Sampler(threading.Thread):
    """Samples the relay's counters every ``interval`` seconds until stopped."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                text = common.scrape(self.url, timeout=5)
            except Exception:  # noqa: BLE001 - a slow scrape only loses a sample
                text = None
            if text is not None:
                sample = {
                    "decided": common.metric_sum(text, "alarm_relay_transitions_total",
                                                 kind="firing"),
                    "published": common.metric_sum(text, "alarm_relay_events_published_total"),
                    "depth": common.metric_sum(text, "alarm_relay_outbox_depth"),
                    "polls": common.metric_sum(text, "alarm_relay_poll_duration_seconds_count"),
                    "poll_s": common.metric_sum(text, "alarm_relay_poll_duration_seconds_sum"),
                    "tracked": common.metric_sum(text, "alarm_relay_alerts_tracked"),
                }
                # in the outbox or already sent: stored
                sample["stored"] = sample["depth"] + sample["published"]
                self.samples.append((time.monotonic(), sample))
            self.stop.wait(self.interval)

    def latest(self) -> dict[str, float]:
        return self.samples[-1][1] if self.samples else {}

    def first_time(self, key: str, value: float) -> float | None:
        for t, sample in self.samples:
            if sample[key] >= value:
                return t
        return None


def post_all(am: Alertmanager, alerts: list[dict], batch: int) -> list[float]:
    """POST ``alerts`` in batches on one connection; returns each batch's seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", am.port, timeout=60)
    took = []
    try:
        for start in range(0, len(alerts), batch):
            body = json.dumps(alerts[start:start + batch]).encode()
            began = time.monotonic()
            conn.request("POST", "/api/v2/alerts", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"POST /api/v2/alerts: {resp.status}")
            took.append(time.monotonic() - began)
    finally:
        conn.close()
    return took


def am_fetch(am: Alertmanager, rounds: int = 3) -> tuple[float, int]:
    """Median seconds of GET /api/v2/alerts (the relay's query) + json.loads; body bytes."""
    params = "active=true&silenced=true&inhibited=true&unprocessed=true"
    times, size = [], 0
    for _ in range(rounds):
        conn = http.client.HTTPConnection("127.0.0.1", am.port, timeout=60)
        began = time.monotonic()
        conn.request("GET", f"/api/v2/alerts?{params}")
        body = conn.getresponse().read()
        json.loads(body)
        times.append(time.monotonic() - began)
        size = len(body)
        conn.close()
    return statistics.median(times), size


def gc_during(path: Path, relay: RelayProcess) -> dict:
    """The worker's collector pauses over the storm (its last line: it lived longest)."""
    last: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        last[row["pid"]] = row
    if not last:
        return {}
    pid = relay.proc.pid if relay.proc else None
    worker = max((r for p, r in last.items() if p != pid),
                 key=lambda r: sum(r["seconds"]), default=None) or next(iter(last.values()))
    return {"collections": worker["collections"],
            "seconds": [round(x, 3) for x in worker["seconds"]],
            "max_s": [round(x, 3) for x in worker["max_s"]]}


def fair_floor(rabbit: str, events: list, threads: int, workdir: Path) -> dict:
    """The raw confirmed publish rate of ``events``, as the storm publishes them.

    ``threads`` threads call the relay's own ``Notifier.publish`` (one confirmed publish
    each, as in bench_publish's raw path) into a new queue that is bound and has no consumer,
    so it grows to ``len(events)`` messages, as the storm's queue does.  Same run, same broker.
    """
    from daemon.publish import Notifier
    from tests.functional.publish.helpers import relay_config

    name = common.unique_name("bench-floor")
    exchange, topic = f"{name}-x", name
    try:
        with common.TimedConsumer(rabbit, exchange=exchange, topic=topic, conf_dir=workdir):
            pass  # the queue exists, with nobody reading it
        conf = relay_config(workdir, rabbit, exchange=exchange, topic=topic,
                            publisher={"send_retry": 3})
        notifier = Notifier(conf)
        notifier.open()
        try:
            cpu = cpu_now(None)
            began = time.monotonic()
            mine = time.process_time()
            eps = bench_publish.run_raw(notifier, events, threads)
            took = time.monotonic() - began
            publisher_cpu = time.process_time() - mine
            spent = cpu_spent(cpu, cpu_now(None))
        finally:
            notifier.close()
        depth = common.queue_depth(rabbit, f"{topic}.info")
    finally:
        common.delete_entities(rabbit, exchanges=[exchange], queues=[f"{topic}.info"])
    return {"floor_eps": round(eps), "floor_s": round(took, 2), "floor_queue": depth,
            "floor_threads": threads,
            "floor_payload_bytes": round(sum(len(json.dumps(e.payload)) for e in events)
                                         / len(events)),
            "floor_cpu_s": {"publisher": round(publisher_cpu, 2), **spent},
            "floor_cpu_per_core_s": round((publisher_cpu + sum(spent.values()))
                                          / CORES, 2)}


def storm_events(alerts: list[dict], mapping: Path, cluster_url: str) -> list:
    """The events the relay makes of ``alerts`` (one ``alarm.firing`` each), for the floor.

    Built as the relay builds them (``parse_alert``, the same mapping, the transformer), so
    the floor publishes payloads of the storm's own size, not bench_publish's smaller ones.
    """
    from daemon.lifecycle import Transition
    from daemon.model import fingerprint, parse_alert
    from daemon.pipeline.mapping import load_mapping
    from daemon.pipeline.transformer import Transformer

    transformer = Transformer(load_mapping(str(mapping)), host="bench")
    now = dt.datetime.now(dt.UTC)
    events = []
    for i, obj in enumerate(alerts):
        # What GET /api/v2/alerts adds to the POSTed alert.
        answer = {**obj, "fingerprint": fingerprint(obj["labels"]), "receivers": [{"name": "null"}],
                  "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
                  "updatedAt": common.iso(now), "endsAt": common.iso(now + dt.timedelta(hours=1))}
        alert = parse_alert(answer, where=f"alert {i}")
        events.append(transformer.transform_sync(Transition(
            "firing", f"am-storm-{i}", 1, alert, now, "default", cluster_url)))
    return events


def gil_profiler(relay: RelayProcess, out: Path | None) -> subprocess.Popen | None:
    """py-spy sampling which of the relay's threads holds the GIL, until the relay exits."""
    if out is None:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    log(f"py-spy --gil on the relay (pid {relay.proc.pid}) into {out}")
    return subprocess.Popen([str(spy), "record", "--gil", "--subprocesses", "--rate", "100",
                             "--format", "raw", "--output", str(out),
                             "--pid", str(relay.proc.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_now(am: Alertmanager | None, relay: RelayProcess | None = None) -> dict[str, float]:
    """CPU seconds used so far by RabbitMQ, Alertmanager and the relay (its process tree)."""
    rabbit = _rabbitmq_pid()
    now = {"rabbitmq": common.cpu_seconds(rabbit) if rabbit else 0.0}
    if am is not None:
        now["alertmanager"] = common.tree_cpu_seconds(am.pid)
    if relay is not None and relay.proc is not None:
        now["relay"] = common.tree_cpu_seconds(relay.proc.pid)
    return now


@functools.cache
def _rabbitmq_pid() -> int | None:
    # Looked up once: the storm samples CPU every 0.1 s, and finding it walks /proc.
    return common.rabbitmq_pid()


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--mode", choices=("preload", "live"), default="preload",
                        help="preload: Alertmanager holds every alert before the daemon "
                             "starts (timed from its start); live: POSTed while it polls")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds to wait for every event at most")
    parser.add_argument("--floor-threads", type=int, default=8,
                        help="publishing threads of the fair floor (the relay's default "
                             "[publisher] publish_threads)")
    parser.add_argument("--floor-events", choices=("storm", "generic"), default="storm",
                        help="what the floor publishes: the events the relay makes of the "
                             "storm's alerts (the same payloads), or bench_publish's smaller "
                             "generic ones (the floor of the earlier sessions)")
    parser.add_argument("--no-gc-stats", dest="gc_stats", action="store_false",
                        help="do not count the daemon's collector pauses (benchmarks/gcstats)")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the fair floor (raw publishes of as many events)")
    parser.add_argument("--gil-profile", type=Path, metavar="FILE",
                        help="attach py-spy --gil to the relay over the storm and write its "
                             "collapsed stacks (samples of the thread holding the GIL) here")
    common.add_relay_option_argument(parser)
    args = parser.parse_args(argv)
    extra = common.relay_options(parser, args.relay_option)

    def with_extra(sections: dict[str, dict]) -> dict[str, dict]:
        return common.with_relay_options(sections, extra)
    n = args.alerts

    rabbit = shared_transport_url()
    name = common.unique_name("bench-storm")
    exchange, topic = f"{name}-x", name
    queue = f"{topic}.info"
    now = dt.datetime.now(dt.UTC)
    alerts = [common.api_alert(i, "storm", starts=now - dt.timedelta(seconds=i % 600))
              for i in range(n)]
    result: dict = {"benchmark": "storm", "mode": args.mode, "alerts": n, "batch": args.batch,
                    "poll_interval_s": args.poll_interval, "target_s": TARGET_S}
    if extra:
        result["relay_options"] = extra
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        workdir = Path(tmp)
        mapping = common.write_mapping(workdir)
        try:
            # Bind the queue (as a consumer would), then leave the messages in it.
            with common.TimedConsumer(rabbit, exchange=exchange, topic=topic,
                                      conf_dir=workdir):
                pass
            # Alertmanager's own default timers, not the harness's 1 s ones: with a
            # 1 s group_interval it re-notifies (to the null receiver) every group
            # every second, about a core of CPU at 50,000 alerts, taken from the
            # daemon and the broker on a small machine.
            with Alertmanager(resolve_timeout="1h", group_wait="30s", group_interval="5m",
                              workdir=workdir / "am") as am:
                am_url = am.url
                gc_file = workdir / "gc-stats.jsonl"
                # An A/B run can put another checkout's daemon first on PYTHONPATH.
                path = os.pathsep.join(p for p in (str(Path(__file__).parent / "gcstats"),
                                                   os.environ.get("PYTHONPATH")) if p)
                gc_env = ({"PYTHONPATH": path, "BENCH_GC_STATS": str(gc_file)}
                          if args.gc_stats else None)

                def make_relay(where: str) -> RelayProcess:
                    return RelayProcess(
                        mapping_path=mapping, transport_url=rabbit, alertmanager_urls=[am.url],
                        workdir=workdir / where, env=gc_env,
                        sections=with_extra({
                            "DEFAULT": {"control_exchange": exchange},
                            "oslo_messaging_notifications": {"topics": topic},
                            # Alertmanager needs seconds to answer with 50,000 alerts
                            "alertmanager": {"poll_interval": args.poll_interval,
                                             "timeout": 30.0},
                            "lifecycle": {"resolve_grace_period": 3600},
                        }))

                # The daemon's RSS with nothing tracked (a start of its own).
                with make_relay("relay-idle") as idle:
                    common.wait_for(lambda: idle.get("/readyz")[0] == 200, timeout=30,
                                    what="/readyz 200")
                    rss_before = common.relay_worker_rss(idle.proc.pid)
                am_rss_before = common.rss_bytes(am.pid)
                relay = make_relay("relay")
                if args.mode == "preload":
                    began = time.monotonic()
                    batches = post_all(am, alerts, args.batch)
                    posted = time.monotonic()
                    result["posted_s"] = round(posted - began, 2)
                    log(f"{n} alerts posted in {posted - began:.1f}s; starting the daemon")
                    began = time.monotonic()  # the figure starts when the daemon does
                    cpu_began = cpu_now(am)
                    relay.start(wait_ready=False)
                    spy = gil_profiler(relay, args.gil_profile)
                    sampler = Sampler(relay.url)
                    sampler.start()
                    base = {k: 0.0 for k in ("decided", "stored", "published", "polls",
                                             "poll_s")}
                    common.wait_for(lambda: relay.get("/readyz")[0] == 200, timeout=60,
                                    what="/readyz 200")
                    result["ready_s"] = round(time.monotonic() - began, 2)
                else:
                    relay.start()
                    spy = gil_profiler(relay, args.gil_profile)
                    common.wait_for(lambda: relay.get("/readyz")[0] == 200, timeout=30,
                                    what="/readyz 200")
                    sampler = Sampler(relay.url)
                    sampler.start()
                    time.sleep(0.5)
                    base = sampler.latest()
                    began = time.monotonic()
                    cpu_began = cpu_now(am, relay)
                    batches = post_all(am, alerts, args.batch)
                    posted = time.monotonic()
                    result["posted_s"] = round(posted - began, 2)
                    log(f"{n} alerts posted in {posted - began:.1f}s")
                try:
                    cpu_done = cpu_began
                    deadline = began + args.timeout
                    while time.monotonic() < deadline:
                        latest = sampler.latest()
                        if latest.get("published", 0) - base.get("published", 0) >= n:
                            break
                        cpu_done = cpu_now(am, relay)
                        if relay.proc.poll() is not None:
                            raise RuntimeError(f"alarm-relay exited:\n{relay.log()[-3000:]}")
                        time.sleep(0.1)
                    time.sleep(0.5)
                    sampler.stop.set()
                    sampler.join(10)
                    done = sampler.latest()

                    def since(key: str, value: float) -> float | None:
                        at = sampler.first_time(key, base[key] + value)
                        return None if at is None else round(at - began, 2)

                    result.update({
                        "post_batch_median_ms": round(statistics.median(batches) * 1000, 1),
                        "decided_s": since("decided", n),
                        "first_stored_s": since("stored", 1),
                        "stored_s": since("stored", n),
                        "first_confirmed_s": since("published", 1),
                        "confirmed_s": since("published", n),
                        "published": int(done["published"] - base["published"]),
                        "stored": int(done["stored"] - base["stored"]),
                        "max_outbox_depth": int(max(s["depth"] for _, s in sampler.samples)),
                        "polls": int(done["polls"] - base["polls"]),
                        "mean_poll_s": (round((done["poll_s"] - base["poll_s"])
                                              / (done["polls"] - base["polls"]), 3)
                                        if done["polls"] > base["polls"] else None),
                        "tracked": int(done["tracked"]),
                    })
                    # When each poll ended (its count rose), and the outbox's depth then:
                    # a poll during the drain costs both sides CPU the publishing needs.
                    samples = sampler.samples
                    result["polls_ended"] = [
                        {"at_s": round(t - began, 2), "depth": int(s["depth"])}
                        for (_, prev), (t, s) in zip(samples, samples[1:], strict=False)
                        if s["polls"] > prev["polls"]]
                    first, last = result["first_confirmed_s"], result["confirmed_s"]
                    if first is not None and last is not None and last > first:
                        result["publish_eps"] = round(n / (last - first))
                    # The rate once every transition was stored: publishing with no
                    # intake beside it (what is left of the relay's cost then is its own).
                    stored_at = result["stored_s"]
                    if stored_at is not None and last is not None and last > stored_at:
                        confirmed_then = next(
                            (s["published"] - base["published"] for t, s in samples
                             if t - began >= stored_at), None)
                        if confirmed_then is not None:
                            result["drain_eps"] = round((n - confirmed_then)
                                                        / (last - stored_at))
                    rss_after = common.relay_worker_rss(relay.proc.pid)
                    # CPU until the last sample before every event was confirmed: within
                    # 0.1 s of the end, and the relay's processes are still all alive.
                    storm_cpu = cpu_spent(cpu_began, cpu_done)
                    result["storm_cpu_s"] = storm_cpu
                    result["storm_cpu_per_core_s"] = round(sum(storm_cpu.values()) / CORES, 2)
                finally:
                    sampler.stop.set()
                    relay.stop()
                    if spy is not None:
                        try:  # it stops when the relay exits, and writes the file
                            spy.wait(30)
                        except subprocess.TimeoutExpired:
                            spy.kill()
                if args.gc_stats and gc_file.exists():
                    result["relay_gc"] = gc_during(gc_file, relay)
                result["relay_rss_idle_bytes"] = rss_before
                result["relay_rss_after_bytes"] = rss_after
                result["relay_rss_per_alert_bytes"] = round((rss_after - rss_before) / n)
                fetch_s, body = am_fetch(am)
                result["am_fetch_s"] = round(fetch_s, 3)
                result["am_body_bytes"] = body
                result["am_rss_before_bytes"] = am_rss_before
                result["am_rss_bytes"] = common.rss_bytes(am.pid)
            try:
                result["queue_messages"] = common.queue_depth(rabbit, queue)
            except Exception as err:  # noqa: BLE001
                result["queue_messages"] = None
                log(f"queue depth unavailable: {err}")
            if not args.no_floor:
                # After the storm, on the same broker: the floor the storm is judged against.
                floor_events = (storm_events(alerts, mapping, am_url)
                                if args.floor_events == "storm"
                                else bench_publish.make_events(n, 500))
                result.update(fair_floor(rabbit, floor_events, args.floor_threads, workdir))
                result["floor_events"] = args.floor_events
                del floor_events
                floor_s = n / result["floor_eps"]
                result["fair_floor_s"] = round(floor_s, 2)
                if result.get("confirmed_s"):
                    result["vs_fair_floor"] = round(result["confirmed_s"] / floor_s, 3)
                if result.get("publish_eps"):
                    result["publish_vs_floor"] = round(result["publish_eps"]
                                                       / result["floor_eps"], 3)
        finally:
            common.delete_entities(rabbit, exchanges=[exchange], queues=[queue])
    confirmed = result.get("confirmed_s")
    result["target_met"] = confirmed is not None and confirmed <= TARGET_S
    log(json.dumps(result, indent=1))
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
