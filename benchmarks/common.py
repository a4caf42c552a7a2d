"""Helpers shared by the suite's own benchmarks (bench_e2e, bench_storm, bench_memory,
bench_startup) and the runner: statistics, RSS, the relay's /metrics, realistic alerts, a
timestamping oslo.messaging consumer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import daemon  # noqa: E402,F401 - selects the oslo.service threading backend first
from tools.harness import bus  # noqa: E402
from tools.harness.relay import metric_sum  # noqa: E402,F401 - used by the benchmarks

#: The seed's mapping, plus a catch-all for the benchmark's own alert names.
MAPPING = """\
alerts:
- alert:
    key: {alertname: HighCpuOnVmAlert, job: libvirt}
    resource: {instance_name: domain, host_id: instance}
- alert:
    key: {alertname: HighInodeUsage, job: node}
    type: host
    resource: {host_id: instance, mountpoint: mountpoint}
- alert:
    key: {alertname: AvgCPUTimeOnIdleMode, job: node}
    type: host
    resource: {host_id: instance}
- alert:
    key: {alertname: HighTrafficOnBridge, job: node}
    type: host
    resource: {host_id: instance, bridge: device}
"""

ALERTNAMES = ("HighCpuOnVmAlert", "HighInodeUsage", "AvgCPUTimeOnIdleMode", "HighTrafficOnBridge")


def log(*args: Any) -> None:
    """Progress on stderr (stdout carries the one JSON line)."""
    print(*args, file=sys.stderr, flush=True)


def emit(result: Mapping[str, Any]) -> None:
    """The last line of a benchmark: one JSON object."""
    print(json.dumps(result), flush=True)


# -- statistics ---------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/max/mean in milliseconds, and the sample count."""
    if not seconds:
        return {"n": 0}
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2),
            "p90_ms": round(percentile(ms, 90), 2), "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2)}


# -- processes ----------------------------------------------------------------

