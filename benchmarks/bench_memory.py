"""Benchmark: memory per tracked alert at 100,000 alerts (and at 10,000 and 50,000).

In-process, as the daemon does it: Alertmanager's ``GET /api/v2/alerts`` body for N realistic
alerts is decoded and parsed by the poller's own code (``AlertmanagerPoller._decode`` with its
``ParseCache``), wrapped in a ``PollResult`` and fed to ``LifecycleTracker.observe_poll``; the
state changes are exported (as the daemon does before storing them) and everything transient
(body, transitions) is dropped.  Each measurement runs in a fresh interpreter.  Measured:

- ``rss_per_alert_bytes``: RSS after minus RSS before, per alert, at ``--alerts`` (and
  ``rss_by_size`` at ``--sizes``: the cost per alert must stay flat, within 15%), in a new
  process whose glibc mmap threshold is pinned at its default (``MALLOC_MMAP_THRESHOLD_``,
  see ``run_child``): what the daemon keeps per alert (tracker state + the poller's parse
  cache), with the allocator's slack;
- with tracemalloc at ``--trace-alerts`` alerts (Python allocations only, no allocator
  slack): bytes per alert with the parse cache, and after clearing it (the tracker and the
  model: Alert objects and their labels and annotations, alarm records) split by where it
  was allocated (``traced_parts``: lifecycle, model, and ``decoded``: strings the JSON
  decoder made that the Alerts keep), and the top allocation sites;
- baseline: the mean size of one alert's JSON in the API answer; with ``--baseline-code``,
  the same figures of another checkout (a worktree of main: before/after in one run).

Targets: rss_per_alert_bytes <= 2048, traced tracker + model <= 1024.

    python benchmarks/bench_memory.py [--alerts 100000] [--sizes 10000,50000]
        [--baseline-code /path/to/a/checkout/of/main]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# A child measuring another checkout (--baseline-code) imports its daemon package first.
if os.environ.get("BENCH_MEMORY_CODE"):
    sys.path.insert(0, os.environ["BENCH_MEMORY_CODE"])

from benchmarks import common  # noqa: E402
from benchmarks.common import log  # noqa: E402

TARGET = 2048
#: tracemalloc: what the tracker and the model keep per alert (parse cache cleared).
TRACED_TARGET = 1024
URL = "http://127.0.0.1:9093"


def api_answer(n: int, tag: str = "mem") -> bytes:
    """What Alertmanager 0.25 answers to GET /api/v2/alerts for ``n`` alerts."""
    from daemon.model import fingerprint

    now = dt.datetime.now(dt.UTC)
    objects = []
    for i in range(n):
        alert = common.api_alert(i, tag, starts=now - dt.timedelta(seconds=i % 900),
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


def measure_rss(n: int, body: bytes) -> tuple[int, object]:
    """RSS growth per alert while the tracker and the parse cache hold ``n`` alerts.

    :returns: bytes per alert, and what holds them (keep it to measure more on top)
    """
    gc.collect()
    before = common.rss_bytes()
    tracker, poller = build(n, body)
    gc.collect()
    after = common.rss_bytes()
    assert tracker.tracked == n
    return round((after - before) / n), (tracker, poller)


def _category(filename: str) -> str:
    if "/daemon/lifecycle/" in filename:
        return "lifecycle"
    if filename.endswith("/daemon/model.py"):
        return "model"
    if filename.endswith(("/daemon/sources/alertmanager.py", "/json/decoder.py")):
        return "decoded"  # strings the decoder made, kept by the Alerts
    return "other"


def measure_traced(n: int, body: bytes) -> dict:
    """tracemalloc: bytes per alert with and without the parse cache, by part and by line."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracker, poller = build(n, body)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    for cache in getattr(poller, "_caches", {}).values():
        cache.clear()
    gc.collect()
    tracker_only = tracemalloc.get_traced_memory()[0]
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    parts: dict[str, float] = {}
    for stat in snapshot.statistics("filename"):
        part = _category(stat.traceback[0].filename)
        parts[part] = parts.get(part, 0) + stat.size
    root = str(common.ROOT) + "/"
    top = []
    for stat in snapshot.statistics("lineno")[:10]:
        frame = stat.traceback[0]
        top.append({"where": f"{frame.filename.replace(root, '')}:{frame.lineno}",
                    "bytes_per_alert": round(stat.size / n)})
    del tracker, poller, snapshot
    gc.collect()
    return {"with_parse_cache": round((after - before) / n),
            "tracker_only": round((tracker_only - before) / n),
            "parts": {k: round(v / n) for k, v in sorted(parts.items())}, "top": top}


