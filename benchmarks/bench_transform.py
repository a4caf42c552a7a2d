"""Benchmark: alerts per second through mapping match + event build.

Compared, in the same run and on the same alerts, with ``json.loads`` of each
alert's JSON (the cost of merely decoding it).  The target is a ratio
(pipeline time / decode time) of at most 1.0.

    python benchmarks/bench_transform.py                 # 50,000 alerts; 10, 100, 1000 rules
    python benchmarks/bench_transform.py --alerts FILE   # alerts of an API or webhook JSON file
    python benchmarks/bench_transform.py --mapping FILE  # your mapping instead of generated ones
    python benchmarks/bench_transform.py --quick         # 10,000 alerts, 3 runs: a rough figure

The pipeline is ``Transformer.transform_sync``, one call per transition: what
``Relay._transform`` (daemon/service.py) does when no resolvers are configured.

Generated alerts look like node-exporter and libvirt alerts: 5 to 8 labels,
two or three annotations, a generator URL, start times shared by the alerts
of one rule evaluation.  90% match a rule by alertname, 10% match none.  The
last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.lifecycle import Transition  # noqa: E402
from daemon.model import parse_alert  # noqa: E402
from daemon.pipeline.mapping import load_mapping, parse_mapping  # noqa: E402
from daemon.pipeline.transformer import Transformer  # noqa: E402

JOBS = ("node", "libvirt", "openstack", "ceph", "rabbitmq")
SEVERITIES = ("critical", "warning", "info", "major", "page")


def make_mapping(rules: int, seed: int = 1) -> str:
    """YAML with ``rules`` rules keyed by alertname and job, plus two generic rules."""
    rnd = random.Random(seed)
    lines = ["alerts:"]
    for i in range(rules - 2):
        job = JOBS[i % len(JOBS)]
        lines.append("- alert:")
        lines.append(f"    key: {{alertname: Alert{i:04d}, job: {job}}}")
        if job == "libvirt":
            lines.append("    resource: {instance_name: domain, host_id: instance}")
        elif rnd.random() < 0.5:
            lines.append("    type: host")
            lines.append("    resource:")
            lines.append("      host: {label: instance, transform: [strip_port, short_host]}")
            lines.append("      mountpoint: {label: mountpoint, default: /}")
        else:
            lines.append("    resource: {id: instance}")
    lines.append("- key: {alertname: {'=~': 'Generic.*'}, job: {'!=': ''}}")
    lines.append("  resource: {id: instance}")
    lines.append("- key: {instance: {present: true}, job: {'=~': 'ceph|rabbitmq'}}")
    lines.append("  resource: {id: instance}")
    return "\n".join(lines) + "\n"


def make_alerts(count: int, rules: int, seed: int = 2) -> list[dict[str, Any]]:
    """``count`` API v2 alert objects; 90% of them match one of ``rules - 2`` rules."""
    rnd = random.Random(seed)
    base = datetime.datetime(2026, 11, 21, 22, 0, tzinfo=datetime.UTC)
    evaluations = [base + datetime.timedelta(seconds=15 * i) for i in range(240)]
    alerts = []
    for n in range(count):
        i = rnd.randrange(max(rules - 2, 1))
        if rnd.random() < 0.1:
            name, job = f"Unmapped{rnd.randrange(50)}", rnd.choice(JOBS)
        else:
            name, job = f"Alert{i:04d}", JOBS[i % len(JOBS)]
        host = f"compute-{rnd.randrange(500):03d}.region1.example.org"
        labels = {"alertname": name, "job": job, "severity": rnd.choice(SEVERITIES),
                  "instance": f"{host}:{9100 if job != 'libvirt' else 9177}"}
        if job == "libvirt":
            labels["domain"] = f"instance-{rnd.randrange(1 << 16):08x}"
        elif rnd.random() < 0.5:
            labels.update(mountpoint=rnd.choice(["/", "/var", "/srv/data"]),
                          device=rnd.choice(["/dev/vda1", "/dev/vdb"]), fstype="ext4")
        if rnd.random() < 0.3:
            labels["cluster"] = "region1"
        starts = rnd.choice(evaluations)
        alerts.append({
            "annotations": {
                "summary": f"{name} on {host}",
                "description": f"{name} has been firing on {labels['instance']} for 5 minutes.",
                "runbook_url": f"https://runbooks.example.org/{name.lower()}",
            },
            "endsAt": (starts + datetime.timedelta(minutes=5)).isoformat().replace(
                "+00:00", "Z"),
            "fingerprint": f"{n:016x}",
            "receivers": [{"name": "relay"}],
            "startsAt": starts.isoformat().replace("+00:00", "Z"),
            "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
            "updatedAt": (starts + datetime.timedelta(minutes=1)).isoformat().replace(
                "+00:00", "Z"),
            "generatorURL": f"http://prometheus:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{name}"
                            "%22%7D&g0.tab=1",
            "labels": labels,
        })
    return alerts


def read_alerts(path: str, count: int) -> list[dict[str, Any]]:
    """The alert objects of an API answer, a webhook body or webhook bodies one a line."""
    text = Path(path).read_text()
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError:
        documents = [json.loads(line) for line in text.splitlines() if line.strip()]
    objects: list[dict[str, Any]] = []
    for document in documents:
        objects.extend(document if isinstance(document, list) else document["alerts"])
    if not objects:
        raise SystemExit(f"{path}: no alerts")
    return [objects[i % len(objects)] for i in range(count)]


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = time.process_time


def best_of(repeat: int, func: Any) -> float:
    """The fastest of ``repeat`` runs, in seconds (garbage collection off while timing).

    Timed with the process's CPU clock by default, so that other processes
    on a busy machine inflate the figures less (``--clock wall`` for wall time).
    """
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = clock()
            func()
            times.append(clock() - start)
        finally:
            gc.enable()
    return min(times)


def run_case(label: str, mapping_text: str | None, mapping_path: str | None,
             objects: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    mapping = (load_mapping(mapping_path) if mapping_path
               else parse_mapping(mapping_text or "", source=label))
    texts = [json.dumps(obj) for obj in objects]
    observed = datetime.datetime.now(datetime.UTC)
    transitions = []
    for i, obj in enumerate(objects):
        alert = parse_alert(obj, where=f"alert {i}")
        transitions.append(Transition("firing", f"alarm-{i}", 1, alert, observed,
                                      "bench", "http://127.0.0.1:9093"))
    transformer = Transformer(mapping, host="bench")
    # The daemon's path without resolvers (daemon/service.py Relay._transform).
    transform = transformer.transform_sync
    loads = json.loads

    def decode() -> None:
        for text in texts:
            loads(text)

    def pipeline() -> None:
        for transition in transitions:
            transform(transition)

    event = transform(transitions[0])
    matched = sum(1 for t in transitions if mapping.match(t.alert.labels) is not None)
    # Interleaved, so both see the same machine load; the best run of each counts.
    decode_s = pipeline_s = float("inf")
    for _ in range(repeat):
        decode_s = min(decode_s, best_of(1, decode))
        pipeline_s = min(pipeline_s, best_of(1, pipeline))
    count = len(objects)
    result = {
        "case": label, "rules": len(mapping), "alerts": count, "matched": matched,
        "mean_alert_json_bytes": round(sum(map(len, texts)) / count),
        "pipeline_alerts_per_s": round(count / pipeline_s),
        "json_loads_alerts_per_s": round(count / decode_s),
        "pipeline_us_per_alert": round(pipeline_s / count * 1e6, 3),
        "json_loads_us_per_alert": round(decode_s / count * 1e6, 3),
        "ratio": round(pipeline_s / decode_s, 3),
        "event_type": event.event_type if event else None,
    }
    print(f"{label:>12}: {result['rules']:5d} rules, {count} alerts ({matched} matched): "
          f"pipeline {result['pipeline_alerts_per_s']:>9,d}/s "
          f"({result['pipeline_us_per_alert']:.2f} us), json.loads "
          f"{result['json_loads_alerts_per_s']:>9,d}/s "
          f"({result['json_loads_us_per_alert']:.2f} us), ratio {result['ratio']:.2f}",
          file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts",
                        help="Alertmanager API or webhook JSON file (cycled to --count)")
    parser.add_argument("--mapping", help="mapping file (default: generated 10/100/1000 rules)")
    parser.add_argument("--count", type=int, default=50_000, help="alerts per case")
    parser.add_argument("--rules", type=int, nargs="+", default=[10, 100, 1000],
                        help="generated rule counts")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time (default); wall: elapsed time")
    parser.add_argument("--profile", action="store_true",
                        help="profile the pipeline of the last case with cProfile")
    parser.add_argument("--quick", action="store_true",
                        help="10,000 alerts per case and 3 timed runs: a rough figure, fast")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.repeat = min(args.count, 10_000), min(args.repeat, 3)
    logging.basicConfig(level=logging.ERROR)
    global clock
    clock = CLOCKS[args.clock]

    results = []
    if args.mapping:
        objects = (read_alerts(args.alerts, args.count) if args.alerts
                   else make_alerts(args.count, 1000))
        results.append(run_case("mapping", None, args.mapping, objects, args.repeat))
    else:
        for rules in args.rules:
            objects = (read_alerts(args.alerts, args.count) if args.alerts
                       else make_alerts(args.count, rules))
            results.append(run_case(f"{rules}-rules", make_mapping(rules), None, objects,
                                    args.repeat))
    if args.profile:
        _profile(args, objects)
    summary = {
        "benchmark": "transform", "python": sys.version.split()[0], "clock": args.clock,
        "cases": results,
        "worst_ratio": max(r["ratio"] for r in results),
        "target_met": all(r["ratio"] <= 1.0 for r in results),
    }
    print(json.dumps(summary))
    return 0


def _profile(args: argparse.Namespace, objects: list[dict[str, Any]]) -> None:
    import cProfile
    import pstats

    mapping = (load_mapping(args.mapping) if args.mapping
               else parse_mapping(make_mapping(args.rules[-1])))
    transformer = Transformer(mapping)
    now = datetime.datetime.now(datetime.UTC)
    transitions = [Transition("firing", f"a{i}", 1, parse_alert(o, where="x"), now, "b", "u")
                   for i, o in enumerate(objects)]

    def pipeline() -> None:
        for transition in transitions:
            transformer.transform_sync(transition)
    profiler = cProfile.Profile()
    profiler.runcall(pipeline)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    sys.exit(main())
