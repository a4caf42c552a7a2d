"""``make demo``: alarm-relay against real services on loopback, events printed as they arrive.

What it does, in order (every service on a free 127.0.0.1 port, in a temp dir):

1. makes sure the machine's RabbitMQ answers on 127.0.0.1:5672 (starts it if not; never
   stops it: it is shared);
2. starts a node exporter, Prometheus scraping it (target label ``fqdn``) with the demo's
   alert rule (``etc/alarm-relay/demo/prometheus-rules.yaml``), Aetos in noauth mode in
   front of Prometheus, and Alertmanager with its webhook pointing at the relay;
3. starts ``alarm-relay-manage listen`` on the demo's topic with a pool of its own and
   prints every event it receives (``[bus]`` lines);
4. writes a relay config (metrics via Aetos, a control exchange and topic of its own) and
   runs the daemon ``alarm-relay --config-file ...``; its log is streamed (``[relay]``);
5. posts the seed's four alerts to Alertmanager (``etc/alarm-relay/demo/alerts.json``,
   startsAt = now); Prometheus fires ``DemoHostLoad`` on its own;
6. once their alarm.firing events are on the bus, resolves AvgCPUTimeOnIdleMode and
   HighInodeUsage (re-POST with endsAt = now) and silences HighTrafficOnBridge: the bus
   shows two alarm.resolved and one alarm.updated with ``silenced_by``;
7. runs until Ctrl-C (or ``--duration`` seconds after everything started), then stops
   everything it started, by PID, removes
   its exchange and queues from the broker and prints a summary.

With ``--with-watcher`` it also starts a real Watcher (decision engine and API, noauth, in
its own venv ``.venv-watcher``, installed on first use with the test strategy plugin of
``tools/harness/watcher_plugin``) and ``alarm-relay-watcher`` with the rules of
``etc/alarm-relay/demo/watcher-rules.yaml``: ``[watcher]`` lines show the bridge's log and
the audits as Watcher runs them (one per alarm and rule, a cooldown skip for the second
critical alarm on the same VM).

Exit status: 0 when events arrived on the bus, 1 when none did, 2 when a service failed to
start. Run it from the repository root: ``.venv/bin/python tools/demo.py [--duration N]``.
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime as dt
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TextIO

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python tools/demo.py` puts tools/ first, not the repo
    sys.path.insert(0, str(REPO))

from tools.harness.ports import LOOPBACK  # noqa: E402
from tools.harness.relay import RelayProcess, relay_script  # noqa: E402
from tools.harness.services import (  # noqa: E402
    SHARED_RABBIT_URL,
    Aetos,
    Alertmanager,
    NodeExporter,
    Prometheus,
    ScrapeTarget,
    Service,
    ServiceError,
    ensure_shared_rabbitmq,
)

DEMO_DIR = REPO / "etc" / "alarm-relay" / "demo"
WATCHER_RULES_FILE = DEMO_DIR / "watcher-rules.yaml"
#: The audit template the demo's rules name (goal dummy, the test strategy).
WATCHER_TEMPLATE = "demo-alarm-audit"
ALERTS_FILE = DEMO_DIR / "alerts.json"
MAPPING_FILE = DEMO_DIR / "mappings.yaml"
RULES_FILE = DEMO_DIR / "prometheus-rules.yaml"

#: The ``fqdn`` target label Prometheus puts on the node exporter's series, as a compute
#: node carries it in a real cloud; the relay resolves DemoHostLoad's resource to it.
DEMO_FQDN = "compute-0.demo.example.org"
#: The seed's sequence (fixtures/alertmanager/api_v2_alerts_after_resolve_and_silence.json).
TO_RESOLVE = ("AvgCPUTimeOnIdleMode", "HighInodeUsage")
TO_SILENCE = "HighTrafficOnBridge"
DEMO_RULE_ALERT = "DemoHostLoad"

POLL_INTERVAL = 2.0
#: How long to wait for the firing events before moving on to resolve and silence anyway.
FIRING_WAIT = 30.0
#: Pause between "all firing" and the resolve/silence step, so the two phases read apart.
PHASE_PAUSE = 3.0
#: Re-post still-firing alerts this often, as Prometheus would (they expire otherwise).
REFRESH_EVERY = 60.0
AMQP_URL = SHARED_RABBIT_URL.replace("rabbit://", "amqp://").rstrip("/") + "//"

_COLORS = {"demo": "1;34", "relay": "2", "bus": "1", "watcher": "1;35", "alarm.firing": "31",
           "alarm.updated": "33", "alarm.resolved": "32", "error": "1;31"}


class Output:
    """Prefixed, optionally coloured lines on stdout from several threads."""

    def __init__(self, stream: TextIO, color: bool) -> None:
        self._stream = stream
        self._color = color
        self._lock = threading.Lock()

    def paint(self, text: str, key: str) -> str:
        code = _COLORS.get(key)
        return f"\033[{code}m{text}\033[0m" if self._color and code else text

    def line(self, prefix: str, text: str, key: str | None = None) -> None:
        head = self.paint(f"[{prefix}]", key or prefix)
        with self._lock:
            try:
                self._stream.write(f"{head} {text}\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the reader went away: keep running
                pass

    def demo(self, text: str) -> None:
        self.line("demo", text)


def _utc(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_alerts(starts_at: dt.datetime) -> list[dict[str, Any]]:
    """The seed's four alerts as posted, with startsAt = now and no endsAt (firing)."""
    alerts = json.loads(ALERTS_FILE.read_text())
    for alert in alerts:
        alert["startsAt"] = _utc(starts_at)
        alert.pop("endsAt", None)
    return alerts


