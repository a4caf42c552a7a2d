"""Issue 13: one huge alert never wedges its alarm ([publisher] max_event_bytes).

An alert with a ~12 MB annotation (JSON text, so quotes everywhere) is POSTed to a real
Alertmanager and polled by the real daemon (its console script). The broker is a private
RabbitMQ node with RabbitMQ 4's default message size limit, 16 MiB: the event such an alert
made before, which oslo.messaging's envelope then escapes once more, was over it, so the
broker refused it and the relay retried it forever. Now the event reaches the broker cut to
1 MiB with a visible marker, and the alarm later resolves as any other.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tools.harness.bus import Consumer
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess
from tools.harness.services import RabbitNode, make_alert

BROKER_LIMIT = 16 * 1024 * 1024          # RabbitMQ 4's default max_message_size
EVENT_LIMIT = 1024 * 1024                # [publisher] max_event_bytes, default
MAPPING = """\
alerts:
- key: {alertname: HugeAnnotation}
  type: host
  resource: {host_id: instance}
"""


@pytest.mark.timeout(420)
def test_a_12_mb_annotation_reaches_the_broker_bounded_and_resolves(
        tmp_path, alertmanager, unique_name):
    # ~12 MB of JSON text: 1,090,000 times an 11-byte chunk with four quotes.
    description = '{"k": "v"} ' * 1_090_000
    assert 11_900_000 < len(description) < 12_100_000
    mapping = tmp_path / "mappings.yaml"
    mapping.write_text(MAPPING)
    starts = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    labels = {"instance": "compute-1.example.org:9100", "severity": "warning"}
    annotations = {"summary": "payload dump", "description": description}

    with RabbitNode(extra_config=f"max_message_size = {BROKER_LIMIT}\n") as node:
        relay = RelayProcess(
            mapping_path=mapping, transport_url=node.transport_url,
            alertmanager_urls=[alertmanager.url], workdir=tmp_path / "relay",
            sections={"DEFAULT": {"control_exchange": unique_name},
                      "oslo_messaging_notifications": {"topics": unique_name},
                      "alertmanager": {"timeout": 10.0}})
        with Consumer(node.transport_url, exchange=unique_name, topic=unique_name,
                      conf_dir=tmp_path) as consumer, relay:
            events = consumer.collector.payloads
            alertmanager.post_alerts([make_alert("HugeAnnotation", labels, annotations,
                                                 starts_at=starts)])
            wait_until(lambda: events("alarm.firing"), timeout=90,
                       what="alarm.firing on the broker", describe=lambda: relay.log()[-3000:])
            (firing,) = events("alarm.firing")

            # Resolved as Prometheus resolves it: the same alert again, endsAt now.
            alertmanager.post_alerts([make_alert(
                "HugeAnnotation", labels, annotations, starts_at=starts,
                ends_at=dt.datetime.now(dt.UTC))])
            wait_until(lambda: events("alarm.resolved"), timeout=90,
                       what="alarm.resolved on the broker", describe=lambda: relay.log()[-3000:])
            (resolved,) = events("alarm.resolved")
            truncated = relay.metric("alarm_relay_events_truncated_total", stage="put")
            wait_until(lambda: relay.metric("alarm_relay_outbox_depth") == 0, timeout=30,
                       what="an empty outbox")
        log = relay.log()

    for event in (firing, resolved):
        assert len(json.dumps(event, separators=(",", ":"))) <= EVENT_LIMIT
        cut = event["annotations"]["description"]
        assert cut.startswith('{"k": "v"} ' * 1000)
        assert "\u2026[truncated " in cut[-40:]
        assert event["annotations"]["summary"] == "payload dump"
        assert event["labels"] == {"alertname": "HugeAnnotation", **labels}
        assert event["resource"]["properties"] == {"host_id": labels["instance"]}
    assert resolved["alarm_id"] == firing["alarm_id"]
    assert resolved["fingerprint"] == firing["fingerprint"]
    assert resolved["sequence"] > firing["sequence"]
    assert resolved["status"] == "resolved"
    assert resolved["reason"] in ("resolved", "disappeared")  # as Alertmanager 0.25 shows it
    assert truncated >= 2
    assert "max_event_bytes" in log
    assert "Traceback" not in log
