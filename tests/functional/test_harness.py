"""The harness against the real services: each fixture does what later tests rely on."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kombu
import pytest

from tests.harness.ports import port_open, wait_until
from tests.harness.services import (
    Aetos,
    Alertmanager,
    AlertmanagerCluster,
    NodeExporter,
    Prometheus,
    RabbitNode,
    ScrapeTarget,
    ServiceError,
    make_alert,
)


def _amqp(url: str) -> str:
    # oslo.messaging says rabbit://, kombu says amqp://; same broker, same credentials.
    return "amqp://" + url.split("://", 1)[1]


def _connects(url: str) -> bool:
    conn = kombu.Connection(_amqp(url), connect_timeout=2)
    try:
        conn.ensure_connection(max_retries=1, timeout=3)
        return True
    except Exception:  # noqa: BLE001 - any failure means "refused"
        return False
    finally:
        conn.release()


@pytest.fixture
def webhook_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server recording Alertmanager webhook deliveries."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def test_alertmanager_roundtrip_and_silence(alertmanager: Alertmanager) -> None:
    alertmanager.post_alerts([make_alert("HarnessAlert", {"instance": "n1"}, {"summary": "s"})])
    [alert] = alertmanager.get_alerts()
    assert alert["labels"] == {"alertname": "HarnessAlert", "instance": "n1"}
    assert alert["status"]["state"] == "active"

    silence = alertmanager.add_silence({"instance": "n1"}, duration=60)
    [alert] = alertmanager.get_alerts()
    assert alert["status"]["silencedBy"] == [silence]
    alertmanager.expire_silence(silence)
    wait_until(
        lambda: alertmanager.get_alerts()[0]["status"]["state"] == "active",
        timeout=10,
        what="the alert to be active again",
    )


def test_alertmanager_restart_keeps_port_and_silences(alertmanager: Alertmanager) -> None:
    port = alertmanager.port
    alertmanager.post_alerts([make_alert("Gone", {"x": "1"})])
    alertmanager.add_silence({"x": "2"})
    alertmanager.restart()
    assert alertmanager.port == port
    # Alerts live in memory only; silences are persisted in the data dir, as in production.
    assert alertmanager.get_alerts() == []
    assert len(alertmanager.get_silences()) == 1


def test_alertmanager_resolve_via_ends_at(alertmanager: Alertmanager) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    alertmanager.post_alerts([make_alert("Resolved", starts_at=past, ends_at=past)])
    assert alertmanager.get_alerts(active=True) == []


def test_alertmanager_webhook_delivery(
    alertmanager_factory: Callable[..., Alertmanager],
    webhook_sink: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook_sink
    am = alertmanager_factory(webhook_url=url)
    am.post_alerts([make_alert("Hooked", {"instance": "n1"})])
    wait_until(lambda: received, timeout=15, what="a webhook delivery")
    assert received[0]["version"] == "4"
    assert received[0]["alerts"][0]["labels"]["alertname"] == "Hooked"


def test_alertmanager_reload_adds_webhook(
    alertmanager: Alertmanager, webhook_sink: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook_sink
    alertmanager.webhook_url = url
    alertmanager.reload()
    alertmanager.post_alerts([make_alert("AfterReload")])
    wait_until(lambda: received, timeout=15, what="a webhook delivery after reload")
    assert received[0]["receiver"] == "relay"


def test_alertmanager_cluster_gossips(alertmanager_cluster: AlertmanagerCluster) -> None:
    first, second = alertmanager_cluster
    assert len(first.cluster_peers()) == 2
    silence = first.add_silence({"alertname": "X"})
    wait_until(
        lambda: any(s["id"] == silence for s in second.get_silences()),
        timeout=15,
        what="the silence to replicate",
    )


def test_start_failure_quotes_log(alertmanager_factory: Callable[..., Alertmanager]) -> None:
    with pytest.raises(ServiceError, match="exited with code"):
        alertmanager_factory(config={"route": {"receiver": "missing"}})


def test_node_exporter_textfile(node_exporter: NodeExporter) -> None:
    import requests

    node_exporter.set_metric("relay_test_gauge", 3.5, {"fqdn": "a"})
    node_exporter.set_metric("relay_test_gauge", 7, {"fqdn": "b"})
    text = requests.get(f"{node_exporter.url}/metrics", timeout=5).text
    assert 'relay_test_gauge{fqdn="a"} 3.5' in text
    assert 'relay_test_gauge{fqdn="b"} 7' in text


def test_prometheus_sees_fqdn_label(
    prometheus: Prometheus, node_exporter: NodeExporter, fqdn: str
) -> None:
    node_exporter.set_metric("relay_test_value", 42)
    [series] = prometheus.wait_for_series(f'relay_test_value{{fqdn="{fqdn}"}}')
    assert series["value"][1] == "42"
    assert series["metric"]["instance"] == node_exporter.address


def test_prometheus_rules_fire_into_alertmanager(
    prometheus_factory: Callable[..., Prometheus],
    node_exporter: NodeExporter,
    alertmanager: Alertmanager,
) -> None:
    rules = {
        "groups": [
            {
                "name": "harness",
                "rules": [
                    {
                        "alert": "HarnessUp",
                        "expr": 'up{job="node"} == 1',
                        "labels": {"severity": "warning"},
                    }
                ],
            }
        ]
    }
    prometheus_factory(
        targets=[ScrapeTarget(node_exporter.address, {"fqdn": "n1"})],
        rules=rules,
        alertmanagers=[alertmanager],
    )
    [alert] = wait_until(alertmanager.get_alerts, timeout=30, what="Prometheus' alert to arrive")
    assert alert["labels"]["alertname"] == "HarnessUp"
    assert alert["labels"]["fqdn"] == "n1"


def test_aetos_noauth_admin_query(aetos: Aetos, node_exporter: NodeExporter, fqdn: str) -> None:
    node_exporter.set_metric("relay_test_cpu", 0.25)
    series = wait_until(
        lambda: aetos.query(f'relay_test_cpu{{fqdn="{fqdn}"}}'),
        timeout=20,
        what="Aetos to return the series",
    )
    assert series[0]["value"][1] == "0.25"


def test_shared_rabbit(rabbit_url: str) -> None:
    assert rabbit_url.startswith("rabbit://")
    assert _connects(rabbit_url)


def test_private_rabbit_outage(rabbit_node: RabbitNode) -> None:
    assert _connects(rabbit_node.transport_url)
    rabbit_node.stop_app()
    assert not port_open(rabbit_node.port)
    assert not _connects(rabbit_node.transport_url)
    rabbit_node.start_app()
    assert _connects(rabbit_node.transport_url)
