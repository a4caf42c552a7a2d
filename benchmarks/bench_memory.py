"""Benchmark: resident memory per tracked alert at 100,000 alerts.

In-process, as the daemon does it: Alertmanager's ``GET /api/v2/alerts`` body for N realistic
alerts is decoded and parsed by the poller's own code (``AlertmanagerPoller._decode`` with its
``ParseCache``, falling back to ``parse_alert``), wrapped in a ``PollResult`` and fed to
``LifecycleTracker.observe_poll``; the state changes are exported (as the daemon does before
storing them) and everything transient (body, transitions) is dropped.  Measured:

- ``rss_per_alert_bytes``: RSS after minus RSS before, per alert - what the daemon keeps per
  alert (tracker state + the poller's parse cache, which keeps the decoded objects);
- with tracemalloc on ``--trace-alerts`` alerts (Python allocations only, no allocator
  slack): bytes per alert with the parse cache, after clearing it (the tracker's own state:
  Alert objects, alarm records), and the top allocation sites;
- baseline: the mean size of one alert's JSON in the API answer (the ratio says how many
  times its JSON an alert costs in memory).

Target: rss_per_alert_bytes <= 2048.

    python benchmarks/bench_memory.py [--alerts 100000]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.common import log  # noqa: E402

TARGET = 2048
URL = "http://127.0.0.1:9093"


def api_answer(n: int) -> bytes:
    """What Alertmanager 0.25 answers to GET /api/v2/alerts for ``n`` alerts."""
    from daemon.model import fingerprint

    now = dt.datetime.now(dt.UTC)
    objects = []
    for i in range(n):
        alert = common.api_alert(i, "mem", starts=now - dt.timedelta(seconds=i % 900),
                                 ends=now + dt.timedelta(minutes=5))
        alert.update({"fingerprint": fingerprint(alert["labels"]), "receivers": [
            {"name": "relay"}], "status": {"inhibitedBy": [], "silencedBy": [],
                                           "state": "active"},
            "updatedAt": common.iso(now)})
        objects.append(alert)
    return json.dumps(objects).encode()


def build(n: int, body: bytes):
    """Decode + parse like the poller, observe like the daemon; returns (tracker, poller)."""
    from daemon.lifecycle import LifecycleTracker
    from daemon.model import PollResult, ReplicaPoll
    from daemon.sources.alertmanager import AlertmanagerPoller, PollerSettings

    async def ignore(_result):
        return None

    poller = AlertmanagerPoller(cluster="bench", urls=[URL],
                                settings=PollerSettings(poll_interval=60), on_result=ignore)
    now = dt.datetime.now(dt.UTC)
    try:
        alerts, invalid = poller._decode(URL, body)
    except AttributeError:  # the poller's internals changed: parse as the API allows
        from daemon.model import parse_alert

        alerts = [parse_alert(o, where=f"[{i}]") for i, o in enumerate(json.loads(body))]
        invalid = frozenset()
    tracker = LifecycleTracker(cluster="bench")
    result = PollResult("bench", (ReplicaPoll(URL, alerts, None, "2026-01-01T00:00:00Z",
                                              "disabled", invalid),), now, now)
    transitions = tracker.observe_poll(result, now)
    assert len(transitions) == n, len(transitions)
    records = tracker.export_changes()
    assert len(records) >= n
    del transitions, records, result, alerts
    return tracker, poller


def measure_rss(n: int, body: bytes) -> int:
    """RSS growth per alert while the tracker and the parse cache hold ``n`` alerts."""
    gc.collect()
    before = common.rss_bytes()
    tracker, poller = build(n, body)
    gc.collect()
    after = common.rss_bytes()
    assert tracker.tracked == n
    del tracker, poller
    gc.collect()
    return round((after - before) / n)


def measure_traced(n: int, body: bytes) -> dict:
    """tracemalloc: bytes per alert with and without the parse cache, top allocation sites."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracker, poller = build(n, body)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    snapshot = tracemalloc.take_snapshot()
    for cache in getattr(poller, "_caches", {}).values():
        cache.clear()
    gc.collect()
    tracker_only = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    root = str(common.ROOT) + "/"
    top = []
    for stat in snapshot.statistics("lineno")[:10]:
        frame = stat.traceback[0]
        top.append({"where": f"{frame.filename.replace(root, '')}:{frame.lineno}",
                    "bytes_per_alert": round(stat.size / n)})
    del tracker, poller, snapshot
    gc.collect()
    return {"with_parse_cache": round((after - before) / n),
            "tracker_only": round((tracker_only - before) / n), "top": top}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--trace-alerts", type=int, default=10_000,
                        help="alerts for the (slow) tracemalloc breakdown")
    args = parser.parse_args(argv)
    n = args.alerts
    import daemon.lifecycle  # noqa: F401 - import cost not counted
    import daemon.sources.alertmanager  # noqa: F401

    body = api_answer(n)
    json_bytes = len(body) / n
    log(f"{n} alerts, {len(body) / 1e6:.1f} MB of JSON ({json_bytes:.0f} B per alert)")
    rss = measure_rss(n, body)
    log(f"RSS per alert: {rss} B")
    traced_n = min(n, args.trace_alerts)
    traced = measure_traced(traced_n, body if traced_n == n else api_answer(traced_n))
    log(f"tracemalloc per alert ({traced_n} alerts): {json.dumps(traced, indent=1)}")
    result = {
        "benchmark": "memory", "alerts": n,
        "rss_per_alert_bytes": rss,
        "traced_alerts": traced_n,
        "traced_per_alert_bytes": traced["with_parse_cache"],
        "traced_tracker_only_per_alert_bytes": traced["tracker_only"],
        "traced_top": traced["top"],
        "json_bytes_per_alert": round(json_bytes),
        "ratio_to_json": round(rss / json_bytes, 2),
        "target_bytes": TARGET,
        "target_met": rss <= TARGET,
    }
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
