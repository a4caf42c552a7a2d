"""Issue 13: lifecycle correctness in real monitoring topologies, against real processes.

The daemon runs from its console script and the events are read on the bus. Each handed
case of ``../shared/cases/`` is one test here, played as its README says, and each kind of
fault has a test beyond the handed inputs:

- ``ha-pair-startsat``: an HA Prometheus pair's two copies with skewed startsAt, by webhook
  and through a real Alertmanager;
- ``am-restart-resend``: real Prometheus with its default ratios of evaluation interval,
  resend delay and grace (scaled down), and an Alertmanager restart;
- ``webhook-only-expiry``: polls fail (a Vitrage-style URL), the webhook works;
- two Alertmanagers with an HA pair whose copies lag on one replica, on fire and on
  resolve;
- an Alertmanager whose clock runs 10 minutes ahead (a recorded body with its times
  rewritten, served with a matching ``Date`` header).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tools.harness.bus import Consumer
from tools.harness.ports import free_port, wait_until
from tools.harness.relay import RelayProcess
from tools.harness.services import make_alert

CASES = Path("/work/shared/cases")
if not CASES.is_dir():  # pragma: no cover
    CASES = Path(__file__).resolve().parents[4] / "shared" / "cases"
FIXTURES = CASES.parent / "fixtures"
UTC = dt.UTC


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render(text: str, now: dt.datetime) -> str:
    """A case's template with ``@now``, ``@now-40s``, ``@now+4m`` as RFC 3339 times."""
    units = {"s": 1, "m": 60, "h": 3600}

    def at(match: re.Match) -> str:
        sign, amount, unit = match.group(1), match.group(2), match.group(3)
        seconds = 0 if sign is None else int(amount) * units[unit] * (1 if sign == "+" else -1)
        return rfc3339(now + dt.timedelta(seconds=seconds))

    return re.sub(r"@now(?:([+-])(\d+)([smh]))?", at, text)


def case(name: str, file: str, now: dt.datetime | None = None) -> Any:
    return json.loads(render((CASES / name / file).read_text(), now or dt.datetime.now(UTC)))


def post(url: str, body: Any) -> int:
    return requests.post(url, json=body, timeout=5).status_code


class Bus:
    """The events one relay published, by type."""

    def __init__(self, consumer: Consumer) -> None:
        self.payloads = consumer.collector.payloads

    def firing(self) -> list[dict]:
        return self.payloads("alarm.firing")

    def resolved(self) -> list[dict]:
        return self.payloads("alarm.resolved")

    def all(self) -> list[dict]:
        return self.firing() + self.payloads("alarm.updated") + self.resolved()


RelayStarter = Callable[..., tuple[RelayProcess, Bus]]


@pytest.fixture
def relay_bus(tmp_path, rabbit_url, unique_name) -> Iterator[RelayStarter]:
    """Start a relay (config sections given) with a consumer on its own exchange and topic."""
    started: list[tuple[RelayProcess, Consumer]] = []

    def start(mapping: Path, urls: list[str], sections: dict | None = None,
              wait_ready: bool = True) -> tuple[RelayProcess, Bus]:
        config = {"DEFAULT": {"control_exchange": unique_name},
                  "oslo_messaging_notifications": {"topics": unique_name}}
        for group, values in (sections or {}).items():
            config.setdefault(group, {}).update(values)
        relay = RelayProcess(mapping_path=mapping, transport_url=rabbit_url,
                             alertmanager_urls=urls, workdir=tmp_path / "relay", sections=config)
        consumer = Consumer(rabbit_url, exchange=unique_name, topic=unique_name,
                            conf_dir=tmp_path).__enter__()
        started.append((relay, consumer))
        relay.start(wait_ready=wait_ready)
        return relay, Bus(consumer)

    yield start
    for relay, consumer in started:
        try:
            relay.stop()
        finally:
            consumer.__exit__(None, None, None)


def quiet(bus: Bus, seconds: float) -> list[dict]:
    """Wait, then return every event received (for "nothing happens" checks)."""
    time.sleep(seconds)
    return bus.all()


# -- ha-pair-startsat ---------------------------------------------------------