def describe_event(line: dict[str, Any]) -> str:
    """One readable line for a ``listen`` JSON line (the news first, then the resource)."""
    payload = line.get("payload") or {}
    parts = [f"{payload.get('name', '?'):<21}", f"alarm_id={payload.get('alarm_id')}",
             f"seq={payload.get('sequence')}", f"severity={payload.get('severity')}"]
    if payload.get("reason"):
        parts.append(f"reason={payload['reason']}")
    if payload.get("silenced_by"):
        parts.append(f"silenced_by={','.join(payload['silenced_by'])}")
    resource = payload.get("resource") or {}
    if not resource.get("mapped"):
        parts.append("resource=unmapped")
    else:
        props = ",".join(f"{k}={v}" for k, v in (resource.get("properties") or {}).items())
        kind = resource.get("type")
        text = f"{kind}:{resource.get('id')} ({props})" if kind else f"({props})"
        if resource.get("resolved") is False and resource.get("unresolved_reason"):
            text += f" not resolved: {_shorten(resource['unresolved_reason'])}"
        parts.append(f"resource={text}")
    if payload.get("metrics"):
        parts.append("metrics=" + json.dumps(payload["metrics"], sort_keys=True))
    return "  ".join(parts)


class Demo:
    def __init__(self, out: Output, duration: float | None, *, keep: bool = False,
                 with_watcher: bool = False) -> None:
        self.out = out
        self.keep = keep
        self.with_watcher = with_watcher
        self.watcher: Any = None
        self.bridge: Any = None
        self.audits: dict[str, str] = {}
        self.duration = duration
        self.began = time.monotonic()
        self.tag = uuid.uuid4().hex[:8]
        self.exchange = f"alarm-relay-demo-{self.tag}"
        self.topic = f"alarms-demo-{self.tag}"
        self.pool = f"demo-{self.tag}"
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="alarm-relay-demo-"))
        self.services: list[Service] = []
        self.relay: RelayProcess | None = None
        self.listen: subprocess.Popen[str] | None = None
        self.alertmanager: Alertmanager | None = None
        self.alerts: list[dict[str, Any]] = []
        self.stop_event = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.events_changed = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.broker_entities = False

    # -- the scenario
    def run(self) -> int:
        out = self.out
        out.demo(f"work dir {self.workdir}")
        ensure_shared_rabbitmq()
        out.demo(f"RabbitMQ answers on {LOOPBACK}:5672 (shared; the demo never stops it)")

        # The relay's config names the exchange and topic, and the listener reads them from
        # it: write it first, so the listener can connect while the services start.
        self.relay = RelayProcess(
            mapping_path=MAPPING_FILE, transport_url=SHARED_RABBIT_URL,
            alertmanager_urls=[], workdir=self.workdir / "relay",
            sections={
                "DEFAULT": {"control_exchange": self.exchange, "graceful_shutdown_timeout": 10},
                "alertmanager": {"poll_interval": POLL_INTERVAL, "cluster_name": "demo"},
                "oslo_messaging_notifications": {"topics": self.topic},
            })
        self._start_listen()

        exporter = self._start(NodeExporter(workdir=self.workdir / "node-exporter"))
        self.alertmanager = self._start(Alertmanager(
            webhook_url=f"{self.relay.url}/v1/alerts", workdir=self.workdir / "alertmanager"))
        # Alertmanager before Prometheus: Prometheus sends a new alert once, then only every
        # minute (--rules.alert.resend-delay).
        prometheus = self._start(Prometheus(
            targets=[ScrapeTarget(exporter.address, {"fqdn": DEMO_FQDN})],
            rules=RULES_FILE.read_text(), alertmanagers=[self.alertmanager],
            workdir=self.workdir / "prometheus"))
        aetos = self._start(Aetos(prometheus=prometheus, workdir=self.workdir / "aetos"))
        self.relay.rewrite_config({
            "alertmanager": {"urls": [self.alertmanager.url]},
            "datasources": {"metrics": "aetos"},
            "aetos_client": {"endpoint_override": aetos.url, "auth_mode": "noauth"},
        })
        self._wait_for_consumer()
        if self.with_watcher:
            self._start_watcher()
        self._start_relay()
        # --duration is the scenario's: it starts now, however long the services took.
        self.began = time.monotonic()

        started = dt.datetime.now(dt.UTC)
        self.alerts = load_alerts(started)
        self.alertmanager.post_alerts(self.alerts)
        names = [a["labels"]["alertname"] for a in self.alerts]
        out.demo(f"posted the seed's {len(names)} alerts to Alertmanager: {', '.join(names)}")
        out.demo(f"Prometheus fires {DEMO_RULE_ALERT} itself (rule over the node exporter)")

        expected = {*names, DEMO_RULE_ALERT}
        if not self._wait(lambda: expected <= self._names("alarm.firing"), FIRING_WAIT):
            if self.stop_event.is_set():
                return self._finish()
            missing = expected - self._names("alarm.firing")
            out.demo(f"no alarm.firing yet for {', '.join(sorted(missing))}; going on")
        if not self._sleep(PHASE_PAUSE):
            return self._finish()

        self._resolve_and_silence()
        self._wait(lambda: (set(TO_RESOLVE) <= self._names("alarm.resolved")
                            and TO_SILENCE in self._names("alarm.updated")), 30)
        if self.with_watcher:
            self._wait(self._audits_done, 60)
        if not self.stop_event.is_set():
            if self.duration is None:
                out.demo("scenario done; the relay keeps running. Ctrl-C stops everything.")
            else:
                out.demo(f"scenario done; stopping at the end of --duration {self.duration:g}s")
        last_refresh = time.monotonic()
        while self._sleep(1.0):
            if time.monotonic() - last_refresh >= REFRESH_EVERY:
                self.alertmanager.post_alerts(self._firing_alerts())
                last_refresh = time.monotonic()
        return self._finish()

    def _resolve_and_silence(self) -> None:
        assert self.alertmanager is not None
        now = dt.datetime.now(dt.UTC)
        resolved = []
        for alert in self.alerts:
            if alert["labels"]["alertname"] in TO_RESOLVE:
                done = copy.deepcopy(alert)
                done["endsAt"] = _utc(now)
                resolved.append(done)
        self.alertmanager.post_alerts(resolved)
        self.out.demo(f"resolved {' and '.join(TO_RESOLVE)} (re-POSTed with endsAt = now)")
        silence = self.alertmanager.add_silence(
            {"alertname": TO_SILENCE}, duration=3600, comment="alarm-relay demo",
            created_by="tools/demo.py")
        self.out.demo(f"silenced {TO_SILENCE} (silence {silence})")

    def _firing_alerts(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["labels"]["alertname"] not in TO_RESOLVE]

    # -- processes
    def _start(self, service: Service) -> Any:
        began = time.monotonic()
        service.start()
        self.services.append(service)
        self.out.demo(f"{service.name} on {service.url} (pid {service.pid}) "
                      f"in {time.monotonic() - began:.1f}s")
        return service

    def _start_listen(self) -> None:
        assert self.relay is not None
        cmd = [relay_script("alarm-relay-manage"), "--config-file", str(self.relay.config_path),
               "listen", "--topic", self.topic, "--pool", self.pool]
        self.listen = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1, start_new_session=True)
        self.broker_entities = True
        self.out.demo(f"pid {self.listen.pid}: alarm-relay-manage --config-file "
                      f"{self.relay.config_path} listen --topic {self.topic} --pool {self.pool}")
        self._thread(self._read_listen, self.listen.stdout)
        self._thread(self._copy_lines, self.listen.stderr, "bus")

    def _wait_for_consumer(self, timeout: float = 30.0) -> None:
        """The pool's queue exists once the listener subscribed: no event can be missed."""
        import kombu

        assert self.listen is not None
        deadline = time.monotonic() + timeout
        with kombu.Connection(AMQP_URL, connect_timeout=5) as conn:
            while time.monotonic() < deadline and not self.stop_event.is_set():
                if self.listen.poll() is not None:
                    raise ServiceError(f"listen exited with {self.listen.returncode}")
                channel = conn.channel()
                try:
                    if channel.queue_declare(self.pool, passive=True).consumer_count:
                        return
                except Exception:  # noqa: BLE001,S110 - not declared yet (channel closed)
                    pass
                time.sleep(0.2)
        if not self.stop_event.is_set():
            raise ServiceError(f"alarm-relay-manage listen did not subscribe within {timeout}s")

    def _start_relay(self) -> None:
        assert self.relay is not None
        self.relay.log_path.touch()
        self._thread(self._tail_log, self.relay.log_path, "relay", self._relay_gone)
        self.out.demo(f"starting {relay_script()} --config-file {self.relay.config_path}")
        self.relay.start(timeout=60)
        self.out.demo(f"alarm-relay (pid {self.relay.proc.pid}) ready; webhook, /healthz, "
                      f"/readyz, /metrics on {self.relay.url}")

    def _start_watcher(self) -> None:
        """Watcher (noauth), an audit template of the test strategy, then the bridge."""
        from tools.harness import watcher as harness

        out = self.out
        if not harness.WATCHER_VENV.joinpath("bin", "watcher-api-wsgi").exists():
            out.demo(f"installing Watcher into {harness.WATCHER_VENV} (first time only, "
                     "about a minute)")
        self.watcher = harness.Watcher(f"alarm-relay-demo-{self.tag}",
                                       workdir=self.workdir / "watcher",
                                       transport_url=SHARED_RABBIT_URL)
        began = time.monotonic()
        self.watcher.start()
        out.demo(f"watcher-decision-engine (pid {self.watcher.engine.pid}) and watcher-api on "
                 f"{self.watcher.url} (pid {self.watcher.api.pid}) in "
                 f"{time.monotonic() - began:.1f}s")
        template = self.watcher.create_audit_template(WATCHER_TEMPLATE)
        out.demo(f"audit template {WATCHER_TEMPLATE} ({template['uuid']}): goal "
                 f"{harness.TEST_GOAL}, strategy {harness.TEST_STRATEGY}")
        self.bridge = harness.BridgeProcess(
            transport_url=SHARED_RABBIT_URL, exchange=self.exchange, topic=self.topic,
            pool=f"{self.pool}-watcher", rules=WATCHER_RULES_FILE.read_text(),
            watcher=self.watcher, workdir=self.workdir / "bridge",
            sections={"watcher_bridge": {"retry_initial_delay": 1.0,
                                         "retry_max_delay": 10.0}})
        self.bridge.log_path.touch()
        self._thread(self._tail_log, self.bridge.log_path, "watcher", self._bridge_gone)
        out.demo(f"starting {relay_script('alarm-relay-watcher')} --config-file "
                 f"{self.bridge.config_path}")
        self.bridge.start(timeout=60)
        self._thread(self._watch_audits)

    def _bridge_gone(self) -> bool:
        return self.bridge is None or self.bridge.proc is None or \
            self.bridge.proc.poll() is not None

    def _watch_audits(self) -> None:
        """Print each audit of Watcher when it appears and when its state changes."""
        while not self.stop_event.wait(1.0):
            try:
                audits = self.watcher.audits()
            except Exception:  # noqa: BLE001,S112 - the API may be busy; next round
                continue
            for audit in audits:
                name, state = audit.get("name") or audit["uuid"], audit["state"]
                if self.audits.get(name) == state:
                    continue
                self.audits[name] = state
                text = f"audit {name} {state}"
                if state == "SUCCEEDED":
                    plans = self.watcher.action_plans(audit["uuid"])
                    actions = sum(len(self.watcher.actions(p["uuid"])) for p in plans)
                    text += (f": {len(plans)} action plan(s) "
                             f"{','.join(p['state'] for p in plans)} with {actions} action(s)")
                self.out.line("watcher", text)

    def _audits_done(self) -> bool:
        return bool(self.audits) and all(
            state in ("SUCCEEDED", "FAILED") for state in self.audits.values())

    def _thread(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _read_listen(self, stream: TextIO) -> None:
        for raw in stream:
            raw = raw.strip()
            if not raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                self.out.line("bus", raw)
                continue
            etype = str(line.get("event_type"))
            with self.events_changed:
                self.events.append(line)
                self.counts[etype] += 1
                self.events_changed.notify_all()
            self.out.line("bus", f"{self.out.paint(f'{etype:<15}', etype)} "
                          f"{describe_event(line)}")

    def _copy_lines(self, stream: TextIO, prefix: str) -> None:
        for raw in stream:
            if raw.strip():
                self.out.line(prefix, raw.rstrip())

    def _tail_log(self, path: pathlib.Path, prefix: str, gone: Callable[[], bool]) -> None:
        with path.open(errors="replace") as handle:
            pending = ""
            while True:
                chunk = handle.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        self.out.line(prefix, _trim_log_line(pending.rstrip()))
                        pending = ""
                    continue
                if self.stop_event.is_set() and gone():
                    return
                time.sleep(0.1)

    def _relay_gone(self) -> bool:
        return self.relay is None or self.relay.proc is None or self.relay.proc.poll() is not None

    # -- waiting
    def _names(self, event_type: str) -> set[str]:
        with self.events_changed:
            return {(e.get("payload") or {}).get("name") for e in self.events
                    if e.get("event_type") == event_type}

    def _time_left(self) -> float | None:
        if self.duration is None:
            return None
        return self.duration - (time.monotonic() - self.began)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self._sleep(min(0.2, max(0.0, deadline - time.monotonic()))):
                return False
            if time.monotonic() >= deadline:
                return predicate()
        return True

    def _sleep(self, seconds: float) -> bool:
        """Sleep; False once stopped (Ctrl-C, SIGTERM) or at the end of --duration."""
        left = self._time_left()
        if left is not None and left <= 0:
            self.stop_event.set()
        if self.relay is not None and self.relay.proc is not None \
                and self.relay.proc.poll() is not None and not self.stop_event.is_set():
            self.out.line("demo", f"alarm-relay exited with {self.relay.proc.returncode}",
                          "error")
            self.stop_event.set()
        if self.stop_event.is_set():
            return False
        self.stop_event.wait(seconds if left is None else min(seconds, left))
        return not self.stop_event.is_set()

    # -- the end
    def _finish(self) -> int:
        return 0 if self.events else 1

    def shutdown(self) -> None:
        """Stop everything the demo started, newest first, each by its own PID."""
        self.stop_event.set()
        out = self.out
        stopped: list[str] = []
        if self.relay is not None and self.relay.proc is not None:
            pid = self.relay.proc.pid
            try:
                code = self.relay.stop(timeout=30)
                out.demo(f"alarm-relay (pid {pid}) stopped, exit code {code}")
            except Exception as err:  # noqa: BLE001 - keep stopping the rest
                out.line("demo", f"alarm-relay (pid {pid}) did not stop cleanly: {err}", "error")
            stopped.append(f"alarm-relay={pid}")
        if self.bridge is not None and self.bridge.proc is not None:
            pid = self.bridge.proc.pid
            try:
                code = self.bridge.stop(timeout=30)
                out.demo(f"alarm-relay-watcher (pid {pid}) stopped, exit code {code}")
            except Exception as err:  # noqa: BLE001 - keep stopping the rest
                out.line("demo", f"alarm-relay-watcher (pid {pid}) did not stop cleanly: {err}",
                         "error")
            stopped.append(f"alarm-relay-watcher={pid}")
        if self.watcher is not None:
            for part in (self.watcher.api, self.watcher.engine):
                pid = part.pid
                part.stop()
                if pid is not None:
                    stopped.append(f"{part.name}={pid}")
        if self.listen is not None:
            pid = self.listen.pid
            if self.listen.poll() is None:
                # A new session: its group holds only what we started.
                os.killpg(pid, signal.SIGTERM)
                try:
                    self.listen.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(pid, signal.SIGKILL)
                    self.listen.wait(5)
            stopped.append(f"listen={pid}")
        for service in reversed(self.services):
            pid = service.pid
            service.stop()
            stopped.append(f"{service.name}={pid}")
        for thread in self.threads:
            thread.join(timeout=5)
        if self.broker_entities:
            self._delete_broker_entities()
        for service in self.services:
            service.close()
        if self.watcher is not None:
            self.watcher.close()
        out.demo("stopped pids: " + " ".join(stopped))
        if self.keep:
            out.demo(f"kept the work dir {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _delete_broker_entities(self) -> None:
        import kombu

        try:
            with kombu.Connection(AMQP_URL, connect_timeout=5) as conn:
                channel = conn.channel()
                queues = [self.pool, f"{self.topic}.info"]
                exchanges = [self.exchange]
                if self.with_watcher:
                    queues.append(f"{self.pool}-watcher")
                    if self.watcher is not None:
                        more_exchanges, more_queues = self.watcher.broker_entities()
                        exchanges += more_exchanges
                        queues += more_queues
                for queue in queues:
                    channel.queue_delete(queue)
                for exchange in exchanges:
                    channel.exchange_delete(exchange)
            self.out.demo(f"removed exchange{'s' if len(exchanges) > 1 else ''} "
                          f"{', '.join(exchanges)} and queues {', '.join(queues)} "
                          "from the broker")
        except Exception as err:  # noqa: BLE001 - cleanup is best effort
            self.out.line("demo", f"could not remove the demo's queues: {err}", "error")

    def summary(self) -> None:
        with self.events_changed:
            counts = dict(sorted(self.counts.items()))
            total = len(self.events)
        text = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
        self.out.demo(f"summary: {total} events on the bus ({text})")
        if self.with_watcher:
            states = collections.Counter(self.audits.values())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none"
            self.out.demo(f"summary: {len(self.audits)} Watcher audits ({detail})")
        if not total:
            self.out.line("demo", "no event arrived: see the [relay] lines above", "error")


def _shorten(reason: str, width: int = 60) -> str:
    """The first cause of a resolver's explanation (the event carries all of it)."""
    first = reason.split(" -- ", 1)[0].split("; ", 1)[0]
    first = first.removeprefix("DatasourceResolver: ")
    return first if len(first) <= width else first[: width - 3] + "..."


def _trim_log_line(line: str) -> str:
    """Drop oslo.log's date and PID: ``12:00:01.123 INFO daemon.service [-] text``."""
    parts = line.split(" ", 3)
    if len(parts) == 4 and parts[0][:2].isdigit() and parts[2].isdigit():
        return f"{parts[1][:12]} {parts[3].replace(' [-] ', ' ', 1)}"
    return line


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/demo.py",
        description="Run alarm-relay against real local services and print the events "
                    "arriving on the bus. Ctrl-C stops everything the demo started.")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="stop this many seconds after everything has started "
                             "(default: run until Ctrl-C)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir (configs, logs, relay state) at the end")
    parser.add_argument("--with-watcher", action="store_true",
                        help="also run a real Watcher and alarm-relay-watcher, and show the "
                             "audits the alarms start (docs/watcher.md)")
    parser.add_argument("--no-color", action="store_true",
                        help="plain output (also when stdout is no terminal or NO_COLOR is set)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    color = not args.no_color and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    out = Output(sys.stdout, color)
    demo = Demo(out, args.duration, keep=args.keep, with_watcher=args.with_watcher)

    def on_signal(signum: int, _frame: object) -> None:
        if not demo.stop_event.is_set():
            out.demo(f"{signal.Signals(signum).name}: stopping everything the demo started")
        demo.stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 2
    try:
        code = demo.run()
    except (ServiceError, TimeoutError, RuntimeError, OSError) as err:
        out.line("demo", f"failed: {err}", "error")
        code = 2
    finally:
        demo.shutdown()
        demo.summary()
    return code


if __name__ == "__main__":
    sys.exit(main())
