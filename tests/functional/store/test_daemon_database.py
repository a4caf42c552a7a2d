"""The daemon and alarm-relay-manage db on a shared database, from their console scripts.

- db sync / version / copy: a single relay's SQLite file moved to PostgreSQL, and a
  daemon started on PostgreSQL goes on from that state (nothing fired again, the
  outbox sent);
- a schema that is behind stops the daemon with one line naming db sync;
- a second relay on the same database without coordination refuses to start.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest
import sqlalchemy as sa

from daemon.store import migration
from tools.harness.ports import free_port, wait_until
from tools.harness.relay import RelayProcess, relay_script
from tools.harness.services import make_alert

ROOT = pathlib.Path(__file__).resolve().parents[3]
SEED_MAPPING = ROOT.parent / "shared" / "fixtures" / "mapping" / "seed-mapping.yaml"


@pytest.fixture
def mapping_file(tmp_path):
    path = tmp_path / "mappings.yaml"
    shutil.copy(SEED_MAPPING, path)
    return path


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([relay_script("alarm-relay-manage"), *args], capture_output=True,
                          text=True, timeout=120)


def relay(tmp_path, name, mapping_file, alertmanager, transport_url, database=None, **extra):
    sections = {"oslo_messaging_notifications": {"topics": f"alarms-{tmp_path.name}"}, **extra}
    if database:
        sections["database"] = {"connection": database, "max_retries": 0}
    return RelayProcess(mapping_path=mapping_file, transport_url=transport_url,
                        alertmanager_urls=[alertmanager.url], workdir=tmp_path / name,
                        sections=sections)


def three_unsent(tmp_path, name, mapping_file, alertmanager, prefix) -> RelayProcess:
    """A relay (stopped again) whose SQLite outbox holds the events of 3 alerts named
    ``prefix0..2``: it ran with a broker that does not answer."""
    alertmanager.post_alerts([make_alert(f"{prefix}{i}", {"instance": f"host{i}"})
                              for i in range(3)])
    broker_down = f"rabbit://guest:guest@127.0.0.1:{free_port()}/"
    daemon = relay(tmp_path, name, mapping_file, alertmanager, broker_down)
    with daemon:
        wait_until(lambda: daemon.metric("alarm_relay_outbox_depth") == 3, timeout=30,
                   what=f"3 events in the {name} relay's outbox")
    return daemon


def test_db_sync_version_and_copy_from_one_relay_to_postgresql(
        tmp_path, mapping_file, alertmanager, rabbit_url, postgresql_url):
    single = three_unsent(tmp_path, "single", mapping_file, alertmanager, "Moved")
    state_file = single.state_dir / "alarm-relay.sqlite"

    version = manage("db", "version", "--connection", postgresql_url)
    assert version.returncode == 1, version
    assert version.stdout.strip() == (f"none (this release needs {migration.head()}: run "
                                      "'alarm-relay-manage db sync')")
    assert postgresql_url.split("@")[0].split(":")[-1] not in version.stdout + version.stderr

    copied = manage("db", "copy", "--from", f"sqlite:///{state_file}", "--to", postgresql_url)
    assert copied.returncode == 0, copied.stderr
    assert "copied 3 events, 3 state records, 0 units and 0 inbox deliveries" in copied.stdout
    password = sa.engine.make_url(postgresql_url).password
    assert password not in copied.stdout + copied.stderr

    again = manage("db", "copy", "--from", f"sqlite:///{state_file}", "--to", postgresql_url)
    assert again.returncode == 1
    assert "is not empty (3 lifecycle_state, 3 outbox): give --allow-non-empty" in again.stderr
    version = manage("db", "version", "--connection", postgresql_url)
    assert (version.returncode, version.stdout.strip()) == (0, f"{migration.head()} (current)")
    sync = manage("db", "sync", "--connection", postgresql_url)
    assert sync.returncode == 0 and "current" in sync.stdout

    engine = sa.create_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            units = connection.execute(sa.text("SELECT DISTINCT unit FROM outbox")).scalars()
            assert list(units) == ["default"]   # the single relay's cluster
    finally:
        engine.dispose()

    shared = relay(tmp_path, "shared", mapping_file, alertmanager, rabbit_url,
                   database=postgresql_url)
    with shared:
        shared.wait_for_log("State restored: 3 alarms tracked, 3 events waiting in the outbox")
        wait_until(lambda: shared.metric("alarm_relay_outbox_depth") == 0, timeout=30,
                   what="the copied outbox sent")
        polls = shared.metric("alarm_relay_polls_total", outcome="success")
        wait_until(lambda: shared.metric("alarm_relay_polls_total", outcome="success")
                   >= polls + 2, timeout=15, what="two more polls")
        # The alarms went on: the polls found nothing new to fire.
        assert shared.metric("alarm_relay_outbox_depth") == 0
        assert shared.metric("alarm_relay_transitions_total", kind="firing") == 0
    assert "Traceback" not in shared.log()


def test_daemon_refuses_a_schema_behind_with_one_line(
        tmp_path, mapping_file, alertmanager, rabbit_url, postgresql_url):
    engine = sa.create_engine(postgresql_url)
    try:
        migration.upgrade(engine, "0001")
    finally:
        engine.dispose()
    daemon = relay(tmp_path, "behind", mapping_file, alertmanager, rabbit_url,
                   database=postgresql_url)
    daemon.start(wait_ready=False)
    assert daemon.proc.wait(timeout=60) != 0
    daemon.stop()
    lines = [line for line in daemon.log().splitlines() if "db sync" in line]
    assert lines == [f"alarm-relay: error: database schema is at 0001, this relay needs "
                     f"{migration.head()}: run 'alarm-relay-manage db sync'"]
    assert "Traceback" not in daemon.log()


def test_a_second_relay_on_one_database_without_coordination_is_refused(
        tmp_path, mapping_file, alertmanager, rabbit_url, postgresql_url):
    assert manage("db", "sync", "--connection", postgresql_url).returncode == 0
    first = relay(tmp_path, "first", mapping_file, alertmanager, rabbit_url,
                  database=postgresql_url)
    second = relay(tmp_path, "second", mapping_file, alertmanager, rabbit_url,
                   database=postgresql_url)
    with first:
        second.start(wait_ready=False)
        assert second.proc.wait(timeout=60) != 0
        second.stop()
        lines = [line for line in second.log().splitlines() if "already uses database" in line]
        assert len(lines) == 1, second.log()
        assert lines[0].startswith("alarm-relay: error: another relay (alarm-relay on ")
        assert lines[0].endswith("several relays on one database need [coordination] "
                                 "backend_url")
        assert sa.engine.make_url(postgresql_url).password not in second.log()
        wait_until(lambda: first.get("/readyz")[0] == 200, timeout=30,
                   what="the first relay still ready")
    # Once the first is gone, the database is free again.
    with second:
        assert second.get("/healthz")[0] == 200


def test_a_state_file_of_the_previous_release_is_taken_over(
        tmp_path, mapping_file, alertmanager, rabbit_url):
    """The daemon's own state, rewritten in the previous release's schema (user_version 1,
    its DDL verbatim): the daemon upgrades it and goes on without firing anything again."""
    import sqlite3

    from tests.unit.store.test_sqlite_units import _RELEASE_1_SCHEMA

    first = three_unsent(tmp_path, "relay", mapping_file, alertmanager, "Old")
    path = first.state_dir / "alarm-relay.sqlite"
    current = sqlite3.connect(path)
    events = current.execute("SELECT event_id, event_type, alarm_id, sequence, payload,"
                             " created_at FROM outbox ORDER BY seq").fetchall()
    states = current.execute("SELECT key, record FROM lifecycle_state").fetchall()
    current.close()
    assert len(events) == 3 and len(states) == 3
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    for statement in _RELEASE_1_SCHEMA:
        old.execute(statement)
    old.execute("PRAGMA user_version=1")
    old.executemany("INSERT INTO outbox (event_id, event_type, alarm_id, sequence, payload,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)", events)
    old.executemany("INSERT INTO lifecycle_state (key, record) VALUES (?, ?)", states)
    old.close()

    again = relay(tmp_path, "relay", mapping_file, alertmanager, rabbit_url)
    with again:
        again.wait_for_log("State restored: 3 alarms tracked, 3 events waiting in the outbox")
        wait_until(lambda: again.metric("alarm_relay_outbox_depth") == 0, timeout=30,
                   what="the old outbox sent")
        polls = again.metric("alarm_relay_polls_total", outcome="success")
        wait_until(lambda: again.metric("alarm_relay_polls_total", outcome="success")
                   >= polls + 2, timeout=15, what="two more polls")
        assert again.metric("alarm_relay_transitions_total", kind="firing") == 0
        assert again.metric("alarm_relay_events_published_total") == 3
    assert "upgraded from schema 0001 to" in again.log()
    upgraded = sqlite3.connect(path)
    try:
        assert upgraded.execute("PRAGMA user_version").fetchone()[0] == 2
        # The same alarms (their records may have been refreshed by the polls since).
        keys = [r[0] for r in upgraded.execute("SELECT key FROM lifecycle_state ORDER BY key")]
        assert keys == sorted(s[0] for s in states)
    finally:
        upgraded.close()


def test_sighup_on_a_shared_database_hands_the_lock_to_the_new_worker(
        tmp_path, mapping_file, alertmanager, rabbit_url, postgresql_url):
    import signal

    assert manage("db", "sync", "--connection", postgresql_url).returncode == 0
    daemon = relay(tmp_path, "reload", mapping_file, alertmanager, rabbit_url,
                   database=postgresql_url)
    with daemon:
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_log("alarm-relay ready", count=2, timeout=60)
        # Ready once the new worker's first poll is answered.
        wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=30,
                   what="/readyz 200 from the new worker")
        assert "already uses database" not in daemon.log()
    assert "Traceback" not in daemon.log()
