"""The whole product with every real part (issue 7).

Prometheus evaluates a real alert rule over node-exporter metrics and sends it
to Alertmanager; the daemon, started from its console script, resolves the
resource through Aetos and publishes on RabbitMQ, where a consumer written
with oslo.messaging's public listener API receives alarm.firing and then,
once the rule stops firing, alarm.resolved with the same alarm_id.
"""

from __future__ import annotations

import re

import pytest

from tests.functional.conftest import FQDN
from tools.harness.bus import Consumer, delete_entities
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess, metric_sum
from tools.harness.services import Aetos, Alertmanager, ScrapeTarget

RULES = {"groups": [{"name": "demo", "rules": [{
    "alert": "HighDemoLoad",
    "expr": "demo_load > 5",
    "labels": {"severity": "critical"},
    "annotations": {"title": "Demo load is high"},
}]}]}

RESEND_DELAY = "5s"

MAPPING = """\
alerts:
- alert:
    key:
      alertname: HighDemoLoad
      job: node
    type: host
    resource:
      host_id: instance
    metrics:
      load: 'demo_load{instance="{instance}"}'
"""


@pytest.mark.timeout(600)  # long: a real rule fires, then resolves (70 s measured)
def test_alert_rule_to_consumer_with_resolution_via_aetos(
        tmp_path, node_exporter, prometheus_factory, rabbit_url, unique_name):
    exchange = topic = unique_name
    mapping = tmp_path / "mappings.yaml"
    mapping.write_text(MAPPING)
    node_exporter.set_metric("demo_load", 10)

    relay = RelayProcess(
        mapping_path=mapping, transport_url=rabbit_url, alertmanager_urls=[],
        workdir=tmp_path / "relay",
        sections={
            "DEFAULT": {"control_exchange": exchange},
            "oslo_messaging_notifications": {"topics": topic},
        })
    # Alertmanager is created (its port known) but not started: /readyz must say so.
    alertmanager = Alertmanager(webhook_url=f"{relay.url}/v1/alerts")
    # Alertmanager starts after Prometheus (the relay's /readyz is checked without it), so
    # Prometheus's first send of the firing alert fails, and with its default 1 m
    # --rules.alert.resend-delay the next one came about as late as the test's wait ended
    # (a CI failure). A 5 s resend delay: the alert reaches Alertmanager seconds after it
    # is up, every time.
    prometheus = prometheus_factory(
        targets=[ScrapeTarget(node_exporter.address, {"fqdn": FQDN})],
        rules=RULES, alertmanagers=[alertmanager],
        extra_args=[f"--rules.alert.resend-delay={RESEND_DELAY}"])
    prometheus.wait_for_series(f'demo_load{{fqdn="{FQDN}"}}')
    with Aetos(prometheus=prometheus) as aetos, \
            Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
        events = consumer.collector.payloads
        relay.rewrite_config({
            "alertmanager": {"urls": [alertmanager.url]},
            "datasources": {"metrics": "aetos"},
            "aetos_client": {"endpoint_override": aetos.url, "auth_mode": "noauth"},
        })
        try:
            relay.start()
            status, body = relay.get("/readyz")
            assert status == 503, body
            assert b'"alertmanager_answered": false' in body

            alertmanager.start()
            wait_until(lambda: relay.get("/readyz")[0] == 200, timeout=30, what="/readyz 200")

            wait_until(lambda: events("alarm.firing"), timeout=60, what="alarm.firing on the bus")
            firing = events("alarm.firing")
            assert len(firing) == 1, firing
            event = firing[0]
            assert event["name"] == "HighDemoLoad"
            assert event["status"] == "firing"
            assert event["severity"] == "critical"
            assert event["resource"]["mapped"] is True
            assert event["resource"]["type"] == "host"
            assert event["resource"]["id"] == FQDN, event["resource"]
            assert event["metrics"]["load"] == 10.0, event["metrics"]

            # The consumer can have the message before the relay's loop has taken the
            # broker's confirm that counts it (a CI failure on a slow machine): wait for it.
            wait_until(lambda: relay.metric("alarm_relay_events_published_total",
                                            event_type="alarm.firing") >= 1,
                       timeout=15, what="the firing event counted as published")
            metrics = relay.get("/metrics")[1].decode()
            assert metric_sum(metrics, "alarm_relay_transitions_total", kind="firing") >= 1
            assert metric_sum(metrics, "alarm_relay_polls_total", outcome="success") >= 1

            node_exporter.set_metric("demo_load", 0)
            wait_until(lambda: events("alarm.resolved"), timeout=90,
                       what="alarm.resolved on the bus")
            resolved = events("alarm.resolved")
            assert len(resolved) == 1, resolved
            assert resolved[0]["alarm_id"] == event["alarm_id"]
            assert resolved[0]["status"] == "resolved"
            assert resolved[0]["reason"] in ("resolved", "disappeared")
            assert resolved[0]["sequence"] > event["sequence"]

            wait_until(lambda: relay.metric("alarm_relay_events_published_total",
                                            event_type="alarm.resolved") >= 1,
                       timeout=15, what="the resolved event counted as published")
            metrics = relay.get("/metrics")[1].decode()
            assert metric_sum(metrics, "alarm_relay_transitions_total", kind="resolved") >= 1
            # The gauge is refreshed periodically: the outbox drains to empty.
            wait_until(lambda: relay.metric("alarm_relay_outbox_depth") == 0,
                       timeout=15, what="outbox depth 0")
            assert relay.stop() == 0
            assert not re.search(r"Traceback", relay.log())
        finally:
            if relay.proc is not None and relay.proc.poll() is None:
                relay.kill()
            alertmanager.close()
            delete_entities(rabbit_url, exchanges=[exchange],
                            queues=[f"{topic}.info"])
