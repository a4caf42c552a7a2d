"""SQLiteStore: one transaction per put, oldest first, bounded, durable across reopen."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from daemon import exception, telemetry
from daemon.pipeline.event import AlarmEvent
from daemon.store import SQLiteStore
from tests.unit.publish.conftest import make_event


@pytest.fixture
def outbox(tmp_path):
    box = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=10)
    box.open()
    yield box
    box.close()


def test_put_then_pending_oldest_first(outbox):
    events = [make_event("a", 1), make_event("b", 1), make_event("a", 2)]
    outbox.put(events[:2])
    outbox.put(events[2:])
    assert outbox.pending(10) == events
    assert outbox.pending(2) == events[:2]
    assert outbox.depth() == 3


def test_payload_round_trips(outbox):
    event = make_event(labels={"x": "é"}, silenced_by=[], metrics={"cpu": 0.5})
    outbox.put([event])
    (cached,) = outbox.pending(1)   # the object put, from memory
    (back,) = outbox.pending(1)     # read once already: decoded from the database
    assert cached is event
    assert back is not event and back == event and back.payload == event.payload


def test_read_skips_decoding_events_put_by_this_process(tmp_path, monkeypatch):
    with SQLiteStore(str(tmp_path / "s.sqlite"), max_events=100, cache_events=3) as box:
        events = [make_event(str(i)) for i in range(5)]
        box.put(events[:3])
        box.put(events[3:])          # would exceed the cache: stored only
        decoded = []
        real_loads = json.loads
        monkeypatch.setattr("daemon.store.sqlite.json.loads",
                            lambda text: decoded.append(text) or real_loads(text))
        got, _ = box.pending_after(0, 10)
        assert got == events
        assert [e is o for e, o in zip(got, events, strict=True)] == [True] * 3 + [False] * 2
        assert len(decoded) == 2
        box.ack(e.event_id for e in events)
        box.put(events[3:])          # the cache was emptied by the read
        assert [e is o for e, o in zip(box.pending(10), events[3:], strict=True)] == [True, True]


def test_cache_skips_batches_with_duplicates_and_ack_and_close_empty_it(tmp_path):
    with SQLiteStore(str(tmp_path / "s.sqlite"), max_events=100) as box:
        first = make_event("a", 1)
        box.put([first])
        box.ack([first.event_id])
        assert box.pending(10) == []
        stored = make_event("b", 1)
        box.put([stored])
        box.pending(10)              # read: out of the cache
        again = AlarmEvent(event_id=stored.event_id, event_type=stored.event_type,
                           alarm_id="b", sequence=1, payload={"other": True})
        fresh = make_event("c", 1)
        box.put([again, fresh])      # the duplicate is ignored: nothing cached
        got = box.pending(10)
        assert got == [stored, fresh] and got[1] is not fresh
        box.put([make_event("d", 1)])
    assert box._cache == {}


def test_no_cache(tmp_path):
    with SQLiteStore(str(tmp_path / "s.sqlite"), max_events=10, cache_events=0) as box:
        event = make_event()
        box.put([event])
        (back,) = box.pending(1)
        assert back == event and back is not event
    with pytest.raises(ValueError, match="cache_events"):
        SQLiteStore(str(tmp_path / "s.sqlite"), max_events=10, cache_events=-1)


def test_ack_removes_only_given_ids(outbox):
    events = [make_event(str(i)) for i in range(5)]
    outbox.put(events)
    assert outbox.ack([events[1].event_id, events[3].event_id, "unknown"]) == 2
    assert outbox.pending(10) == [events[0], events[2], events[4]]
    assert outbox.depth() == 3
    assert outbox.ack([]) == 0


def test_ack_many_in_chunks(tmp_path):
    with SQLiteStore(str(tmp_path / "s.sqlite"), max_events=5000) as box:
        events = [make_event(str(i)) for i in range(1200)]
        box.put(events)
        assert box.ack(e.event_id for e in events[:1100]) == 1100
        assert box.pending(1000) == events[1100:]


def test_pending_after_reads_each_event_once(outbox):
    events = [make_event(str(i)) for i in range(5)]
    outbox.put(events[:3])
    first, cursor = outbox.pending_after(0, 2)
    second, cursor = outbox.pending_after(cursor, 10)
    assert first + second == events[:3]
    assert outbox.pending_after(cursor, 10) == ([], cursor)
    outbox.put(events[3:])
    assert outbox.pending_after(cursor, 10)[0] == events[3:]


def test_full_stores_nothing_and_counts(outbox):
    outbox.put([make_event(str(i)) for i in range(8)])
    before = telemetry.OUTBOX_FULL._value.get()
    with pytest.raises(exception.OutboxFull) as caught:
        outbox.put([make_event("x"), make_event("y"), make_event("z")],
                   states=[("k", {"v": 1})])
    assert "8 events pending, limit 10" in str(caught.value)
    assert telemetry.OUTBOX_FULL._value.get() == before + 1
    assert outbox.depth() == 8 and len(outbox.pending(100)) == 8
    assert outbox.load_states() == []
    # Exactly up to the limit is fine; state-only puts always are.
    outbox.put([make_event("x"), make_event("y")])
    outbox.put([], states=[("k", {"v": 1})])
    assert outbox.depth() == 10 and outbox.load_states() == [{"v": 1}]


def test_states_upsert_delete_and_load(outbox):
    outbox.put([make_event()], states=[("a", {"key": "a", "n": 1}), ("b", {"key": "b"})])
    outbox.put([], states=[("a", {"key": "a", "n": 2}), ("b", None), ("c", None)])
    assert outbox.load_states() == [{"key": "a", "n": 2}]


def test_put_is_one_transaction(outbox):
    events = [make_event("a"), make_event("b")]
    with pytest.raises(sqlite3.Error):
        # The second state key cannot be bound: the events must not stay either.
        outbox.put(events, states=[("ok", {"v": 1}), (object(), {"v": 2})])
    assert outbox.depth() == 0 and outbox.pending(10) == []
    assert outbox.load_states() == []
    outbox.put(events)
    assert outbox.pending(10) == events


def test_duplicate_event_id_is_ignored(outbox):
    event = make_event()
    outbox.put([event])
    outbox.put([event])
    assert outbox.depth() == 1 and outbox.pending(10) == [event]


def test_survives_reopen(tmp_path):
    path = str(tmp_path / "state.sqlite")
    events = [make_event(str(i)) for i in range(3)]
    with SQLiteStore(path, max_events=10) as box:
        box.put(events, states=[("k", {"v": 1})])
        box.ack([events[0].event_id])
    with SQLiteStore(path, max_events=10) as box:
        assert box.depth() == 2
        assert box.pending(10) == events[1:]
        assert box.load_states() == [{"v": 1}]


def test_wal_mode(outbox):
    db = sqlite3.connect(outbox.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_oldest_age(outbox):
    now = time.time()
    assert outbox.oldest_age(now) is None
    outbox.put([make_event()])
    assert 0 <= outbox.oldest_age(time.time() + 5) - 5 < 1
    assert outbox.oldest_age(0) == 0.0


def test_closed_outbox_refuses(tmp_path):
    box = SQLiteStore(str(tmp_path / "s.sqlite"), max_events=1)
    with pytest.raises(RuntimeError):
        box.depth()
    box.open()
    box.close()
    box.close()  # idempotent
    with pytest.raises(RuntimeError):
        box.put([make_event()])


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "s.sqlite")
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99"):
        SQLiteStore(path, max_events=1).open()


def test_batched_puts_drain_completely_through_the_cursor(tmp_path):
    # Its speed is measured by benchmarks/bench_publish.py, not here.
    with SQLiteStore(str(tmp_path / "s.sqlite"), max_events=100000) as box:
        events = [make_event(str(i % 50), i) for i in range(5000)]
        for i in range(0, 5000, 100):
            box.put(events[i:i + 100])
        assert box.depth() == 5000
        seen = []
        cursor = 0
        while True:
            batch, cursor = box.pending_after(cursor, 500)
            if not batch:
                break
            seen.extend(e.event_id for e in batch)
            for i in range(0, len(batch), 200):
                box.ack(e.event_id for e in batch[i:i + 200])
        assert seen == [e.event_id for e in events]
        assert box.depth() == 0


# ------------------------------------------------------------------ size bound (issue 13)

def _truncated(stage):
    return telemetry.EVENTS_TRUNCATED.labels(stage=stage)._value.get()


def test_a_huge_event_is_cut_when_put_and_its_alarm_goes_on(tmp_path):
    huge = make_event("alarm-1", 1, annotations={"description": "x" * 12_000_000})
    after = make_event("alarm-1", 2, event_type="alarm.resolved",
                       annotations={"description": "x" * 12_000_000})
    small = make_event("alarm-2", 1, annotations={"summary": "ok"})
    before = _truncated("put")
    with SQLiteStore(str(tmp_path / "s.sqlite"), max_events=10,
                max_event_bytes=100_000) as box:
        box.put([huge, small])
        box.put([after])
        assert _truncated("put") == before + 2
        cached = box.pending(10)                 # what was put, from memory
        stored = box.pending(10)                 # decoded from the database
    for events in (cached, stored):
        assert [e.event_id for e in events] == [huge.event_id, small.event_id, after.event_id]
        assert [e.sequence for e in events] == [1, 1, 2]
        for event in (events[0], events[2]):
            text = json.dumps(event.payload, separators=(",", ":"))
            assert len(text) <= 100_000
            assert "\u2026[truncated " in event.payload["annotations"]["description"]
    assert cached[1] is small          # normal-sized events are not touched
    assert stored[0].payload == cached[0].payload


def test_an_event_stored_larger_is_cut_when_read(tmp_path):
    huge = make_event("alarm-1", 1, annotations={"description": "y" * 3_000_000})
    path = str(tmp_path / "s.sqlite")
    with SQLiteStore(path, max_events=10, max_event_bytes=16 * 1024 * 1024) as box:
        box.put([huge])                          # an earlier relay, a larger limit
    before = _truncated("read")
    with SQLiteStore(path, max_events=10) as box:     # the default: 1 MiB
        (event,) = box.pending(1)
    assert _truncated("read") == before + 1
    assert event.event_id == huge.event_id
    assert len(json.dumps(event.payload, separators=(",", ":"))) <= 1024 * 1024
    assert event.payload["annotations"]["description"].startswith("y" * 1000)


def test_max_event_bytes_has_a_floor(tmp_path):
    with pytest.raises(ValueError):
        SQLiteStore(str(tmp_path / "s.sqlite"), max_events=10, max_event_bytes=1000)


def test_full_and_room_again_are_each_logged_once(outbox, caplog):
    caplog.set_level("INFO", logger="daemon.store")
    events = [make_event(str(i)) for i in range(10)]
    outbox.put(events)
    outbox.ack([events[0].event_id])
    assert "accepts events again" not in caplog.text, "logged without the outbox being full"
    outbox.put([make_event("a")])
    for _ in range(2):
        with pytest.raises(exception.OutboxFull):
            outbox.put([make_event("b")])
    assert caplog.text.count("outbox full") == 1
    outbox.ack([events[1].event_id, events[2].event_id])
    outbox.ack([events[3].event_id])
    outbox.put([make_event("c")])
    assert caplog.text.count("accepts events again") == 1
