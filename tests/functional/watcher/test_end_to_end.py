"""Must-show 1: a Prometheus rule fires, and Watcher runs one EVENT audit for that alarm.

Prometheus evaluates a rule over the node exporter's metrics and sends the alert to
Alertmanager; the relay publishes alarm.firing on RabbitMQ; the bridge (the console
script) matches its rule, creates an EVENT audit named after the alarm from the audit
template and triggers it; Watcher's decision engine runs the test strategy: the audit
reaches SUCCEEDED with an action plan whose action carries the templated parameters.

Then the event is delivered again, as the relay does after a crash (same event_id), and
again after the bridge was killed and lost its state file: still one audit, never
triggered twice (a second trigger would leave it ONGOING).
"""

from __future__ import annotations

import json
import time

import pytest

from daemon import conf as relay_conf
from daemon.pipeline.event import AlarmEvent
from daemon.publish import Notifier
from tests.functional.conftest import FQDN
from tools.harness.bus import Consumer, delete_entities
from tools.harness.ports import wait_until
from tools.harness.relay import write_config
from tools.harness.services import ScrapeTarget, shared_transport_url

# Long: the first test to use the folder's Watcher installs it (75 s fresh) and starts it (12 s).
pytestmark = pytest.mark.timeout(600)

RULES = """\
rules:
- name: load-@NAME@
  key: {alertname: HighDemoLoad}
  severity: critical
  resource_type: host
  audit_template: "@TEMPLATE@"
  parameters: {host: "{resource.id}", alarm: "{name}"}
"""

PROM_RULES = {"groups": [{"name": "demo", "rules": [{
    "alert": "HighDemoLoad", "expr": "demo_load > 5", "labels": {"severity": "critical"},
}]}]}


def _republish(tmp_path, exchange: str, payload: dict, event_type: str) -> None:
    """Publish an event again exactly as it was (same event_id), as a relay restart does."""
    path = write_config(tmp_path / "republish.conf", {
        "DEFAULT": {"transport_url": shared_transport_url(), "control_exchange": exchange,
                    "state_dir": tmp_path},
        "oslo_messaging_notifications": {"topics": exchange}})
    conf = relay_conf.prepare(["--config-file", str(path)])
    event = AlarmEvent(event_id=payload["event_id"], event_type=event_type,
                       alarm_id=payload["alarm_id"], sequence=payload["sequence"],
                       payload=payload)
    with Notifier(conf) as notifier:
        notifier.publish(event)


def test_prometheus_alert_becomes_one_succeeded_watcher_audit(
        tmp_path, pipeline, node_exporter, prometheus_factory, unique_name):
    began = time.monotonic()
    node_exporter.set_metric("demo_load", 10)
    line = pipeline(rules=RULES)
    # A consumer of the test's own, to get the relay's alarm.firing payload as published.
    spy = Consumer(shared_transport_url(), exchange=unique_name, topic=unique_name,
                   conf_dir=tmp_path, pool=f"{unique_name}-spy")
    try:
        with spy:
            prometheus_factory(targets=[ScrapeTarget(node_exporter.address, {"fqdn": FQDN})],
                               rules=PROM_RULES, alertmanagers=[line.alertmanager])
            line.wait_metric("alarm_relay_watcher_triggers_total", 1, timeout=90)
            wait_until(lambda: spy.collector.payloads("alarm.firing"), timeout=30,
                       what="the spy to get alarm.firing")
    finally:
        delete_entities(shared_transport_url(), queues=[f"{unique_name}-spy"])
    [firing] = spy.collector.payloads("alarm.firing")
    fired = time.monotonic() - began
    [audit] = line.audits()
    assert audit["audit_type"] == "EVENT"
    assert audit["parameters"] == {"host": node_exporter.address, "alarm": "HighDemoLoad"}
    done = line.watcher.wait_audit_state(audit["uuid"], ("SUCCEEDED", "FAILED"), timeout=60)
    assert done["state"] == "SUCCEEDED", line.watcher.log_tail()
    [plan] = line.watcher.action_plans(audit["uuid"])
    [action] = line.watcher.actions(plan["uuid"])
    assert action["action_type"] == "nop"
    assert json.loads(action["input_parameters"]["message"].split(" ", 2)[2]) == {
        "alarm": "HighDemoLoad", "host": node_exporter.address}

    # The name says which alarm: <alarm_id>-<rule>; the INFO line names both.
    log = line.bridge.log()
    alarm_id = audit["name"][: -len(f"-load-{line.name}")]
    assert f"Alarm {alarm_id} (HighDemoLoad): Watcher audit {audit['uuid']}" in log
    relay_log = line.relay.log()
    assert f"Alarm {alarm_id} firing: HighDemoLoad" in relay_log

    # Redeliveries: the relay's firing event again, twice, with its own event_id.
    assert firing["alarm_id"] == alarm_id
    for _ in range(2):
        _republish(tmp_path, unique_name, firing, "alarm.firing")
    line.wait_metric("alarm_relay_watcher_events_total", 2, outcome="duplicate")

    # A crash that loses the state file, then the same event again: found by name.
    line.bridge.kill()
    (line.bridge.workdir / "state" / "watcher-bridge.sqlite").unlink()
    line.bridge.start()
    _republish(tmp_path, unique_name, firing, "alarm.firing")
    wait_until(lambda: "found already triggered (SUCCEEDED)" in line.bridge.log(),
               timeout=30, what="the bridge to find the audit by name",
               describe=lambda: line.bridge.log()[-3000:])
    time.sleep(2)  # a second trigger would show as ONGOING by now
    [again] = line.audits()
    assert again["uuid"] == audit["uuid"]
    assert again["state"] == "SUCCEEDED"
    assert line.bridge.metric("alarm_relay_watcher_failures_total") == 0
    assert "Traceback" not in line.bridge.log()
    print(f"timings: setup {line.timings['setup']:.1f}s, alert to audit triggered "
          f"{fired:.1f}s, total {time.monotonic() - began:.1f}s")