def test_ha_pair_startsat_webhook(relay_bus, alertmanager_factory):
    """ha-pair-startsat, webhook variant: one delivery holds both copies, 15 s apart."""
    am = alertmanager_factory()
    relay, bus = relay_bus(CASES / "ha-pair-startsat" / "mapping.yaml", [am.url])
    now = dt.datetime.now(UTC)
    delivery = case("ha-pair-startsat", "webhook-ha-pair.json", now)
    # The Alertmanager that sent the delivery holds both copies (the poll sees them too).
    copies = [dict(alert, endsAt=rfc3339(now + dt.timedelta(minutes=4)))
              for alert in delivery["alerts"]]
    am.post_alerts([{k: a[k] for k in ("labels", "annotations", "startsAt", "endsAt",
                                       "generatorURL")} for a in copies])
    assert post(f"{relay.url}/v1/alerts", delivery) == 200
    wait_until(lambda: bus.firing(), timeout=15, what="alarm.firing")
    assert post(f"{relay.url}/v1/alerts", delivery) == 200  # Alertmanager's repeat
    events = quiet(bus, 5)
    assert [e["status"] for e in events] == ["firing"], events
    [firing] = bus.firing()
    assert firing["starts_at"].startswith(delivery["alerts"][0]["startsAt"][:19])

    # The occurrence really ends: both replicas resolve it. One resolved, same alarm.
    ended = now + dt.timedelta(seconds=1)
    am.post_alerts([{k: a[k] for k in ("labels", "annotations", "startsAt")}
                    | {"endsAt": rfc3339(ended)} for a in copies])
    resolved = dict(delivery, status="resolved",
                    alerts=[dict(a, status="resolved", endsAt=rfc3339(ended))
                            for a in delivery["alerts"]])
    assert post(f"{relay.url}/v1/alerts", resolved) == 200
    wait_until(lambda: bus.resolved(), timeout=15, what="alarm.resolved")
    time.sleep(3)
    [done] = bus.resolved()
    assert done["alarm_id"] == firing["alarm_id"] and done["reason"] == "resolved"
    assert len(bus.firing()) == 1


def test_ha_pair_startsat_alertmanager(relay_bus, alertmanager_factory):
    """ha-pair-startsat, Alertmanager variant: replica 1 started 5 minutes later."""
    am = alertmanager_factory()
    relay, bus = relay_bus(CASES / "ha-pair-startsat" / "mapping.yaml", [am.url])
    am.post_alerts(case("ha-pair-startsat", "am-post-replica-a.json"))
    wait_until(lambda: bus.firing(), timeout=15, what="alarm.firing")
    time.sleep(6)
    am.post_alerts(case("ha-pair-startsat", "am-post-replica-b.json"))
    events = quiet(bus, 6)
    assert [e["status"] for e in events] == ["firing"], events
    [firing] = bus.firing()

    # Both copies end: the alarm resolves once, when the last one is gone.
    for name in ("am-post-replica-a.json", "am-post-replica-b.json"):
        [copy] = case("ha-pair-startsat", name)
        am.post_alerts([dict(copy, endsAt=rfc3339(dt.datetime.now(UTC)))])
    wait_until(lambda: bus.resolved(), timeout=15, what="alarm.resolved")
    time.sleep(3)
    [done] = bus.resolved()
    assert done["alarm_id"] == firing["alarm_id"]
    assert done["ends_at"] >= done["starts_at"]
    assert len(bus.firing()) == 1


# -- am-restart-resend ----------------------------------------------------------

EVAL = 4  # seconds: the case's E, scaled down from Prometheus's default 1 m


def test_am_restart_resend(relay_bus, alertmanager_factory, prometheus_factory):
    """am-restart-resend: evaluation interval = resend delay = E, the old grace 1.5 E.

    Alertmanager restarts empty right after the first alarm.firing; Prometheus re-sends
    the alert only every 2 E. The bus stays silent. When Prometheus stops (the rule's
    occurrence really ends), the alarm resolves once Alertmanager drops it.
    """
    am = alertmanager_factory(config={"route": {"receiver": "blackhole"},
                                      "receivers": [{"name": "blackhole"}]})
    prometheus = prometheus_factory(
        rules=(CASES / "am-restart-resend" / "rules.yml").read_text(),
        alertmanagers=[am], evaluation_interval=f"{EVAL}s",
        extra_args=[f"--rules.alert.resend-delay={EVAL}s"])
    relay, bus = relay_bus(CASES / "am-restart-resend" / "mapping.yaml", [am.url],
                           {"lifecycle": {"resolve_grace_period": 1.5 * EVAL}})
    wait_until(lambda: bus.firing(), timeout=10 * EVAL, what="the first alarm.firing")
    am.restart()
    events = quiet(bus, 2.5 * EVAL)
    assert [e["status"] for e in events] == ["firing"], events
    # Past the old grace, through several resend periods: still one alarm, no resolve.
    wait_until(lambda: am.get_alerts(), timeout=3 * EVAL, what="Prometheus's re-send")
    events = quiet(bus, 2 * EVAL)
    assert [e["status"] for e in events] == ["firing"], events

    [firing] = bus.firing()
    prometheus.stop()  # the occurrence ends: nothing re-sends it, its endsAt passes
    wait_until(lambda: bus.resolved(), timeout=10 * EVAL, what="alarm.resolved")
    [done] = bus.resolved()
    assert done["alarm_id"] == firing["alarm_id"]
    assert done["reason"] in ("disappeared", "expired")
    assert len(bus.firing()) == 1


