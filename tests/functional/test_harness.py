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

from tools.harness.ports import port_open, wait_until
from tools.harness.services import (
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


# --------------------------------------------------------------------------- SQL and Redis
# What several relays share (issue 15): a fresh database per test on the machine's PostgreSQL
# and MariaDB, a key namespace per test on its Redis, a private Redis for outage tests.


def _roundtrip(url: str) -> str:
    """Create a table, write and read a row through oslo.db's engine; return current_user."""
    import sqlalchemy as sa
    from oslo_db.sqlalchemy import engines

    engine = engines.create_engine(url, max_retries=1)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE harness (id INTEGER PRIMARY KEY, name "
                                 "VARCHAR(64) NOT NULL)"))
            conn.execute(sa.text("INSERT INTO harness (id, name) VALUES (1, 'ünïcode')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM harness")).scalar_one() == "ünïcode"
            if engine.dialect.name == "sqlite":
                return ""
            return conn.execute(sa.text("SELECT current_user")).scalar_one()
    finally:
        engine.dispose()


def test_database_url_works_with_oslo_db(database_url: str) -> None:
    scheme = database_url.split("://", 1)[0]
    assert scheme in ("sqlite", "postgresql+psycopg2", "mysql+pymysql")
    user = _roundtrip(database_url)
    if scheme != "sqlite":
        assert user.split("@")[0] == database_url.split("://", 1)[1].split(":", 1)[0]


def _credentials(url: str) -> tuple[str, str]:
    user, rest = url.split("://", 1)[1].split(":", 1)
    return user, rest.split("@", 1)[0]


def test_database_fixtures_are_fresh_and_their_own(postgresql_url: str,
                                                   mariadb_url: str) -> None:
    import psycopg2
    import pymysql

    # Each user owns its fresh database, and cannot reach a database that is not its own.
    assert postgresql_url.startswith("postgresql+psycopg2://relaytest_u_")
    assert mariadb_url.startswith("mysql+pymysql://relaytest_u_")
    _roundtrip(postgresql_url)
    _roundtrip(mariadb_url)
    user, password = _credentials(postgresql_url)
    with pytest.raises(psycopg2.OperationalError, match="does not exist"):
        psycopg2.connect(host="127.0.0.1", user=user, password=password,
                         dbname="relaytest_000000000000", connect_timeout=5)
    user, password = _credentials(mariadb_url)
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(host="127.0.0.1", user=user, password=password, database="mysql",
                        connect_timeout=5)
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(host="127.0.0.1", user=user, password="wrong",
                        database=mariadb_url.rsplit("/", 1)[1].split("?")[0], connect_timeout=5)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_database_is_dropped_with_its_user_even_while_connected(kind: str) -> None:
    import sqlalchemy as sa

    from tools.harness.databases import MariaDBDatabase, PostgresDatabase

    database = PostgresDatabase() if kind == "postgresql" else MariaDBDatabase()
    other = PostgresDatabase() if kind == "postgresql" else MariaDBDatabase()
    with other:
        with database:
            assert database.exists()
            assert database.name != other.name and database.user != other.user
            engine = sa.create_engine(database.url)
            conn = engine.connect()
            conn.execute(sa.text("CREATE TABLE held (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO held VALUES (1)"))  # an open transaction
        # Dropped although a session was still open in it; the other test's is untouched.
        assert not database.exists()
        assert other.exists()
        with pytest.raises(sa.exc.OperationalError):
            sa.create_engine(database.url).connect()
        # Its server session was killed: closed without the rollback a return to the
        # pool does (which would log "Exception during reset" whenever it is collected).
        conn.invalidate()
        engine.dispose()


def test_coordination_url_namespaces_tooz_keys(redis_namespace, coordination_url: str) -> None:
    from tooz import coordination

    assert "timeout=3" in coordination_url
    assert f"namespace={redis_namespace.name}" in coordination_url
    # A key of someone else whose name starts like ours survives the clean-up.
    neighbour = f"{redis_namespace.name}0_groups"
    redis_namespace.client.set(neighbour, b"not ours")
    try:
        member = coordination.get_coordinator(coordination_url, b"harness-1")
        member.start(start_heart=True)
        try:
            assert member.namespace == redis_namespace.name.encode()
            member.join_partitioned_group(b"relays")
            assert member.get_members(b"relays").get() == {b"harness-1"}
            keys = redis_namespace.keys()
            assert keys and all(k.startswith(redis_namespace.name.encode()) for k in keys)
            assert neighbour.encode() not in keys
        finally:
            member.stop()
        assert redis_namespace.clean() >= 1
        assert redis_namespace.keys() == []
        assert redis_namespace.client.get(neighbour) == b"not ours"
    finally:
        redis_namespace.client.delete(neighbour)


def test_redis_server_stops_crashes_and_restarts(redis_server) -> None:
    import redis as redis_py
    from tooz import coordination

    port = redis_server.port
    member = coordination.get_coordinator(redis_server.tooz_url("harness"), b"m1")
    member.start()
    member.create_group(b"g").get()
    member.stop()
    with redis_server.client() as client:
        assert client.exists(b"harness_groups")

    redis_server.kill()
    assert not port_open(port)
    with redis_server.client() as client, pytest.raises(redis_py.ConnectionError):
        client.ping()

    redis_server.restart()
    assert redis_server.port == port
    with redis_server.client() as client:
        assert client.ping()
        assert client.dbsize() == 0  # like the shared Redis, it keeps nothing on disk
    redis_server.stop()
    assert not port_open(port)


def test_redis_server_persist_keeps_keys_across_restart() -> None:
    from tools.harness.redis_server import RedisServer

    with RedisServer(persist=True) as server:
        with server.client() as client:
            client.set("kept", "1")
        server.restart()
        with server.client() as client:
            assert client.get("kept") == b"1"
    assert not server.workdir.exists()
