"""Issue 13, case ``utf8-label-names``: UTF-8 label names (OpenTelemetry's ``service.name``).

The case's own files (``../shared/cases/utf8-label-names``) against the real console scripts:
``alarm-relay-manage mapping validate`` accepts them; the webhook delivery of
``webhook-otel.json`` to a running daemon gives an event whose resource comes from
``service.name`` and ``host.name``; a query with a ``{service.name}`` placeholder reaches the
real Aetos and Prometheus substituted, with the label name quoted as Prometheus 3 writes it.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from tools.harness.bus import Consumer
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess, relay_script
from tools.harness.services import Aetos, ScrapeTarget

CASE = Path(__file__).resolve().parents[2].parent / "shared" / "cases" / "utf8-label-names"
CASE_QUERY = 'rate(http_server_errors_total{"service.name"="{service.name}"}[5m])'
SENT_QUERY = 'rate(http_server_errors_total{"service.name"="checkout"}[5m])'


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([relay_script("alarm-relay-manage"), "mapping", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)


def post_webhook(relay: RelayProcess, body: bytes) -> int:
    request = urllib.request.Request(f"{relay.url}/v1/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def relay_for(tmp_path: Path, mapping: Path, rabbit_url: str, name: str,
              alertmanager_url: str, **sections: dict) -> RelayProcess:
    return RelayProcess(
        mapping_path=mapping, transport_url=rabbit_url, alertmanager_urls=[alertmanager_url],
        workdir=tmp_path / "relay",
        sections={"DEFAULT": {"control_exchange": name},
                  "oslo_messaging_notifications": {"topics": name}, **sections})


def test_mapping_validate_accepts_the_case_files(tmp_path):
    for name in ("mapping-otel.yaml", "mapping-otel-metrics.yaml"):
        result = validate(CASE / name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "valid, 1 rules" in result.stdout

    # A placeholder that names nothing is refused, with the file's line.
    bad = tmp_path / "mapping-otel-metrics.yaml"
    bad.write_text((CASE / "mapping-otel-metrics.yaml").read_text().replace(
        "{service.name}", "{ service.name }"))
    result = validate(bad)
    assert result.returncode != 0
    assert (f"{bad}:6: rule 1: metrics.error_rate: placeholder {{ service.name }} "
            "names nothing") in result.stdout + result.stderr


def test_webhook_delivery_maps_utf8_labels(tmp_path, alertmanager, rabbit_url, unique_name):
    relay = relay_for(tmp_path, CASE / "mapping-otel.yaml", rabbit_url, unique_name,
                      alertmanager.url)
    with Consumer(rabbit_url, exchange=unique_name, topic=unique_name,
                  conf_dir=tmp_path) as consumer, relay:
        assert post_webhook(relay, (CASE / "webhook-otel.json").read_bytes()) == 200
        wait_until(lambda: consumer.collector.payloads("alarm.firing"), timeout=30,
                   what="alarm.firing on the bus", describe=lambda: relay.log()[-3000:])
        event = consumer.collector.payloads("alarm.firing")[0]
        assert event["name"] == "HighErrorRate"
        assert event["labels"]["service.name"] == "checkout"
        assert event["labels"]["k8s.namespace.name"] == "shop"
        resource = event["resource"]
        assert resource["mapped"] is True and resource["rule"] == "otel-service"
        assert resource["type"] == "service"
        assert resource["properties"] == {"service": "checkout", "host": "worker-3"}
        assert resource["missing_labels"] == []
    assert "Traceback" not in relay.log()


def test_utf8_placeholder_reaches_aetos_and_prometheus_substituted(
        tmp_path, node_exporter, prometheus_factory, alertmanager, rabbit_url, unique_name):
    # What Prometheus 3 keeps of an OpenTelemetry metric, next to what Prometheus 2 scrapes
    # (service.name is service_name in its exposition format).
    node_exporter.set_metric("http_server_errors_total", 7, {"service_name": "checkout"})
    prometheus = prometheus_factory(targets=[ScrapeTarget(node_exporter.address, {})])
    prometheus.wait_for_series('http_server_errors_total{service_name="checkout"}')
    case = (CASE / "mapping-otel-metrics.yaml").read_text()
    assert CASE_QUERY in case
    mapping = tmp_path / "mapping-otel-metrics.yaml"
    # The case's rule, plus a query any Prometheus parses, placeholder in the value.
    mapping.write_text(case.rstrip("\n") + "\n"
                       "    errors: 'http_server_errors_total{service_name=\"{service.name}\"}'\n")
    with Aetos(prometheus=prometheus) as aetos:
        relay = relay_for(
            tmp_path, mapping, rabbit_url, unique_name, alertmanager.url,
            datasources={"metrics": "aetos"},
            aetos_client={"endpoint_override": aetos.url, "auth_mode": "noauth"})
        with Consumer(rabbit_url, exchange=unique_name, topic=unique_name,
                      conf_dir=tmp_path) as consumer, relay:
            assert post_webhook(relay, (CASE / "webhook-otel.json").read_bytes()) == 200
            wait_until(lambda: consumer.collector.payloads("alarm.firing"), timeout=60,
                       what="alarm.firing on the bus", describe=lambda: relay.log()[-3000:])
            event = consumer.collector.payloads("alarm.firing")[0]
        aetos_log = aetos.log_path.read_text(errors="replace")

    # The case's query reached Aetos with the placeholder substituted and the UTF-8 label
    # name quoted, and Aetos sent it on to Prometheus as it was.
    assert f"Query sent to prometheus: {SENT_QUERY}" in aetos_log, aetos_log[-3000:]
    assert "{service.name}" not in aetos_log
    # Through Aetos to the real Prometheus and back, substituted: its value.
    metrics = event["metrics"]
    assert metrics["errors"] == 7.0, event
    # Prometheus answered the case's query: Prometheus 3 with no data (it has no series
    # with a label named service.name here), Prometheus 2 (Debian 12 ships 2.42, which
    # has no quoted label names) with its parser's error. Either way it got the query.
    errors = " ".join(event["resource"]["resolve_errors"])
    assert metrics.get("error_rate") is None
    assert f"no data for {SENT_QUERY}" in errors or "parse error" in errors, errors
    assert json.dumps(event).count("{service.name}") == 0