def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc (bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(pid: int) -> list[int]:
    """PIDs of a process's children, grandchildren, ... (from /proc)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{current}/task/{task}/children").read_text()
            except FileNotFoundError:
                continue
            for child in text.split():
                found.append(int(child))
                todo.append(int(child))
    return found


def relay_worker_rss(master_pid: int) -> int:
    """RSS of the relay's largest process (the oslo.service worker holds the state)."""
    pids = [master_pid, *descendants(master_pid)]
    sizes = []
    for pid in pids:
        try:
            sizes.append(rss_bytes(pid))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return max(sizes, default=0)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process used so far, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are the 14th and 15th fields; the split starts at the 3rd
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants alive now (0 for the ones gone)."""
    total = 0.0
    for one in (pid, *descendants(pid)):
        try:
            total += cpu_seconds(one)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def rabbitmq_pid() -> int | None:
    """PID of the shared RabbitMQ's Erlang VM (beam.smp), to read its CPU; None if not seen."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"beam.smp" in command.split(b"\0")[0] and b"rabbit" in command:
            return int(entry.name)
    return None


# -- the relay's /metrics -----------------------------------------------------

def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as resp:
        return resp.read().decode()


# -- alerts -------------------------------------------------------------------

def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alert_labels(i: int, tag: str) -> dict[str, str]:
    """Labels like the seed's alerts (5-7 labels), unique by ``bench_id``."""
    name = ALERTNAMES[i % 4]
    labels = {"alertname": name, "bench_id": f"{tag}-{i}",
              "severity": ("critical", "warning", "major", "info")[i % 4]}
    if name == "HighCpuOnVmAlert":
        labels.update(job="libvirt", domain=f"instance-{i:08x}",
                      instance=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:9177")
    else:
        labels.update(job="node", instance=f"compute-{i % 997:03d}.example.org:9100")
        if name == "HighInodeUsage":
            labels.update(mountpoint="/var/lib/nova", device="/dev/vda1", fstype="ext4")
        elif name == "HighTrafficOnBridge":
            labels["device"] = f"br-{i % 16}"
    return labels


def alert_annotations(i: int, labels: Mapping[str, str]) -> dict[str, str]:
    return {"title": f"{labels['alertname']} on {labels['instance']}",
            "description": f"Benchmark alert {i}: {labels['alertname']} has been firing "
                           f"on {labels['instance']} for 5 minutes.\n"}


GENERATOR_URL = ("http://prometheus:9090/graph?g0.expr=rate%28libvirt_domain_info_cpu_time_"
                 "seconds_total%5B1m%5D%29+%2A+10000+%3E+13&g0.tab=1")


def api_alert(i: int, tag: str, *, starts: dt.datetime, ends: dt.datetime | None = None
              ) -> dict[str, Any]:
    """One object for Alertmanager's ``POST /api/v2/alerts``."""
    labels = alert_labels(i, tag)
    alert = {"labels": labels, "annotations": alert_annotations(i, labels),
             "generatorURL": GENERATOR_URL, "startsAt": iso(starts)}
    if ends is not None:
        alert["endsAt"] = iso(ends)
    return alert


def webhook_body(i: int, tag: str, *, external_url: str = "http://127.0.0.1:9093"
                 ) -> dict[str, Any]:
    """A webhook v4 delivery with one new firing alert (as Alertmanager 0.25 sends it)."""
    from daemon.model import fingerprint

    labels = alert_labels(i, tag)
    now = dt.datetime.now(dt.UTC)
    alert = {"status": "firing", "labels": labels,
             "annotations": alert_annotations(i, labels), "startsAt": iso(now),
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": GENERATOR_URL,
             "fingerprint": fingerprint(labels)}
    return {"receiver": "relay", "status": "firing", "alerts": [alert],
            "groupLabels": {"alertname": labels["alertname"]},
            "commonLabels": labels, "commonAnnotations": alert["annotations"],
            "externalURL": external_url, "version": "4",
            "groupKey": f'{{}}:{{alertname="{labels["alertname"]}"}}',
            "truncatedAlerts": 0}


def write_mapping(directory: Path) -> Path:
    path = directory / "mappings.yaml"
    path.write_text(MAPPING)
    return path


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- a consumer that timestamps what it receives -------------------------------

class TimedCollector:
    """oslo.messaging notification endpoint recording ``time.monotonic()`` per event,
    keyed by the alert's ``bench_id`` label."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.event_types: dict[str, int] = {}
        self.waiting_for: str | None = None

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        now = time.monotonic()
        key = (payload.get("labels") or {}).get("bench_id", "")
        with self.lock:
            self.count += 1
            self.event_types[event_type] = self.event_types.get(event_type, 0) + 1
            if event_type == "alarm.firing":
                self.arrived.setdefault(key, now)
            self.lock.notify_all()

    def wait_key(self, key: str, timeout: float) -> float | None:
        with self.lock:
            self.lock.wait_for(lambda: key in self.arrived, timeout)
            return self.arrived.get(key)

    def wait_count(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: len(self.arrived) >= count, timeout)


class TimedConsumer(bus.Consumer):
    """The harness's oslo.messaging consumer with a timestamping endpoint."""

    def __init__(self, transport_url: str, *, exchange: str, topic: str, conf_dir: Path,
                 threads: int = 4) -> None:
        super().__init__(transport_url, exchange=exchange, topic=topic, conf_dir=conf_dir,
                         endpoint=TimedCollector(), threads=threads)


amqp_url = bus.amqp_url


def delete_entities(transport_url: str, *, exchanges: Iterable[str] = (),
                    queues: Iterable[str] = ()) -> None:
    """Remove a benchmark's queues and exchanges from the broker (errors only logged)."""
    try:
        bus.delete_entities(transport_url, exchanges=exchanges, queues=queues)
    except Exception as err:  # noqa: BLE001 - cleanup only
        log(f"cleanup of {list(queues)} {list(exchanges)} failed: {err}")


def queue_depth(transport_url: str, queue: str) -> int:
    """Messages ready in ``queue`` (passive declare; the queue must exist)."""
    import kombu

    with kombu.Connection(amqp_url(transport_url), connect_timeout=5) as conn:
        _, count, _ = conn.channel().queue_declare(queue, passive=True)
        return count


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - "not yet"
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def add_relay_option_argument(parser: Any) -> None:
    """``--relay-option SECTION.OPTION=VALUE`` (repeatable), for an A/B run."""
    parser.add_argument("--relay-option", action="append", default=[],
                        metavar="SECTION.OPTION=VALUE",
                        help="set a relay option, for an A/B run (repeatable)")


def relay_options(parser: Any, items: list[str]) -> dict[str, dict[str, str]]:
    """``{section: {option: value}}`` from ``--relay-option`` values (parser.error on a bad one)."""
    extra: dict[str, dict[str, str]] = {}
    for item in items:
        where, _, value = item.partition("=")
        section, _, option = where.partition(".")
        if not (section and option and value):
            parser.error(f"--relay-option {item!r}: expected SECTION.OPTION=VALUE")
        extra.setdefault(section, {})[option] = value
    return extra


def with_relay_options(sections: dict[str, dict], extra: dict[str, dict[str, str]]
                       ) -> dict[str, dict]:
    """``sections`` with ``extra`` (from :func:`relay_options`) laid over them."""
    return {name: {**sections.get(name, {}), **extra.get(name, {})}
            for name in sections.keys() | extra.keys()}
