"""The shared database unreachable under a running daemon (its own PostgreSQL database,
closed to connections and its sessions ended, then opened again):
the webhook answers 503, polls store nothing and resolve nothing, and once the
database answers again the alert fires exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import shutil
import urllib.error
import urllib.request

import psycopg2
import pytest
from psycopg2 import sql

from tools.harness.databases import PostgresDatabase
from tools.harness.ports import LOOPBACK, wait_until
from tools.harness.relay import RelayProcess
from tools.harness.services import make_alert

ROOT = pathlib.Path(__file__).resolve().parents[3]
SEED_MAPPING = ROOT.parent / "shared" / "fixtures" / "mapping" / "seed-mapping.yaml"


def post(relay: RelayProcess, body: dict) -> int:
    request = urllib.request.Request(f"{relay.url}/v1/alerts", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def delivery(external_url: str, name: str) -> dict:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"version": "4", "status": "firing", "receiver": "relay", "groupKey": "{}:{}",
            "externalURL": external_url, "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": {"alertname": name, "instance": "h1"},
                        "annotations": {}, "startsAt": now,
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                        "fingerprint": "0123456789abcdef"}]}


def set_reachable(database: PostgresDatabase, reachable: bool) -> None:
    """Open or close the database to connections; closing also ends its sessions."""
    admin = psycopg2.connect(host=LOOPBACK, port=database.port, user="postgres",
                             dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database.name), sql.SQL("true" if reachable else "false")))
            if not reachable:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = %s", (database.name,))
    finally:
        admin.close()


@pytest.fixture
def relay(tmp_path, alertmanager, rabbit_url, postgresql_database):
    from daemon.store import migration
    from daemon.store.sql import create_engine

    engine = create_engine(postgresql_database.url, max_retries=0)
    migration.upgrade(engine)
    engine.dispose()
    mapping = tmp_path / "mappings.yaml"
    shutil.copy(SEED_MAPPING, mapping)
    process = RelayProcess(
        mapping_path=mapping, transport_url=rabbit_url, alertmanager_urls=[alertmanager.url],
        workdir=tmp_path / "relay",
        sections={"oslo_messaging_notifications": {"topics": f"alarms-{tmp_path.name}"},
                  "database": {"connection": postgresql_database.url, "max_retries": 0}})
    with process:
        yield process
    set_reachable(postgresql_database, True)


def test_database_unreachable_webhook_503_polls_wait_nothing_resolved(
        relay, alertmanager, postgresql_database):
    alertmanager.post_alerts([make_alert("Steady", {"instance": "h0"})])
    wait_until(lambda: relay.metric("alarm_relay_transitions_total", kind="firing") == 1,
               timeout=30, what="the steady alert fired")
    wait_until(lambda: relay.metric("alarm_relay_outbox_depth") == 0, timeout=30,
               what="its event sent")

    set_reachable(postgresql_database, False)
    assert post(relay, delivery(alertmanager.url, "DuringOutage")) == 503
    # A new alert polled while the database is away: the poll's transitions
    # are not stored (and not kept in the tracker), nothing resolves.
    alertmanager.post_alerts([make_alert("NewInOutage", {"instance": "h2"})])
    relay.wait_for_log("Poll result not taken, store: ", timeout=30)
    assert relay.metric("alarm_relay_transitions_total", kind="resolved") == 0
    assert relay.get("/healthz")[0] == 200

    set_reachable(postgresql_database, True)
    assert post(relay, delivery(alertmanager.url, "DuringOutage")) == 200
    wait_until(lambda: relay.metric("alarm_relay_outbox_depth") == 0
               and relay.metric("alarm_relay_events_published_total") >= 3,
               timeout=60, what="the new alerts stored and sent",
               describe=lambda: relay.log()[-3000:])
    # Exactly once each: the failed tries left nothing behind in the tracker.
    assert relay.metric("alarm_relay_transitions_total", kind="firing") == 3
    assert relay.metric("alarm_relay_transitions_total", kind="resolved") == 0
    assert "Traceback" not in relay.log()