# -- webhook-only-expiry --------------------------------------------------------

def test_webhook_only_expiry(relay_bus, alertmanager_factory):
    """webhook-only-expiry: the poll URL is Vitrage's full API URL (every poll gets 404)."""
    am = alertmanager_factory(config={"route": {"receiver": "blackhole"},
                                      "receivers": [{"name": "blackhole"}]})
    now = dt.datetime.now(UTC)
    delivery = case("webhook-only-expiry", "webhook-firing.json", now)
    [alert] = delivery["alerts"]
    am.post_alerts([{"labels": alert["labels"], "annotations": alert["annotations"],
                     "startsAt": alert["startsAt"],
                     "endsAt": rfc3339(now + dt.timedelta(minutes=4))}])
    relay, bus = relay_bus(CASES / "webhook-only-expiry" / "mapping.yaml",
                           [f"{am.url}/api/v2/alerts"],
                           {"lifecycle": {"default_resolve_timeout": 10}}, wait_ready=True)
    assert post(f"{relay.url}/v1/alerts", delivery) == 200
    wait_until(lambda: bus.firing(), timeout=15, what="alarm.firing")
    # Past the old assumed timeout: the alert still fires, so does the alarm.
    events = quiet(bus, 13)
    assert [e["status"] for e in events] == ["firing"], events
    assert relay.get("/readyz")[0] == 503  # the failing source is loud
    assert relay.metric("alarm_relay_polls_total", outcome="failure") > 0
    # Alertmanager repeats the notification: nothing new, never ignored as resolved.
    assert post(f"{relay.url}/v1/alerts", delivery) == 200
    events = quiet(bus, 3)
    assert [e["status"] for e in events] == ["firing"], events
    # The real end, told by Alertmanager: resolved, same alarm.
    ended = dict(delivery, status="resolved", alerts=[
        dict(alert, status="resolved", endsAt=rfc3339(dt.datetime.now(UTC)))])
    assert post(f"{relay.url}/v1/alerts", ended) == 200
    wait_until(lambda: bus.resolved(), timeout=15, what="alarm.resolved")
    [firing], [done] = bus.firing(), bus.resolved()
    assert done["alarm_id"] == firing["alarm_id"] and done["reason"] == "resolved"
    # Start-up named the cause of the failing polls.
    assert "URL number 1 ends in /api/v2/alerts" in relay.log()


# -- kind 1: HA pair, two Alertmanagers, one lagging ---------------------------

RESEND = 3.0  # seconds between two sends of a firing alert (scaled down)


def test_ha_pair_two_alertmanagers_one_lagging(relay_bus, alertmanager_factory):
    """Two Prometheus replicas (replica label kept, dropped by the relay) send to two
    Alertmanagers with skewed startsAt; the second Alertmanager gets every send one resend
    period late, on fire and on resolve. One alarm.firing, one alarm.resolved, and the
    resolve comes only once the lagging replica has it too."""
    am1, am2 = alertmanager_factory(), alertmanager_factory()
    relay, bus = relay_bus(CASES / "ha-pair-startsat" / "mapping.yaml", [am1.url, am2.url])
    labels = {"alertname": "NodeFilesystemAlmostFull", "instance": "192.0.2.5:9100",
              "job": "node", "severity": "warning"}
    start = dt.datetime.now(UTC) - dt.timedelta(seconds=30)
    starts = {"prom-a": start, "prom-b": start + dt.timedelta(seconds=15)}

    def send(am, *, ends: dt.datetime | None = None) -> None:
        now = dt.datetime.now(UTC)
        am.post_alerts([make_alert(labels["alertname"],
                                   {**labels, "prometheus_replica": replica},
                                   {"summary": "root filesystem above 90%"},
                                   starts_at=starts[replica],
                                   ends_at=ends or now + dt.timedelta(seconds=4 * RESEND))
                        for replica in starts])

    lagged: list[Callable[[], None]] = []
    for _ in range(4):  # fire, and re-send; am2 one resend period behind
        for pending in lagged:
            pending()
        lagged = [lambda: send(am2)]
        send(am1)
        time.sleep(RESEND)
    wait_until(lambda: bus.firing(), timeout=10, what="alarm.firing")

    ended = dt.datetime.now(UTC)
    send(am1, ends=ended)  # resolve reaches am1 ...
    send(am2)  # ... while am2 still gets the last firing send
    events = quiet(bus, RESEND + 2)
    assert [e["status"] for e in events] == ["firing"], events
    assert am2.get_alerts()  # the lagging replica still lists it: no resolve yet
    send(am2, ends=ended)  # one resend period later, am2 has the resolve too
    wait_until(lambda: bus.resolved(), timeout=15, what="alarm.resolved")
    time.sleep(3)
    [firing], [done] = bus.firing(), bus.resolved()
    assert done["alarm_id"] == firing["alarm_id"]
    assert firing["starts_at"].startswith(rfc3339(start)[:19])  # the earliest copy's
    assert done["ends_at"] >= done["starts_at"]


