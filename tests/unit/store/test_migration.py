"""The schema's migrations: create, upgrade, version, refusal of what is behind or unknown."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
import sqlalchemy as sa

from daemon import exception
from daemon.store import migration
from daemon.store.sql import create_engine


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 's.sqlite'}", max_retries=0)
    yield engine
    engine.dispose()


def test_upgrade_creates_every_table_and_marks_the_file(engine):
    assert migration.current(engine) is None
    assert migration.upgrade(engine) == (None, migration.head())
    assert migration.current(engine) == migration.head() == migration.check_current(engine)
    assert {"outbox", "lifecycle_state", "units", "inbox"} <= set(
        sa.inspect(engine).get_table_names())
    db = sqlite3.connect(engine.url.database)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == migration.SQLITE_USER_VERSION
    finally:
        db.close()
    assert migration.upgrade(engine) == (migration.head(), migration.head())


def test_behind_and_empty_are_refused_with_the_command_to_run(engine):
    with pytest.raises(exception.SchemaMismatch, match="none .*'alarm-relay-manage db sync'"):
        migration.check_current(engine)
    migration.upgrade(engine, "0001")
    with pytest.raises(exception.SchemaMismatch, match="at 0001, this relay needs"):
        migration.check_current(engine)
    assert migration.upgrade(engine) == ("0001", migration.head())
    migration.check_current(engine)


def test_a_revision_of_a_newer_release_is_refused(engine):
    migration.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    for call in (migration.check_current, migration.upgrade):
        with pytest.raises(exception.SchemaMismatch, match="9999, unknown to this relay"):
            call(engine)


def test_migrations_are_found_from_any_working_directory(tmp_path):
    # script_location is inside the package: an installed daemon finds it anywhere.
    out = subprocess.run(
        [sys.executable, "-c", "from daemon.store import migration; print(migration.head())"],
        cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == migration.head()


def test_the_written_out_head_is_the_scripts_head():
    assert migration.HEAD == migration.head()


def test_a_single_relay_imports_neither_sqlalchemy_nor_alembic(tmp_path):
    path = str(tmp_path / "s.sqlite")
    code = ("import sys; import daemon.service; from daemon.store import SQLiteStore\n"
            f"for _ in range(2): s = SQLiteStore({path!r}, max_events=5); s.open(); "
            "s.hold_single_relay_lock(); s.close()\n"
            "print(sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def _structure(path) -> dict:
    """Tables with their columns (name, type, not null, default, pk) and indexes."""
    db = sqlite3.connect(path)
    try:
        out = {}
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for name in names:
            columns = [tuple(r[1:]) for r in db.execute(f"PRAGMA table_info({name})")]
            indexes = sorted(
                (r[2], tuple(c[2] for c in db.execute(f"PRAGMA index_info({r[1]})")))
                for r in db.execute(f"PRAGMA index_list({name})"))
            autoincrement = "AUTOINCREMENT" in db.execute(
                "SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
            out[name] = (columns, indexes, autoincrement)
        out["version"] = (db.execute("SELECT version_num FROM alembic_version").fetchall(),
                          db.execute("PRAGMA user_version").fetchone())
        return out
    finally:
        db.close()


def test_a_new_embedded_file_has_the_schema_the_migrations_make(tmp_path, engine):
    from daemon.store import SQLiteStore

    migration.upgrade(engine)
    with SQLiteStore(str(tmp_path / "new.sqlite"), max_events=5):
        pass
    assert _structure(tmp_path / "new.sqlite") == _structure(engine.url.database)