def child(argv: list[str]) -> dict:
    """One measurement in this (fresh) process: ``rss N`` or ``traced N``."""
    what, n = argv[0], int(argv[1])
    import daemon.lifecycle  # noqa: F401 - import cost not counted
    import daemon.sources.alertmanager  # noqa: F401

    body = api_answer(n)
    if what == "rss":
        rss, _ = measure_rss(n, body)
        return {"alerts": n, "rss_per_alert_bytes": rss,
                "json_bytes_per_alert": round(len(body) / n)}
    return {"alerts": n, **measure_traced(n, body)}


def run_child(code: Path, *args: str) -> dict:
    """Run :func:`child` in a new interpreter, importing ``daemon`` from ``code``."""
    # glibc raises its mmap threshold (up to 32 MB) each time a large mmapped block is
    # freed, after which a body-sized buffer freed stays in the heap: a fixed cost of a few
    # MB that would weigh on the small sizes only.  Pinned at its default (128 KiB), large
    # buffers are always returned, as bodies over 32 MB are anyway.
    env = {**os.environ, "BENCH_MEMORY_CODE": str(code), "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_memory child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(code: Path, sizes: list[int], trace_n: int, label: str) -> dict:
    rss = {}
    for n in sizes:
        row = run_child(code, "rss", str(n))
        rss[n] = row
        log(f"{label}: RSS per alert at {n:,}: {row['rss_per_alert_bytes']} B")
    traced = run_child(code, "traced", str(trace_n))
    log(f"{label}: tracemalloc at {trace_n:,}: {json.dumps(traced)}")
    return {"rss": rss, "traced": traced}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        common.emit(child(argv[1:]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000,
                        help="the size the targets are judged at")
    parser.add_argument("--sizes", default="10000,50000",
                        help="other sizes, for the growth of the cost per alert")
    parser.add_argument("--trace-alerts", type=int, default=None,
                        help="alerts for the tracemalloc breakdown (default: --alerts)")
    default_base = os.environ.get("BENCH_BASELINE_CODE")
    parser.add_argument("--baseline-code", type=Path,
                        default=Path(default_base) if default_base else None,
                        help="another checkout (e.g. a worktree of main) measured the same "
                             "way in the same run, for a before/after (default: "
                             "$BENCH_BASELINE_CODE)")
    args = parser.parse_args(argv)
    n = args.alerts
    sizes = sorted({*(int(x) for x in args.sizes.split(",") if x), n})
    trace_n = args.trace_alerts or n
    here = common.ROOT
    result: dict = {"benchmark": "memory", "alerts": n, "target_bytes": TARGET,
                    "traced_target_bytes": TRACED_TARGET}
    ours = measure(here, sizes, trace_n, "this checkout")
    if args.baseline_code is not None:
        base = measure(args.baseline_code.resolve(), sizes, trace_n, str(args.baseline_code))
        result["baseline"] = {
            "code": str(args.baseline_code),
            "rss_per_alert_bytes": base["rss"][n]["rss_per_alert_bytes"],
            "traced_per_alert_bytes": base["traced"]["with_parse_cache"],
            "traced_tracker_only_per_alert_bytes": base["traced"]["tracker_only"],
            "traced_parts": base["traced"]["parts"],
            "rss_by_size": {str(k): v["rss_per_alert_bytes"] for k, v in base["rss"].items()},
        }
    rss = ours["rss"][n]["rss_per_alert_bytes"]
    json_bytes = ours["rss"][n]["json_bytes_per_alert"]
    traced = ours["traced"]
    by_size = {str(k): v["rss_per_alert_bytes"] for k, v in ours["rss"].items()}
    flat = max(by_size.values()) / min(by_size.values())
    result.update({
        "rss_per_alert_bytes": rss,
        "rss_by_size": by_size,
        "rss_spread": round(flat, 3),
        "traced_alerts": trace_n,
        "traced_per_alert_bytes": traced["with_parse_cache"],
        "traced_tracker_only_per_alert_bytes": traced["tracker_only"],
        "traced_parts": traced["parts"],
        "traced_top": traced["top"],
        "json_bytes_per_alert": json_bytes,
        "ratio_to_json": round(rss / json_bytes, 2),
        "target_met": rss <= TARGET and traced["tracker_only"] <= TRACED_TARGET,
    })
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