# -- kind 4: Alertmanager's clock 10 minutes ahead ----------------------------

SKEW = dt.timedelta(minutes=10)


class SkewedAlertmanager:
    """Serves a recorded ``GET /api/v2/alerts`` body with every time moved so that the
    recording happens now in a clock 10 minutes ahead, ``Date`` in that clock too, and
    ``/api/v2/status``. Real Alertmanager cannot be given another clock here (a Go
    binary ignores libfaketime), so this edge is played from its own recorded bodies."""

    def __init__(self, body: list[dict], recorded_at: dt.datetime) -> None:
        self.recorded_at = recorded_at
        self.body = body
        self.started = dt.datetime.now(UTC) + SKEW - dt.timedelta(hours=1)
        self.port = free_port()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def date_time_string(self, timestamp=None):  # noqa: ARG002 - the skewed clock
                return email.utils.format_datetime(dt.datetime.now(UTC) + SKEW, usegmt=True)

            def do_GET(self):  # noqa: N802 - http.server's naming
                if self.path.startswith("/api/v2/alerts"):
                    data = owner.alerts()
                elif self.path.startswith("/api/v2/status"):
                    data = {"uptime": rfc3339(owner.started), "cluster": {"status": "disabled"}}
                else:
                    self.send_error(404)
                    return
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.base = dt.datetime.now(UTC) + SKEW

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict]:
        shift = self.base - self.recorded_at
        out = []
        for alert in self.body:
            moved = dict(alert)
            for field in ("startsAt", "endsAt", "updatedAt"):
                value = dt.datetime.fromisoformat(alert[field].replace("Z", "+00:00"))
                moved[field] = rfc3339(value + shift)
            out.append(moved)
        return out

    def __enter__(self) -> SkewedAlertmanager:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_alertmanager_clock_ten_minutes_ahead(relay_bus):
    firing_body = json.loads((FIXTURES / "alertmanager" / "api_v2_alerts_firing.json")
                             .read_text())
    after = json.loads((FIXTURES / "alertmanager" /
                        "api_v2_alerts_after_resolve_and_silence.json").read_text())
    recorded_at = dt.datetime(2026, 11, 21, 22, 1, 11, 708000, tzinfo=UTC)  # its updatedAt
    with SkewedAlertmanager(firing_body, recorded_at) as am:
        relay, bus = relay_bus(FIXTURES / "mapping" / "seed-mapping.yaml", [am.url])
        wait_until(lambda: len(bus.firing()) == 4, timeout=15, what="4 alarm.firing")
        am.body = after  # two resolve, one is silenced
        wait_until(lambda: len(bus.resolved()) == 2, timeout=15, what="2 alarm.resolved")
        time.sleep(2)
        events = bus.all()
        assert sorted(e["status"] for e in events) == ["firing"] * 5 + ["resolved"] * 2
        for event in events:
            if event["ends_at"] is not None:
                assert event["ends_at"] >= event["starts_at"], event
        for event in bus.resolved():
            # the end is told in Alertmanager's clock, like its start
            ends = dt.datetime.fromisoformat(event["ends_at"].replace("Z", "+00:00"))
            assert abs(ends - (dt.datetime.now(UTC) + SKEW)) < dt.timedelta(seconds=30)
        offset = relay.metric("alarm_relay_clock_offset_seconds", url=am.url)
        assert 590 < offset < 610, offset
        warnings = [line for line in relay.log().splitlines()
                    if "The clock of Alertmanager" in line]
        assert len(warnings) == 1, warnings
        assert re.search(r"is \+(599|600)\.\d s off", warnings[0]), warnings
