"""db copy from a single relay's SQLite file into each backend: nothing lost, nothing doubled."""

from __future__ import annotations

import pytest

from daemon import exception
from daemon.manage import db
from daemon.store import SQLiteStore, SQLStore
from tests.unit.publish.conftest import make_event
from tests.unit.store.test_sqlite_units import release_1_file


def test_copy_into_each_backend(tmp_path, database_url):
    source = tmp_path / "single.sqlite"
    events = [make_event(str(i % 7), i // 7 + 1, source={"cluster": "east"},
                         annotations={"text": "é" * 200})
              for i in range(2500)]
    states = {f"east/{i:016x}": {"key": f"east/{i:016x}", "n": i} for i in range(1200)}
    release_1_file(str(source), events, states)
    with SQLiteStore(str(source), max_events=10000) as store:
        store.inbox_put("east", "east", "http://am", [{"labels": {"a": "é"}}])
    counts = db.copy(f"sqlite:///{source}", database_url)
    assert counts == {"lifecycle_state": 1200, "units": 0, "inbox": 1, "outbox": 2500}
    with SQLStore(database_url, max_events=10000,
                  engine_options={"max_retries": 0}) as target:
        got, cursor = target.pending_after(0, 3000, ["east"])
        assert got == events
        assert len(target.load_states(["east"])) == 1200
        assert target.inbox_take("east", 5)[0].alerts == [{"labels": {"a": "é"}}]

    with pytest.raises(exception.StoreError, match="is not empty"):
        db.copy(f"sqlite:///{source}", database_url)
    again = db.copy(f"sqlite:///{source}", database_url, allow_non_empty=True)
    assert again["outbox"] == 2500
    with SQLStore(database_url, max_events=10000,
                  engine_options={"max_retries": 0}) as target:
        assert target.depth() == 2500 and len(target.load_states()) == 1200
        assert target.pending_after(0, 3000)[0] == events
