"""Run the benchmark suite and write docs/performance.md.

    python -m benchmarks                      # everything (make bench, tox -e bench)
    python -m benchmarks --quick              # smaller sizes, a few minutes
    python -m benchmarks --only e2e storm     # some; the others keep their last figures
    python -m benchmarks --profile e2e        # run one under py-spy (--subprocesses)

Each benchmark runs as a subprocess with a time limit (its progress on stderr, its figures
as the last JSON line of stdout).  The document gets the machine, the versions, one table
with every figure next to its baseline measured in the same run, and then the hand-written
analysis from benchmarks/analysis.md.  The raw figures are kept in the document, so
``--only`` can update some rows and keep the rest (marked with the time they ran).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
DOC = ROOT / "docs" / "performance.md"
ANALYSIS = HERE / "analysis.md"
BEGIN, END = "<!-- BEGIN GENERATED: python -m benchmarks -->", "<!-- END GENERATED -->"
RAW_RE = re.compile(r"<!-- RESULTS\n(.*?)\n-->", re.S)


@dataclasses.dataclass(frozen=True)
class Bench:
    name: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    timeout: float
    what: str


BENCHES = [
    Bench("transform", "bench_transform.py", (), ("--count", "10000", "--repeat", "2"), 300,
          "match + event build vs json.loads, 10/100/1,000 rules"),
    Bench("poll", "bench_poll.py", (), ("--sizes", "10000", "--rounds", "3"), 1500,
          "poll cycle (fetch, parse, diff) vs fetch + json.loads"),
    Bench("publish", "bench_publish.py", (), ("--events", "5000", "--rounds", "1"), 300,
          "outbox -> RabbitMQ vs raw confirmed publishes"),
    Bench("publish-postgresql", "bench_publish.py", ("--store", "postgresql"),
          ("--store", "postgresql", "--events", "5000", "--rounds", "1"), 300,
          "outbox in a shared PostgreSQL database -> RabbitMQ vs raw confirmed publishes"),
    Bench("e2e", "bench_e2e.py", (), ("--webhook", "200", "--poll", "50", "--floor", "50"), 360,
          "end-to-end latency, webhook and poll paths"),
    Bench("storm", "bench_storm.py", (), ("--alerts", "10000"), 420,
          "50,000 new alerts -> all events confirmed"),
    Bench("ha-storm", "bench_ha.py", ("storm",), ("storm", "--alerts", "10000"), 1200,
          "the storm through 3 relays on PostgreSQL (partitions 3) vs 1 relay on SQLite"),
    Bench("ha-takeover", "bench_ha.py", ("takeover",), ("takeover", "--rounds", "3"), 480,
          "SIGKILL of the owner -> another relay owns the unit, the next alert on the bus"),
    Bench("memory", "bench_memory.py", (), ("--alerts", "20000", "--sizes", "5000"), 600,
          "resident memory per tracked alert"),
    Bench("startup", "bench_startup.py", (), ("--runs", "3"), 240,
          "process start -> ready"),
    Bench("soak", "bench_soak.py", (), ("--duration", "180", "--outage", "20",
                                        "--warmup", "60"), 1200,
          "10 minutes of churn with a broker outage: nothing grows, nothing lost"),
]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- running ------------------------------------------------------------------

def run_bench(bench: Bench, quick: bool, profile_dir: Path | None) -> dict[str, Any]:
    """Run one benchmark script; returns its record (figures from its last JSON line)."""
    cmd = [sys.executable, str(HERE / bench.script),
           *(bench.quick_args if quick else bench.args)]
    if profile_dir is not None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        profile_dir.mkdir(parents=True, exist_ok=True)
        out = profile_dir / f"{bench.name}.collapsed.txt"
        cmd = [spy, "record", "--subprocesses", "--rate", "100", "--format", "raw",
               "--output", str(out), "--", *cmd]
        log(f"profiling into {out}")
    log(f"{bench.name}: {' '.join(cmd)}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=None, text=True,
                            env=env, start_new_session=True)
    status = "ok"
    try:
        stdout, _ = proc.communicate(timeout=bench.timeout)
    except subprocess.TimeoutExpired:
        status = f"timed out after {bench.timeout:.0f}s"
        # Its own process group: the benchmark and the services it started.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate()
    seconds = time.monotonic() - began
    figures = None
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                figures = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    if figures is None and status == "ok":
        status = f"no JSON line (exit {proc.returncode})"
    log(f"{bench.name}: {status} in {seconds:.0f}s")
    if profile_dir is not None and out.exists():
        summarise_profile(out)
    return {"status": status, "exit": proc.returncode, "seconds": round(seconds, 1),
            "ran_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": quick, "figures": figures}


def summarise_profile(path: Path, top: int = 25) -> None:
    """Print the hottest functions of a py-spy ``raw`` (collapsed stacks) profile: by own
    samples, and by inclusive samples for alarm-relay's own code."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            if "(daemon/" in frame or "/daemon/" in frame:
                inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return
    print(f"\n== {path}: {total} samples; hottest by own time", file=sys.stderr)
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * n / total:6.1f}%  {frame}", file=sys.stderr)
    print("== alarm-relay functions by inclusive time", file=sys.stderr)
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * n / total:6.1f}%  {frame}", file=sys.stderr)


