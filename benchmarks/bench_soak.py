"""Benchmark: a soak - steady churn for 10 minutes, and nothing in the relay grows.

A real Alertmanager 0.25 (webhook receiver on: the relay's ``/v1/alerts``, grouped by
alertname, ``group_wait`` 1 s, ``group_interval`` 2 s), the daemon as a process (polls every
2 s) and a PRIVATE RabbitMQ node started by the harness (``RabbitNode``: its own ports,
cookie and data; the machine's shared broker is never touched), with a consumer counting every
event it receives.  A churn thread keeps 2,000 alerts firing and resolving at random, about 20
transitions a second (each step fires an alert that is resolved, or resolves one that fires;
firing alerts are sent again every 60 s with ``endsAt`` 5 minutes ahead, as Prometheus does).
In the middle, RabbitMQ's application is stopped for ``--outage`` seconds and started again.

Every 10 s (``--sample``) the relay's worker process is sampled: RSS, open file descriptors
and threads (from /proc), event-loop tasks and outbox depth (from /metrics), and the SQLite
state file's size (with its WAL); the outbox depth is also read every 0.5 s to time the drain.
At the end the churn stops, the outbox drains, and the consumer's count is compared with the
relay's: every transition decided must have been received (lost = decided - received).

Checks (after the first ``--warmup`` seconds, 120 by default): RSS grows by at most 5% (the
highest sample against the first one after the warm-up), open fds and threads not at all
(their level, the median of each minute's samples, against the first minute's), the outbox is
back to 0 within 30 s of RabbitMQ's return, and nothing is lost.  The
samples are plotted into ``--plot`` (docs/soak.png) with matplotlib.

    python benchmarks/bench_soak.py [--duration 600] [--outage 30] [--plot docs/soak.png]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.common import log  # noqa: E402
from tools.harness.bus import Consumer  # noqa: E402
from tools.harness.relay import RelayProcess  # noqa: E402
from tools.harness.services import Alertmanager, RabbitNode  # noqa: E402

RSS_GROWTH_MAX = 0.05
DRAIN_MAX_S = 30.0
RESEND_S = 60.0


# -- the churn -------------------------------------------------------------------

class Churn(threading.Thread):
    """Fires and resolves ``alerts`` alerts at random, ``rate`` transitions per second."""

    def __init__(self, am: Alertmanager, alerts: int, rate: float, seed: int = 16) -> None:
        super().__init__(daemon=True, name="churn")
        self.am = am
        self.n = alerts
        self.rate = rate
        self.random = random.Random(seed)
        self.firing: dict[int, dt.datetime] = {}  # alert -> its startsAt
        self.sent_at: dict[int, float] = {}
        self.stop = threading.Event()
        self.fired = self.resolved = self.posts = self.failed_posts = 0

    def _alert(self, i: int, starts: dt.datetime, ends: dt.datetime) -> dict[str, Any]:
        return common.api_alert(i, "soak", starts=starts, ends=ends)

    def _post(self, batch: list[dict[str, Any]]) -> None:
        try:
            self.am.post_alerts(batch)
            self.posts += 1
        except Exception as err:  # noqa: BLE001 - Alertmanager busy: the next step retries
            self.failed_posts += 1
            log(f"POST to Alertmanager failed: {err}")

    def seed(self) -> None:
        """Start at the churn's steady state: half the alerts firing."""
        now = dt.datetime.now(dt.UTC)
        mono = time.monotonic()
        chosen = self.random.sample(range(self.n), self.n // 2)
        for start in range(0, len(chosen), 500):
            batch = []
            for i in chosen[start:start + 500]:
                self.firing[i] = now
                # spread the resends over the first minute
                self.sent_at[i] = mono - self.random.uniform(0, RESEND_S)
                batch.append(self._alert(i, now, now + dt.timedelta(minutes=5)))
            self._post(batch)
        self.fired += len(chosen)

    def run(self) -> None:
        tick = 0.25
        per_tick = self.rate * tick
        owed = 0.0
        next_tick = time.monotonic()
        while not self.stop.is_set():
            now = dt.datetime.now(dt.UTC)
            mono = time.monotonic()
            owed += per_tick
            batch = []
            while owed >= 1:
                owed -= 1
                i = self.random.randrange(self.n)
                if i in self.firing:
                    batch.append(self._alert(i, self.firing.pop(i), now))
                    self.sent_at.pop(i, None)
                    self.resolved += 1
                else:
                    self.firing[i] = now
                    self.sent_at[i] = mono
                    batch.append(self._alert(i, now, now + dt.timedelta(minutes=5)))
                    self.fired += 1
            # Prometheus sends every firing alert again, well before its endsAt.
            for i, sent in list(self.sent_at.items()):
                if mono - sent >= RESEND_S:
                    self.sent_at[i] = mono
                    batch.append(self._alert(i, self.firing[i], now + dt.timedelta(minutes=5)))
            if batch:
                self._post(batch)
            next_tick += tick
            self.stop.wait(max(0.0, next_tick - time.monotonic()))


# -- sampling ----------------------------------------------------------------------

def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "Threads:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0])
    return out


def worker_pid(relay: RelayProcess) -> int:
    """The process doing the work: the oslo.service worker the master forked.

    The master (a few threads, no state) is taken only while there is no worker.
    """
    assert relay.proc is not None
    children = common.descendants(relay.proc.pid)
    if not children:
        return relay.proc.pid
    return max(children, key=lambda pid: _proc_status(pid).get("Threads", 0))


class Sampler(threading.Thread):
    """Every ``interval`` seconds: the relay's resources; every 0.5 s: its outbox depth."""

    def __init__(self, relay: RelayProcess, interval: float, began: float) -> None:
        super().__init__(daemon=True, name="sampler")
        self.relay = relay
        self.interval = interval
        self.began = began
        self.samples: list[dict[str, float]] = []
        self.depths: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def state_bytes(self) -> int:
        total = 0
        for path in self.relay.state_dir.glob("*"):
            if path.is_file() and ("sqlite" in path.name or path.suffix in (".db", "-wal")):
                total += path.stat().st_size
        return total

    def sample(self) -> None:
        pid = worker_pid(self.relay)
        status = _proc_status(pid)
        text = common.scrape(self.relay.url, timeout=10)
        self.samples.append({
            "t": round(time.monotonic() - self.began, 1),
            "rss_bytes": status["VmRSS"] * 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": status["Threads"],
            "tasks": common.metric_sum(text, "alarm_relay_event_loop_tasks"),
            "outbox": common.metric_sum(text, "alarm_relay_outbox_depth"),
            "state_bytes": self.state_bytes(),
            "tracked": common.metric_sum(text, "alarm_relay_alerts_tracked"),
            "transitions": common.metric_sum(text, "alarm_relay_transitions_total"),
            "published": common.metric_sum(text, "alarm_relay_events_published_total"),
        })

    def run(self) -> None:
        next_sample = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                text = common.scrape(self.relay.url, timeout=5)
                self.depths.append((round(now - self.began, 2),
                                    common.metric_sum(text, "alarm_relay_outbox_depth")))
                if now >= next_sample:
                    next_sample += self.interval
                    self.sample()
            except Exception as err:  # noqa: BLE001 - a slow scrape only loses a sample
                log(f"sample failed: {err}")
            self.stop.wait(0.5)


# -- checks and the picture ----------------------------------------------------------------

def _level(samples: list[dict[str, float]], key: str) -> float:
    values = sorted(s[key] for s in samples)
    return values[len(values) // 2]


def verdict(samples: list[dict[str, float]], warmup: float) -> dict[str, Any]:
    """The checks after the warm-up.

    RSS: the highest sample against the first one after the warm-up.  Open fds, threads
    and tasks: their level (the median of a minute's samples) in each later minute against
    the first minute after the warm-up: a request in flight holds a socket for a moment,
    which is no growth, while a leak raises the level for good.
    """
    after = [s for s in samples if s["t"] >= warmup]
    if len(after) < 3:
        return {"checked": False}
    minutes: dict[int, list[dict[str, float]]] = {}
    for sample in after:
        minutes.setdefault(int((sample["t"] - warmup) // 60), []).append(sample)
    windows = [minutes[k] for k in sorted(minutes)]
    first_minute, later = windows[0], windows[1:] or windows[:1]
    first = after[0]
    rss_max = max(s["rss_bytes"] for s in after)
    out: dict[str, Any] = {
        "checked": True,
        "rss_at_warmup_bytes": first["rss_bytes"], "rss_max_bytes": rss_max,
        "rss_last_bytes": after[-1]["rss_bytes"],
        "rss_growth": round(rss_max / first["rss_bytes"] - 1, 4),
        "rss_growth_last": round(after[-1]["rss_bytes"] / first["rss_bytes"] - 1, 4),
        "state_bytes_at_warmup": first["state_bytes"],
        "state_bytes_max": max(s["state_bytes"] for s in after),
        "tracked_at_warmup": first["tracked"],
        "tracked_max": max(s["tracked"] for s in after),
    }
    for key in ("fds", "threads", "tasks"):
        out[f"{key}_at_warmup"] = _level(first_minute, key)
        out[f"{key}_max"] = max(_level(window, key) for window in later)
        out[f"{key}_levels"] = [_level(window, key) for window in windows]
    out["rss_ok"] = out["rss_growth"] <= RSS_GROWTH_MAX
    out["fds_ok"] = out["fds_max"] <= out["fds_at_warmup"]
    out["threads_ok"] = out["threads_max"] <= out["threads_at_warmup"]
    return out


def drain_time(depths: list[tuple[float, float]], back_at: float) -> float | None:
    """Seconds from RabbitMQ's return until the outbox depth was 0 again."""
    for t, depth in depths:
        if t >= back_at and depth == 0:
            return round(t - back_at, 1)
    return None


def plot(path: Path, samples: list[dict[str, float]], depths: list[tuple[float, float]],
         outage: tuple[float, float] | None, warmup: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["t"] / 60 for s in samples]
    rates = [0.0] + [(b["published"] - a["published"]) / max(b["t"] - a["t"], 1e-9)
                     for a, b in zip(samples, samples[1:], strict=False)]
    panels = [
        ("resident memory (MiB); dashed: the +5% limit",
         [s["rss_bytes"] / 2**20 for s in samples], None),
        ("open file descriptors", [s["fds"] for s in samples], None),
        ("threads", [s["threads"] for s in samples], None),
        ("event-loop tasks", [s["tasks"] for s in samples], None),
        ("outbox depth (events)", [d for _, d in depths], [t / 60 for t, _ in depths]),
        ("SQLite state file (KiB)", [s["state_bytes"] / 1024 for s in samples], None),
        ("alarms firing in the relay", [s["tracked"] for s in samples], None),
        ("events confirmed by RabbitMQ per second", rates, None),
    ]
    fig, axes = plt.subplots(4, 2, figsize=(11, 10), sharex=True)
    for ax, (label, values, xs) in zip(axes.flat, panels, strict=True):
        ax.plot(xs or minutes, values, color="tab:blue", linewidth=1.4,
                marker="" if xs else "o", markersize=3)
        ax.set_title(label, fontsize=10, loc="left")
        ax.axvspan(0, warmup / 60, color="0.9", zorder=0)
        if outage:
            ax.axvspan(outage[0] / 60, outage[1] / 60, color="tab:red", alpha=0.15, zorder=0)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0, top=max(values + [1]) * 1.15)
    after = [s["rss_bytes"] for s in samples if s["t"] >= warmup]
    if after:
        axes.flat[0].axhline(after[0] / 2**20 * (1 + RSS_GROWTH_MAX), color="tab:orange",
                             linestyle="--", linewidth=1)
    for ax in axes[-1]:
        ax.set_xlabel("minutes since the relay started")
    fig.suptitle(title, fontsize=11)
    handles = [plt.Rectangle((0, 0), 1, 1, color="0.9"),
               plt.Rectangle((0, 0), 1, 1, color="tab:red", alpha=0.15)]
    fig.legend(handles, ["warm-up (not judged)", "RabbitMQ stopped"], loc="lower center",
               ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- main ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds of churn (the outage is in the middle)")
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="transitions per second")
    parser.add_argument("--outage", type=float, default=30.0,
                        help="seconds RabbitMQ is stopped, in the middle of the run")
    parser.add_argument("--warmup", type=float, default=120.0,
                        help="seconds not judged at the start")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--plot", type=Path,
                        default=Path(__file__).resolve().parents[1] / "docs" / "soak.png")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    name = common.unique_name("bench-soak")
    exchange, topic = f"{name}-x", name
    result: dict[str, Any] = {"benchmark": "soak", "duration_s": args.duration,
                              "alerts": args.alerts, "rate": args.rate,
                              "outage_s": args.outage, "poll_interval_s": args.poll_interval,
                              "warmup_s": args.warmup, "sample_s": args.sample}
    log(f"starting a private RabbitMQ node in {work}")
    with RabbitNode(workdir=work / "rabbit") as rabbit:
        relay = RelayProcess(
            mapping_path=common.write_mapping(work), transport_url=rabbit.transport_url,
            alertmanager_urls=[], workdir=work / "relay",
            sections={"DEFAULT": {"control_exchange": exchange},
                      "oslo_messaging_notifications": {"topics": topic},
                      "oslo_messaging_rabbit": {"amqp_durable_queues": True,
                                                "rabbit_retry_interval": 1,
                                                "rabbit_interval_max": 2},
                      "alertmanager": {"poll_interval": args.poll_interval, "timeout": 10.0},
                      "lifecycle": {"resolve_grace_period": 3.0}})
        with Alertmanager(webhook_url=f"{relay.url}/v1/alerts", group_wait="1s",
                          group_interval="2s", resolve_timeout="5m",
                          workdir=work / "am") as am, \
                Consumer(rabbit.transport_url, exchange=exchange, topic=topic,
                         conf_dir=work) as consumer:
            relay.rewrite_config({"alertmanager": {"urls": [am.url]}})
            began = time.monotonic()
            relay.start(timeout=60)
            churn = Churn(am, args.alerts, args.rate)
            churn.seed()
            sampler = Sampler(relay, args.sample, began)
            sampler.start()
            churn.start()
            outage: tuple[float, float] | None = None
            try:
                middle = began + args.duration / 2 - args.outage / 2
                time.sleep(max(0.0, middle - time.monotonic()))
                if args.outage > 0:
                    log("stopping RabbitMQ's application")
                    stopped = time.monotonic() - began
                    rabbit.stop_app()
                    time.sleep(args.outage)
                    rabbit.start_app()
                    outage = (stopped, time.monotonic() - began)
                    log(f"RabbitMQ back after {outage[1] - outage[0]:.0f} s")
                time.sleep(max(0.0, began + args.duration - time.monotonic()))
            finally:
                churn.stop.set()
                churn.join(10)
            # Let the last webhooks and polls through, then the outbox drain.
            settle_until = time.monotonic() + 60
            time.sleep(3 * args.poll_interval)
            while time.monotonic() < settle_until:
                text = common.scrape(relay.url)
                depth = common.metric_sum(text, "alarm_relay_outbox_depth")
                decided = common.metric_sum(text, "alarm_relay_transitions_total")
                if depth == 0 and len(set(consumer.collector.event_ids())) >= decided:
                    break
                time.sleep(1)
            sampler.stop.set()
            sampler.join(15)
            text = common.scrape(relay.url)
            decided = common.metric_sum(text, "alarm_relay_transitions_total")
            published = common.metric_sum(text, "alarm_relay_events_published_total")
            ids = consumer.collector.event_ids()
            unique = len(set(ids))
            relay.stop()
    samples = sampler.samples
    checks = verdict(samples, args.warmup)
    drain = drain_time(sampler.depths, outage[1]) if outage else None
    result.update({
        "fired": churn.fired, "resolved": churn.resolved, "posts": churn.posts,
        "failed_posts": churn.failed_posts,
        "transitions_per_s": round(decided / args.duration, 1),
        "decided": int(decided), "published": int(published), "received": len(ids),
        "received_unique": unique, "duplicates": len(ids) - unique,
        "lost": int(decided) - unique,
        "outage_at_s": outage[0] if outage else None,
        "back_at_s": outage[1] if outage else None,
        "outbox_max": max((d for _, d in sampler.depths), default=None),
        "drain_s": drain, "drain_ok": drain is not None and drain <= DRAIN_MAX_S,
        **checks, "samples": samples,
    })
    result["target_met"] = bool(checks.get("checked") and checks["rss_ok"]
                                and checks["fds_ok"] and checks["threads_ok"]
                                and result["drain_ok"] and result["lost"] == 0)
    if args.plot and samples:
        title = (f"alarm-relay soak: {args.alerts:,} alerts churning at "
                 f"{result['transitions_per_s']:.0f} transitions/s for "
                 f"{args.duration / 60:.0f} min, webhooks on, polls every "
                 f"{args.poll_interval:g} s; lost {result['lost']}")
        plot(args.plot, samples, sampler.depths, outage, args.warmup, title)
        result["plot"] = str(args.plot)
    log(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    common.emit(result)
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
