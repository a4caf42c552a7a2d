"""alarm-relay-manage db: sync, version and copy on SQLite files (other backends: functional)."""

from __future__ import annotations

import io

import pytest
from oslo_config import cfg

from daemon import exception
from daemon.cmd import manage
from daemon.manage import db
from daemon.store import SQLiteStore, migration
from tests.unit.publish.conftest import make_event
from tests.unit.store.test_sqlite_units import release_1_file


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    command = cfg.SubCommandOpt("command", handler=manage._add_command_parsers)
    from daemon import conf as relay_conf

    conf = relay_conf.prepare(list(argv), cli_opts=[command])
    code = conf.command.func(conf, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_sync_and_version_default_to_the_embedded_file(tmp_path):
    config = tmp_path / "relay.conf"
    config.write_text(f"[DEFAULT]\nstate_dir = {tmp_path}\n")
    state = f"--config-file={config}"
    code, out, _ = run(state, "db", "version")
    assert (code, out.strip()) == (
        1, f"none (this release needs {migration.head()}: run 'alarm-relay-manage db sync')")
    code, out, _ = run(state, "db", "sync")
    assert code == 0 and out.strip().endswith(f"schema upgraded from none to {migration.head()}")
    assert (tmp_path / "alarm-relay.sqlite").exists()
    assert run(state, "db", "version")[:2] == (0, f"{migration.head()} (current)\n")
    assert "current" in run(state, "db", "sync")[1]


def test_version_of_a_release_1_file_and_its_sync(tmp_path):
    path = tmp_path / "old.sqlite"
    release_1_file(str(path), [make_event()], {"c/a": {"key": "c/a"}})
    url = f"sqlite:///{path}"
    assert run("db", "version", "--connection", url)[1].startswith("0001 (this release needs")
    assert "from 0001 to" in run("db", "sync", "--connection", url)[1]
    with SQLiteStore(str(path), max_events=10) as store:
        assert store.depth() == 1 and store.load_states() == [{"key": "c/a"}]


def test_copy_keeps_order_and_gives_old_rows_their_cluster(tmp_path):
    source = tmp_path / "single.sqlite"
    events = [make_event("b", 1, source={"cluster": "east"}),
              make_event("a", 1, source={"cluster": "east"}),
              make_event("b", 2, source={"cluster": "east"})]
    release_1_file(str(source), events, {"east/a": {"key": "east/a"}, "east/b": {"k": 1}})
    with SQLiteStore(str(source), max_events=10) as store:
        store.inbox_put("east", "east", "http://am", [{"labels": {}}])
        store.claim("east", "me")
    target = tmp_path / "shared.sqlite"
    code, out, err = run("db", "copy", "--from", f"sqlite:///{source}",
                         "--to", f"sqlite:///{target}")
    assert code == 0, err
    assert out.startswith("copied 3 events, 2 state records, 1 units and 1 inbox deliveries")
    with SQLiteStore(str(target), max_events=10) as store:
        assert store.pending_after(0, 10, ["east"])[0] == events
        assert store.load_states(["east"]) == [{"key": "east/a"}, {"k": 1}]
        assert store.owners() == {"east": ("me", 1)}
        assert store.inbox_take("east", 5)[0].source_url == "http://am"

    code, _, err = run("db", "copy", "--from", f"sqlite:///{source}",
                       "--to", f"sqlite:///{target}")
    assert code == 1
    assert err.strip() == (f"error: store: sqlite:///{target} is not empty (2 lifecycle_state, "
                           "1 units, 1 inbox, 3 outbox): give --allow-non-empty to copy "
                           "into it anyway")
    code, out, err = run("db", "copy", "--from", f"sqlite:///{source}",
                         "--to", f"sqlite:///{target}", "--allow-non-empty")
    assert code == 0, err
    with SQLiteStore(str(target), max_events=10) as store:
        assert store.depth() == 3 and len(store.load_states()) == 2   # nothing doubled
        assert len(store.inbox_take("east", 5)) == 2                   # a delivery more


def test_copy_refuses_one_database_onto_itself(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    with pytest.raises(exception.StoreError, match="same database"):
        db.copy(url, url)