# -- machine and versions --------------------------------------------------------

def _cmd(*args: str) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (proc.stdout or proc.stderr).strip()


def _first_version(text: str) -> str:
    found = re.search(r"version (\S+)", text)
    return found.group(1) if found else (text.splitlines()[0] if text else "unknown")


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    load = os.getloadavg()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "load_at_start": " ".join(f"{x:.2f}" for x in load)}


VERSION_ORDER = ["Python", "alarm-relay", "Alertmanager", "Prometheus", "RabbitMQ", "Erlang",
                 "SQLite", "oslo.messaging", "kombu", "aiohttp"]


def versions() -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = _cmd("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = _cmd("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no")
    return {
        "Python": platform.python_version(),
        "alarm-relay": commit + (" (with uncommitted changes)" if dirty else ""),
        "Alertmanager": _first_version(_cmd("/usr/bin/prometheus-alertmanager", "--version")),
        "Prometheus": _first_version(_cmd("/usr/bin/prometheus", "--version")),
        "RabbitMQ": _cmd("dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"),
        "Erlang": _cmd("dpkg-query", "-W", "-f", "${Version}", "erlang-base"),
        "SQLite": __import__("sqlite3").sqlite_version,
        "oslo.messaging": dist("oslo.messaging"),
        "kombu": dist("kombu"),
        "aiohttp": dist("aiohttp"),
    }


# -- the table -------------------------------------------------------------------

Row = tuple[str, str, str, str, str, str, str]  # bench, figure, value, baseline, ratio, target, met


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def _n(x: Any, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def rows_transform(f: dict, _all: dict) -> list[Row]:
    out = []
    for case in f.get("cases", []):
        out.append(("transform", f"pipeline, {case['rules']:,} rules (us/alert)",
                    _n(case["pipeline_us_per_alert"], "{:.2f}"),
                    f"json.loads {_n(case['json_loads_us_per_alert'], '{:.2f}')}",
                    _n(case["ratio"], "{:.2f}x"), "<= 1.0x", _met(case["ratio"] <= 1.0)))
    return out


def rows_poll(f: dict, _all: dict) -> list[Row]:
    out = []
    for r in f.get("results", []):
        judged = r["alerts"] <= 50_000
        out.append(("poll", f"poll cycle, {r['alerts']:,} alerts (s)", _n(r["cycle_s"], "{:.3f}"),
                    f"fetch + json.loads {_n(r['baseline_s'], '{:.3f}')}",
                    _n(r["ratio"], "{:.2f}x"), "<= 1.25x" if judged else "(growth)",
                    _met(r["ratio"] <= 1.25) if judged else "n/a"))
        if "cold_cycle_s" in r:
            out.append(("poll", f"changed cycle, {r['alerts']:,} alerts (s)",
                        _n(r["cold_cycle_s"], "{:.3f}"), "same",
                        _n(r.get("cold_ratio"), "{:.2f}x"), "(informative)", "n/a"))
    results = [r for r in f.get("results", []) if "own_us_per_alert" in r]
    clock = "CPU s" if f.get("own_clock") == "cpu" else "s"
    for r in results:
        out.append(("poll", f"  decode + parse + diff in-process, {r['alerts']:,} alerts "
                            f"({clock})",
                    _n(r["own_s"], "{:.3f}"), f"json.loads {_n(r['loads_s'], '{:.3f}')}",
                    _n(r["own_ratio"], "{:.2f}x"), "(informative)", "n/a"))
    if len(results) > 1:
        sizes = ", ".join(f"{r['alerts']:,}" for r in results)
        loads = (" / ".join(_n(r["loads_us_per_alert"], "{:.2f}") for r in results)
                 if all("loads_us_per_alert" in r for r in results) else "-")
        out.append(("poll", f"  the same per alert at {sizes} (us)",
                    " / ".join(_n(r["own_us_per_alert"], "{:.2f}") for r in results),
                    f"json.loads {loads}",
                    _n(f.get("own_per_alert_spread"), "{:.2f}x"), "flat within 15%",
                    _met(f.get("own_per_alert_spread", 9) <= 1.15)))
    return out


def rows_publish(f: dict, _all: dict) -> list[Row]:
    eps, raw = f.get("outbox_eps"), f.get("raw_eps")
    ratio, median = f.get("ratio"), f.get("ratio_median")
    # Judged on the lower of the two ratios: best-of rates and per-round medians.
    worst = min(r for r in (ratio, median) if r is not None) if ratio is not None else None
    ok = None if eps is None or worst is None else (worst >= 0.8 and eps >= 2000)
    rows = [("publish", f"outbox -> broker, {f.get('threads', '?')} threads (events/s)", _n(eps),
             f"raw confirmed publishes {_n(raw)}", _n(ratio, "{:.2f}x"),
             ">= 0.8x and >= 2,000/s", _met(ok))]
    if median is not None:
        rows.append(("publish", "  median of the per-round ratios", _n(median, "{:.2f}x"),
                     "same round's raw rate", _n(median, "{:.2f}x"), ">= 0.8x",
                     _met(median >= 0.8)))
    return rows


def rows_publish_postgresql(f: dict, _all: dict) -> list[Row]:
    eps, raw = f.get("outbox_eps"), f.get("raw_eps")
    ratio, median = f.get("ratio"), f.get("ratio_median")
    worst = min(r for r in (ratio, median) if r is not None) if ratio is not None else None
    rows = [("publish-postgresql",
             f"outbox in PostgreSQL -> broker, {f.get('threads', '?')} threads (events/s)",
             _n(eps), f"raw confirmed publishes {_n(raw)}", _n(ratio, "{:.2f}x"), ">= 0.8x",
             _met(None if worst is None else worst >= 0.8))]
    if median is not None:
        rows.append(("publish-postgresql", "  median of the per-round ratios",
                     _n(median, "{:.2f}x"), "same round's raw rate", _n(median, "{:.2f}x"),
                     ">= 0.8x", _met(median >= 0.8)))
    rows.append(("publish-postgresql", "  outbox put into PostgreSQL (events/s)",
                 _n(f.get("outbox_put_eps")), "", "", "(informative)", "n/a"))
    return rows


def rows_e2e(f: dict, _all: dict) -> list[Row]:
    out = []
    floor = f.get("bus_floor", {}).get("receive", {})
    wh = f.get("webhook", {}).get("latency", {})
    if wh.get("n"):
        for q in ("p50", "p99"):
            ratio = wh[f"{q}_ms"] / floor[f"{q}_ms"] if floor.get(f"{q}_ms") else None
            out.append(("e2e", f"webhook -> event received, {q} (ms, n={wh['n']})",
                        _n(wh[f"{q}_ms"], "{:.1f}"),
                        f"bus floor {q} {_n(floor.get(f'{q}_ms'), '{:.1f}')}",
                        _n(ratio, "{:.1f}x"), "p99 <= 50 ms" if q == "p99" else "-",
                        _met(wh["p99_ms"] <= 50) if q == "p99" else "n/a"))
    poll = f.get("poll", {})
    pl = poll.get("latency", {})
    if pl.get("n"):
        interval_ms = poll["poll_interval_s"] * 1000
        for q in ("p50", "p99"):
            out.append(("e2e", f"Alertmanager -> event received, {q} (ms, n={pl['n']})",
                        _n(pl[f"{q}_ms"], "{:.0f}"), f"poll interval {interval_ms:.0f}",
                        _n(pl[f"{q}_ms"] / interval_ms, "{:.2f}x"),
                        f"p99 <= {interval_ms + 100:.0f} ms" if q == "p99" else "-",
                        _met(f.get("poll_target_met")) if q == "p99" else "n/a"))
    return out


def rows_storm(f: dict, results: dict) -> list[Row]:
    n = f.get("alerts", 0)
    raw = ((results.get("publish") or {}).get("figures") or {}).get("raw_eps")
    fair: list[Row] = []
    if f.get("floor_eps"):
        fair = [("storm", f"  against the fair floor: {n:,} raw confirmed publishes into a "
                          "growing queue, same run (s)", _n(f.get("confirmed_s"), "{:.1f}"),
                 f"{n:,} / {_n(f['floor_eps'])}/s = {_n(f.get('fair_floor_s'), '{:.1f}')}",
                 _n(f.get("vs_fair_floor"), "{:.2f}x"), "<= 1.3x",
                 _met(f.get("vs_fair_floor", 9) <= 1.3)),
                ("storm", "  publishing rate during the storm against the fair floor's (/s)",
                 _n(f.get("publish_eps")), f"floor {_n(f['floor_eps'])}",
                 _n(f.get("publish_vs_floor"), "{:.2f}x"), ">= 0.8x",
                 _met(f.get("publish_vs_floor", 0) >= 0.8))]
    floor = n / raw if raw else None
    confirmed = f.get("confirmed_s")
    out = [("storm", f"{n:,} new alerts -> all confirmed (s)", _n(confirmed, "{:.1f}"),
            f"{n:,} / raw publish rate {_n(floor, '{:.1f}')}",
            _n(confirmed / floor if confirmed and floor else None, "{:.2f}x"), "<= 20 s",
            _met(f.get("target_met")))]
    preload = f.get("mode", "live") == "preload"
    out.append(("storm", "  Alertmanager took every POST (s)" + (
        ", before the daemon started (not in the figure)" if preload else ""),
                _n(f.get("posted_s"), "{:.1f}"), "-", "-", "-", "n/a"))
    if preload:
        out.append(("storm", "  daemon spawned -> /readyz 200 (s)", _n(f.get("ready_s"), "{:.1f}"),
                    "-", "-", "-", "n/a"))
    out.append(("storm", "  every transition stored (s)", _n(f.get("stored_s"), "{:.1f}"),
                f"GET + json.loads of {n:,} {_n(f.get('am_fetch_s'), '{:.2f}')}", "-", "-",
                "n/a"))
    out.append(("storm", "  publishing rate during the storm (events/s)",
                _n(f.get("publish_eps")), f"raw {_n(raw)}",
                _n(f["publish_eps"] / raw if raw and f.get("publish_eps") else None,
                   "{:.2f}x"), "-", "n/a"))
    cpu, floor_cpu = f.get("storm_cpu_s") or {}, f.get("floor_cpu_s") or {}
    if cpu and floor_cpu:
        out.append(("storm", "  CPU s: relay / RabbitMQ / Alertmanager over the storm; "
                             "per core",
                    " / ".join(_n(cpu.get(k), "{:.1f}")
                               for k in ("relay", "rabbitmq", "alertmanager"))
                    + f"; {_n(f.get('storm_cpu_per_core_s'), '{:.1f}')}",
                    "floor: publisher / RabbitMQ "
                    + " / ".join(_n(floor_cpu.get(k), "{:.1f}")
                                 for k in ("publisher", "rabbitmq"))
                    + f"; {_n(f.get('floor_cpu_per_core_s'), '{:.1f}')}",
                    _n(cpu["relay"] / floor_cpu["publisher"]
                       if cpu.get("relay") and floor_cpu.get("publisher") else None,
                       "{:.2f}x"), "-", "n/a"))
    gcs = f.get("relay_gc") or {}
    if gcs.get("seconds"):
        out.append(("storm", "  collector pauses in the daemon's worker (s): "
                             "young / middle / full generations",
                    " / ".join(_n(x, "{:.2f}") for x in gcs["seconds"]),
                    "collections " + " / ".join(_n(x) for x in gcs["collections"]),
                    "-", "-", "n/a"))
    return out[:1] + fair + out[1:]


def rows_ha_storm(f: dict, _all: dict) -> list[Row]:
    n = f.get("alerts", 0)
    ha, base = f.get("ha") or {}, f.get("baseline") or {}
    shares = " / ".join(_n(s * 100 if s is not None else None, "{:.0f}%")
                        for s in ha.get("share_per_relay") or [])
    rate_ratio = (ha["eps"] / base["eps"] if ha.get("eps") and base.get("eps") else None)
    return [
        ("ha-storm", f"{n:,} new alerts, 3 relays on PostgreSQL, partitions 3 -> all "
         "confirmed (s)", _n(ha.get("confirmed_s"), "{:.1f}"),
         f"1 relay on SQLite {_n(base.get('confirmed_s'), '{:.1f}')}",
         _n(f.get("ratio"), "{:.2f}x"), f"{n:,} firing, none twice", _met(f.get("exact"))),
        ("ha-storm", "  alerts per second, first POST -> last confirm", _n(ha.get("eps")),
         f"1 relay {_n(base.get('eps'))}", _n(rate_ratio, "{:.2f}x"), "-", "n/a"),
        ("ha-storm", "  every transition decided (s)", _n(ha.get("decided_s"), "{:.1f}"),
         f"1 relay {_n(base.get('decided_s'), '{:.1f}')}", "-", "-", "n/a"),
        ("ha-storm", "  alarms on the bus / fired twice / same event_id redelivered",
         f"{_n(ha.get('firing_alarms'))} / {_n(ha.get('alarms_fired_twice'))} / "
         f"{_n(ha.get('redelivered_same_event_id'))}",
         f"1 relay {_n(base.get('firing_alarms'))} / {_n(base.get('alarms_fired_twice'))} / "
         f"{_n(base.get('redelivered_same_event_id'))}", "-", "(informative)", "n/a"),
        ("ha-storm", "  heartbeat lapses / ownership moves during the storm",
         f"{_n(sum(ha.get('heartbeat_expired') or [0]))} / "
         f"{_n(sum(c.get('taken', 0) for c in ha.get('ownership_changes_during_storm') or []))}",
         "-", "-", "0 / 0", _met(not sum(ha.get("heartbeat_expired") or [0]))),
        ("ha-storm", "  share of the events published by each relay", shares or "-", "-",
         "-", "each 20-45%", _met(bool(ha.get("share_per_relay")) and all(
             s is not None and 0.20 <= s <= 0.45 for s in ha["share_per_relay"]))),
    ]


def rows_ha_takeover(f: dict, _all: dict) -> list[Row]:
    def pair(key: str) -> str:
        got = f.get(key) or {}
        return f"{_n(got.get('median'), '{:.1f}')} / {_n(got.get('max'), '{:.1f}')}"

    rounds = f.get("rounds", 0)
    owner_bound, bus_bound = f.get("owner_bound_s"), f.get("bus_bound_s")
    claimed_max = (f.get("claimed_s") or {}).get("max")
    bus_max = (f.get("bus_s") or {}).get("max")
    return [
        ("ha-takeover", f"SIGKILL of the owner -> unit claimed by another, median / max of "
         f"{rounds} (s)", pair("claimed_s"),
         f"lease + check_interval {_n(owner_bound, '{:.0f}')}",
         _n(claimed_max / owner_bound if claimed_max and owner_bound else None, "{:.2f}x"),
         f"<= {_n(owner_bound, '{:.0f}')} s",
         _met(None if claimed_max is None else claimed_max <= owner_bound)),
        ("ha-takeover", "  -> an alert fired after the kill on the bus, median / max (s)",
         pair("bus_s"), f"+ a poll {_n(bus_bound, '{:.0f}')}",
         _n(bus_max / bus_bound if bus_max and bus_bound else None, "{:.2f}x"),
         f"<= {_n(f.get('issue_bound_s'), '{:.0f}')} s", _met(f.get("target_met"))),
        ("ha-takeover", "  -> a survivor's /readyz shows the unit, median / max (s)",
         pair("readyz_s"), "-", "-", "-", "n/a"),
        ("ha-takeover", "  alarms fired twice / same event_id redelivered",
         f"{_n(f.get('alarms_fired_twice'))} / {_n(f.get('redelivered_same_event_id'))}",
         "-", "-", "0 fired twice", _met(f.get("exact"))),
    ]


def rows_memory(f: dict, _all: dict) -> list[Row]:
    base = f.get("baseline") or {}
    rows = [("memory", f"RSS per tracked alert at {f.get('alerts', 0):,} (bytes)",
             _n(f.get("rss_per_alert_bytes")),
             f"its JSON {_n(f.get('json_bytes_per_alert'))}"
             + (f"; main {_n(base['rss_per_alert_bytes'])}" if base else ""),
             _n(f.get("ratio_to_json"), "{:.1f}x"), "<= 2,048 B",
             _met(f.get("rss_per_alert_bytes", 1e9) <= 2048))]
    if "traced_parts" in f:
        parts = f["traced_parts"]
        rows.append((
            "memory", f"  traced at {f.get('traced_alerts', 0):,}: tracker + model (bytes)",
            _n(f.get("traced_tracker_only_per_alert_bytes")),
            (f"main {_n(base['traced_tracker_only_per_alert_bytes'])}; " if base else "")
            + "lifecycle {} + model {} + decoded strings {}".format(
                *(_n(parts.get(k, 0)) for k in ("lifecycle", "model", "decoded"))),
            "-", "<= 1,024 B",
            _met(f.get("traced_tracker_only_per_alert_bytes", 1e9) <= 1024)))
    else:
        rows.append(("memory", "  traced: tracker state only / with parse cache (bytes)",
                     f"{_n(f.get('traced_tracker_only_per_alert_bytes'))} / "
                     f"{_n(f.get('traced_per_alert_bytes'))}", "-", "-", "-", "n/a"))
    by_size = f.get("rss_by_size") or {}
    if len(by_size) > 1:
        sizes = ", ".join(f"{int(k):,}" for k in by_size)
        base_sizes = base.get("rss_by_size") or {}
        rows.append(("memory", f"  RSS per alert at {sizes} (bytes)",
                     " / ".join(_n(v) for v in by_size.values()),
                     ("main " + " / ".join(_n(v) for v in base_sizes.values()))
                     if base_sizes else "-",
                     _n(f.get("rss_spread"), "{:.2f}x"), "flat within 15%",
                     _met(f.get("rss_spread", 9) <= 1.15)))
    return rows


def rows_startup(f: dict, _all: dict) -> list[Row]:
    return [("startup", f"start -> /readyz 200, median of {f.get('runs')} (s)",
             _n(f.get("readyz_median_s"), "{:.2f}"),
             f"`import daemon.service` {_n(f.get('import_floor_median_s'), '{:.2f}')}",
             _n(f.get("ratio"), "{:.2f}x"), "<= 2 s", _met(f.get("target_met")))]


def rows_soak(f: dict, _all: dict) -> list[Row]:
    if not f.get("checked"):
        return [("soak", "not enough samples after the warm-up", "-", "-", "-", "-", "n/a")]
    mib = 2 ** 20
    warm = f"{f.get('warmup_s', 120) / 60:g} min"
    return [
        ("soak", f"RSS growth after the first {warm} (max of the samples, %)",
         _n(100 * f["rss_growth"], "{:.1f}"),
         f"RSS at {warm} {_n(f['rss_at_warmup_bytes'] / mib, '{:.1f}')} MiB",
         _n(f["rss_max_bytes"] / f["rss_at_warmup_bytes"], "{:.3f}x"), "<= 5%",
         _met(f["rss_ok"])),
        ("soak", "  open file descriptors: highest level of a later minute", _n(f["fds_max"]),
         f"first minute after {warm} {_n(f['fds_at_warmup'])}", "-", "no growth",
         _met(f["fds_ok"])),
        ("soak", "  threads: highest level of a later minute", _n(f["threads_max"]),
         f"first minute after {warm} {_n(f['threads_at_warmup'])}", "-", "no growth",
         _met(f["threads_ok"])),
        ("soak", "  outbox back to 0 after RabbitMQ's return (s)", _n(f.get("drain_s"), "{:.1f}"),
         f"outbox max {_n(f.get('outbox_max'))} events, outage {_n(f.get('outage_s'))} s",
         "-", "<= 30 s", _met(f.get("drain_ok"))),
        ("soak", "  events lost (decided - received by a consumer)", _n(f.get("lost")),
         f"decided {_n(f.get('decided'))}, received {_n(f.get('received_unique'))} "
         f"(+{_n(f.get('duplicates'))} duplicates)", "-", "0", _met(f.get("lost") == 0)),
        ("soak", "  event-loop tasks / SQLite file (KiB): max after the warm-up",
         f"{_n(f['tasks_max'])} / {_n(f['state_bytes_max'] / 1024)}",
         f"at {warm} {_n(f['tasks_at_warmup'])} / {_n(f['state_bytes_at_warmup'] / 1024)}",
         "-", "-", "n/a"),
    ]


ROWS: dict[str, Callable[[dict, dict], list[Row]]] = {
    "transform": rows_transform, "poll": rows_poll, "publish": rows_publish,
    "publish-postgresql": rows_publish_postgresql, "e2e": rows_e2e,
    "ha-storm": rows_ha_storm, "ha-takeover": rows_ha_takeover,
    "storm": rows_storm, "memory": rows_memory, "startup": rows_startup, "soak": rows_soak,
}


def _without_series(figures: Any) -> Any:
    """Figures without their time series (kept in the RESULTS comment, plotted elsewhere)."""
    if not isinstance(figures, dict):
        return figures
    return {k: v for k, v in figures.items() if k != "samples"}


def render(results: dict[str, Any], info: dict[str, Any]) -> str:
    lines = [BEGIN, "",
             f"Generated by `python -m benchmarks` (`make bench`) on {info['written_at']}"
             f"{' with `--quick` (smaller sizes)' if info.get('quick') else ''}; "
             "the text between the markers is rewritten at every run.", "",
             "### Machine", "",
             "| CPU | cores | RAM | kernel | load average (1, 5, 15 min) at start / end |",
             "| --- | --- | --- | --- | --- |"]
    m = info["machine"]
    lines.append(f"| {m['cpu']} | {m['cores']} | {m['ram']} | {m['kernel']} | "
                 f"{m['load_at_start']} / {info.get('load_at_end', '?')} |")
    order = VERSION_ORDER
    shown = sorted(info["versions"].items(),
                   key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    lines += ["", "### Versions", "", "| " + " | ".join(k for k, _ in shown) + " |",
              "|" + " --- |" * len(shown),
              "| " + " | ".join(v for _, v in shown) + " |", "",
              "### Figures", "",
              "Every baseline is measured in the same run, on the same machine, next to "
              "the figure.", "",
              "| benchmark | figure | value | baseline (same run) | ratio | target | |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    for bench in BENCHES:
        record = results.get(bench.name)
        if record is None:
            lines.append(f"| {bench.name} | {bench.what} | not run | | | | |")
            continue
        figures = record.get("figures")
        if not figures:
            lines.append(f"| {bench.name} | {bench.what} | {record['status']} | | | | |")
            continue
        rows = ROWS[bench.name](figures, results)
        for row in rows:
            lines.append("| " + " | ".join(row) + " |")
        extra = []
        if record["status"] != "ok":
            extra.append(record["status"])
        if record.get("ran_at") != info["written_at_short"]:
            extra.append(f"figures from an earlier run ({record.get('ran_at')})")
        if record.get("quick") and not info.get("quick"):
            extra.append("quick sizes")
        if extra:
            notes.append(f"- {bench.name}: " + "; ".join(extra))
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", "Wall time per benchmark: " + ", ".join(
        f"{name} {rec['seconds']:.0f} s" for name, rec in results.items() if "seconds" in rec)
        + ".", "",
        "<details><summary>Raw figures (JSON, as each benchmark printed them)</summary>", "",
        "<!-- RESULTS", json.dumps(results), "-->", "",
        "<!-- INFO", json.dumps(info), "-->", "",
        "```json", json.dumps({k: _without_series(v.get("figures"))
                               for k, v in results.items()}, indent=1),
        "```", "", "</details>", "", END]
    return "\n".join(lines)


def previous_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    found = RAW_RE.search(path.read_text())
    if not found:
        return {}
    try:
        return json.loads(found.group(1))
    except json.JSONDecodeError:
        return {}


def write_doc(path: Path, generated: str) -> None:
    analysis = ANALYSIS.read_text() if ANALYSIS.exists() else ""
    head = ("# Performance\n\n"
            "How fast alarm-relay is, measured by one suite (`make bench`, `tox -e bench` or "
            "`python -m benchmarks`; `--quick` for a smaller run, `--only NAME ...` for some)"
            " against real services on loopback: Alertmanager, RabbitMQ and the daemon as a "
            "process. Each benchmark is also a script in benchmarks/ that runs on its own "
            "and prints its figures as one JSON line.\n\n")
    path.write_text(head + generated + "\n\n" + analysis.strip() + "\n")


def render_only(path: Path) -> int:
    results = previous_results(path)
    if not results:
        log(f"{path} holds no figures; run the suite first")
        return 1
    text = path.read_text()
    info_re = re.compile(r"<!-- INFO\n(.*?)\n-->", re.S)
    found = info_re.search(text)
    if not found:
        log(f"{path} has no run information; run the suite first")
        return 1
    info = json.loads(found.group(1))
    ordered = {b.name: results[b.name] for b in BENCHES if b.name in results}
    write_doc(path, render(ordered, info))
    log(f"rewrote {path} from the figures of {info['written_at']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    names = [b.name for b in BENCHES]
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these ({', '.join(names)})")
    parser.add_argument("--skip", nargs="+", choices=names, metavar="NAME", default=[])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    parser.add_argument("--output", type=Path, default=DOC, help="document to write")
    parser.add_argument("--profile", nargs="+", choices=names, metavar="NAME", default=[],
                        help="run these under py-spy record --subprocesses")
    parser.add_argument("--profile-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "alarm-relay-bench-profiles")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: rewrite the document from the figures it holds "
                             "(after editing benchmarks/analysis.md)")
    args = parser.parse_args(argv)
    if args.render_only:
        return render_only(args.output)

    selected = [b for b in BENCHES if (not args.only or b.name in args.only)
                and b.name not in args.skip]
    results = previous_results(args.output)
    info: dict[str, Any] = {"machine": machine(), "versions": versions(), "quick": args.quick}
    log(f"machine: {info['machine']}")
    began = time.monotonic()
    for bench in selected:
        results[bench.name] = run_bench(
            bench, args.quick, args.profile_dir if bench.name in args.profile else None)
    now = dt.datetime.now(dt.UTC)
    info["written_at"] = now.strftime("%Y-%m-%d %H:%M UTC")
    info["written_at_short"] = info["written_at"]
    # rows of this run carry its time; earlier rows keep theirs
    for bench in selected:
        results[bench.name]["ran_at"] = info["written_at"]
    info["load_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    ordered = {b.name: results[b.name] for b in BENCHES if b.name in results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_doc(args.output, render(ordered, info))
    log(f"wrote {args.output} after {time.monotonic() - began:.0f}s")
    failed = [b.name for b in selected if results[b.name]["status"] != "ok"]
    if failed:
        log(f"did not finish: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
