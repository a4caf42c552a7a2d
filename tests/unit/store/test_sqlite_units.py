"""SQLiteStore's ownership API: units, fencing, the inbox, per-unit filters, the old schema."""

from __future__ import annotations

import json
import sqlite3

import pytest

from daemon import exception
from daemon.store import InboxItem, SQLiteStore
from tests.unit.publish.conftest import make_event


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(str(tmp_path / "state.sqlite"), max_events=100) as box:
        yield box


def test_claim_counts_epochs_per_unit_and_owners_shows_them(store):
    assert store.owners() == {}
    assert store.claim("c1", "relay-a") == 1
    assert store.claim("c1", "relay-b") == 2
    assert store.claim("c1/1", "relay-a") == 1
    assert store.owners() == {"c1": ("relay-b", 2), "c1/1": ("relay-a", 1)}


def test_fenced_put_with_the_current_epoch_writes(store):
    epoch = store.claim("c1", "a")
    event = make_event()
    store.put([event], states=[("k", {"v": 1})], unit="c1", fence=epoch)
    assert store.pending(10) == [event] and store.load_states() == [{"v": 1}]


def test_fenced_put_with_an_old_epoch_writes_nothing(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    with SQLiteStore(path, max_events=100) as a, SQLiteStore(path, max_events=100) as b:
        old = a.claim("c1", "a")
        b.claim("c1", "b")
        inbox_id = a.inbox_put("c1", "c1", "http://am", [{"labels": {"x": "1"}}])
        with pytest.raises(exception.FencedWrite) as caught:
            a.put([make_event()], states=[("k", {"v": 1})], unit="c1", fence=old,
                  inbox_done=[inbox_id])
        assert (caught.value.unit, caught.value.fence, caught.value.epoch) == ("c1", 1, 2)
        assert "epoch 2" in str(caught.value)
        for box in (a, b):
            assert box.pending(10) == [] and box.load_states() == []
            assert [i.id for i in box.inbox_take("c1", 10)] == [inbox_id]
        assert a.depth() == 0
        a.put([make_event()], unit="c1")    # unfenced (single relay): always writes
        assert b.depth(["c1"]) == 1


def test_fence_on_a_unit_never_claimed_fails(store):
    with pytest.raises(exception.FencedWrite) as caught:
        store.put([make_event()], unit="nobody", fence=1)
    assert caught.value.epoch == 0 and store.depth() == 0


def test_unit_filters(store):
    first, second, third = make_event("a"), make_event("b"), make_event("c")
    store.put([first], states=[("ka", {"k": "a"})], unit="u1")
    store.put([second], states=[("kb", {"k": "b"})], unit="u2")
    store.put([third], states=[("kc", {"k": "c"})], unit="u1")
    assert store.load_states(["u1"]) == [{"k": "a"}, {"k": "c"}]
    assert store.load_states(["u2", "u1"]) == [{"k": "a"}, {"k": "b"}, {"k": "c"}]
    assert store.load_states([]) == []
    events, cursor = store.pending_after(0, 10, ["u1"])
    assert events == [first, third]
    assert store.pending_after(cursor, 10, ["u1"]) == ([], cursor)
    assert store.pending_after(0, 10, ["u2"])[0] == [second]
    assert store.pending_after(0, 1, ["u1"])[0] == [first]
    assert store.depth(["u1"]) == 2 and store.depth(["u2"]) == 1 and store.depth() == 3
    assert store.depth(["zz"]) == 0 and store.oldest_age(0.0, ["zz"]) is None
    assert store.oldest_age(0.0, ["u2"]) == 0.0
    store.ack([first.event_id, third.event_id])
    assert store.depth(["u1"]) == 0 and store.oldest_age(0.0, ["u1"]) is None


def test_state_moves_with_its_unit(store):
    store.put([], states=[("k", {"v": 1})], unit="u1")
    store.put([], states=[("k", {"v": 2})], unit="u2")
    assert store.load_states(["u1"]) == [] and store.load_states(["u2"]) == [{"v": 2}]


def test_inbox_handoff_exactly_once(store):
    alerts = [{"labels": {"alertname": "A", "é": "ü"}, "status": "firing"}]
    first = store.inbox_put("u1", "c1", "http://am:9093", alerts)
    second = store.inbox_put("u1", "c1", "http://am:9093", [])
    other = store.inbox_put("u2", "c2", "http://am2", [])
    assert first < second
    taken = store.inbox_take("u1", 10)
    assert [i.id for i in taken] == [first, second]
    item = taken[0]
    assert isinstance(item, InboxItem)
    assert (item.cluster, item.source_url, item.alerts) == ("c1", "http://am:9093", alerts)
    assert item.received_at > 0
    assert [i.id for i in store.inbox_take("u1", 1)] == [first]
    # Taking does not delete: the results' put does, in its transaction.
    event = make_event()
    store.put([event], unit="u1", inbox_done=[first])
    assert [i.id for i in store.inbox_take("u1", 10)] == [second]
    store.put([], unit="u1", inbox_done=[second])
    assert store.inbox_take("u1", 10) == []
    assert [i.id for i in store.inbox_take("u2", 10)] == [other]


def test_inbox_survives_reopen(tmp_path):
    path = str(tmp_path / "s.sqlite")
    with SQLiteStore(path, max_events=10) as box:
        row = box.inbox_put("u", "c", "http://am", [{"a": 1}])
        box.claim("u", "m")
    with SQLiteStore(path, max_events=10) as box:
        assert box.inbox_take("u", 5)[0][:4] == (row, "c", "http://am", [{"a": 1}])
        assert box.owners() == {"u": ("m", 1)}


def test_locked_database_is_a_store_error(tmp_path):
    path = str(tmp_path / "s.sqlite")
    with SQLiteStore(path, max_events=10) as box:
        box._conn.execute("PRAGMA busy_timeout=50")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(exception.StoreError, match="locked"):
                box.put([make_event()])
            with pytest.raises(exception.StoreError, match="locked"):
                box.inbox_put("u", "c", "", [])
            with pytest.raises(exception.StoreError, match="locked"):
                box.claim("u", "m")
        finally:
            other.execute("ROLLBACK")
            other.close()
        box.put([make_event()])
        assert box.depth() == 1


# The schema of the releases before units (PRAGMA user_version 1), verbatim.
_RELEASE_1_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id   TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        alarm_id   TEXT NOT NULL,
        sequence   INTEGER NOT NULL,
        payload    TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS lifecycle_state (
        key    TEXT PRIMARY KEY,
        record TEXT NOT NULL
    )""",
)


def release_1_file(path: str, events, states: dict) -> None:
    """A state file as the previous release wrote it."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for statement in _RELEASE_1_SCHEMA:
        db.execute(statement)
    db.execute("PRAGMA user_version=1")
    for event in events:
        db.execute("INSERT INTO outbox (event_id, event_type, alarm_id, sequence, payload,"
                   " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (event.event_id, event.event_type, event.alarm_id, event.sequence,
                    json.dumps(event.payload), 1000.0))
    for key, record in states.items():
        db.execute("INSERT INTO lifecycle_state (key, record) VALUES (?, ?)",
                   (key, json.dumps(record)))
    db.close()


def test_a_state_file_of_the_previous_release_is_taken_over(tmp_path):
    path = str(tmp_path / "alarm-relay.sqlite")
    events = [make_event("a", 1), make_event("b", 1), make_event("a", 2)]
    states = {"c1|a": {"key": "c1|a", "seq": 2}, "c1|b": {"key": "c1|b", "seq": 1}}
    release_1_file(path, events, states)
    with SQLiteStore(path, max_events=100) as box:
        assert box.depth() == 3 and box.pending(10) == events
        assert box.load_states() == list(states.values())
        # Nothing of the old rows belongs to a unit: a single relay reads them all.
        assert box.load_states([""]) == list(states.values()) and box.depth([""]) == 3
        assert box.oldest_age(1010.0) == 10.0
        box.ack([events[0].event_id])
        newer = make_event("c", 1)
        box.put([newer], states=[("c1|c", {"key": "c1|c"})], unit="c1")
        box.claim("c1", "me")
    with SQLiteStore(path, max_events=100) as box:
        assert box.pending(10) == [*events[1:], newer]
        assert len(box.load_states()) == 3 and box.owners() == {"c1": ("me", 1)}
