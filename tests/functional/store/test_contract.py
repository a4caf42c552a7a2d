"""The Store contract, on every backend: the embedded SQLite file (SQLiteStore), and
SQLStore on SQLite, PostgreSQL and MariaDB (fresh databases of the test's own).

Two store objects on one database stand for two relays: fencing and the inbox
handoff are checked across them.
"""

from __future__ import annotations

import threading

import pytest

from daemon import exception
from daemon.store import InboxItem, SQLiteStore, SQLStore, migration
from daemon.store.sql import create_engine
from tests.unit.publish.conftest import make_event
from tools.harness.databases import MariaDBDatabase, PostgresDatabase

BACKENDS = ["embedded", "sqlite", "postgresql", "mariadb"]


@pytest.fixture(params=BACKENDS)
def make_store(request, tmp_path):
    """``make_store(**kw)``: a store on this test's database (schema synced), opened."""
    database = None
    if request.param in ("embedded", "sqlite"):
        url = f"sqlite:///{tmp_path / 'alarm-relay.sqlite'}"
    else:
        database = (PostgresDatabase() if request.param == "postgresql"
                    else MariaDBDatabase()).create()
        url = database.url
    made = []

    def make(**kwargs):
        kwargs.setdefault("max_events", 1000)
        if request.param == "embedded":
            store = SQLiteStore(str(tmp_path / "alarm-relay.sqlite"), **kwargs)
        else:
            if not made:
                engine = create_engine(url, max_retries=0)
                migration.upgrade(engine)   # alarm-relay-manage db sync
                engine.dispose()
            store = SQLStore(url, engine_options={"max_retries": 0}, **kwargs)
        store.open()
        made.append(store)
        return store

    make.backend = request.param
    yield make
    for store in made:
        store.close()
    if database is not None:
        database.drop()


def test_put_pending_ack_in_order(make_store):
    store = make_store()
    events = [make_event("a", 1), make_event("b", 1), make_event("a", 2)]
    store.put(events[:2], states=[("c/a", {"key": "c/a", "n": 1})], unit="c")
    store.put(events[2:], states=[("c/a", {"key": "c/a", "n": 2}), ("c/b", {"key": "c/b"})],
              unit="c")
    assert store.depth() == 3 and store.depth(["c"]) == 3
    got, cursor = store.pending_after(0, 2)
    assert got == events[:2]
    more, cursor = store.pending_after(cursor, 10)
    assert more == events[2:]
    assert store.pending_after(cursor, 10) == ([], cursor)
    assert store.load_states() == [{"key": "c/a", "n": 2}, {"key": "c/b"}]
    assert store.ack([events[0].event_id, "unknown"]) == 1
    assert store.pending_after(0, 10)[0] == events[1:]
    store.put([], states=[("c/b", None)], unit="c")
    assert store.load_states(["c"]) == [{"key": "c/a", "n": 2}]
    assert 0.0 <= store.oldest_age(1e12) and store.oldest_age(0.0) == 0.0


def test_a_second_store_reads_what_the_first_wrote(make_store):
    writer = make_store()
    event = make_event(labels={"é": "ü" * 3000}, metrics={"cpu": 0.25})
    writer.put([event], states=[("k", {"v": "é"})], unit="u")
    reader = make_store()
    (back,) = reader.pending_after(0, 10)[0]
    assert back == event and back.payload == event.payload and back is not event
    assert reader.load_states(["u"]) == [{"v": "é"}]


def test_duplicate_event_id_is_ignored(make_store):
    store = make_store()
    event = make_event()
    store.put([event])
    store.put([event, make_event("other")])
    assert store.depth() == 2 and store.pending_after(0, 10)[0][0] == event


def test_outbox_full_stores_nothing(make_store):
    store = make_store(max_events=2)
    store.put([make_event("a"), make_event("b")])
    with pytest.raises(exception.OutboxFull):
        store.put([make_event("c")], states=[("k", {"v": 1})])
    assert store.depth() == 2 and store.load_states() == []


def test_fencing_across_two_relays(make_store):
    a, b = make_store(), make_store()
    epoch_a = a.claim("c1", "relay-a")
    a.put([make_event("x", 1)], states=[("c1/x", {"n": 1})], unit="c1", fence=epoch_a)
    epoch_b = b.claim("c1", "relay-b")
    assert epoch_b == epoch_a + 1
    inbox_id = b.inbox_put("c1", "c1", "http://am", [{"labels": {"a": "1"}}])
    late = make_event("x", 2)
    with pytest.raises(exception.FencedWrite) as caught:
        a.put([late], states=[("c1/x", {"n": 2})], unit="c1", fence=epoch_a,
              inbox_done=[inbox_id])
    assert (caught.value.unit, caught.value.fence, caught.value.epoch) == (
        "c1", epoch_a, epoch_b)
    for store in (a, b):
        assert [e.event_id for e in store.pending_after(0, 10)[0]] != [late.event_id]
        assert store.depth(["c1"]) == 1
        assert store.load_states(["c1"]) == [{"n": 1}]
        assert [i.id for i in store.inbox_take("c1", 10)] == [inbox_id]
    b.put([make_event("x", 2)], states=[("c1/x", {"n": 2})], unit="c1", fence=epoch_b,
          inbox_done=[inbox_id])
    assert a.owners() == {"c1": ("relay-b", epoch_b)}
    assert b.load_states(["c1"]) == [{"n": 2}] and b.inbox_take("c1", 10) == []


def test_claims_race_one_epoch_each(make_store):
    stores = [make_store() for _ in range(3)]
    epochs, errors = [], []

    def claim(store, name):
        try:
            for _ in range(5):
                epochs.append(store.claim("race", name))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=claim, args=(s, f"m{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(epochs) == list(range(1, 16))
    assert stores[0].owners()["race"][1] == 15


def test_inbox_handoff_exactly_once(make_store):
    receiver, owner = make_store(), make_store()
    alerts = [{"labels": {"alertname": "Cpu", "instance": "é"}, "status": "firing",
               "annotations": {"big": "x" * 100000}}]
    row = receiver.inbox_put("c1", "c1", "http://am:9093", alerts)
    receiver.inbox_put("other", "c2", "http://am2", [])
    (item,) = owner.inbox_take("c1", 10)
    assert isinstance(item, InboxItem) and item.id == row
    assert (item.cluster, item.source_url, item.alerts) == ("c1", "http://am:9093", alerts)
    epoch = owner.claim("c1", "owner")
    event = make_event()
    owner.put([event], unit="c1", fence=epoch, inbox_done=[item.id])
    assert owner.inbox_take("c1", 10) == [] and receiver.inbox_take("c1", 10) == []
    assert receiver.pending_after(0, 10)[0] == [event]
    assert len(receiver.inbox_take("other", 10)) == 1


def test_unit_filters(make_store):
    store = make_store()
    e1, e2, e3 = make_event("a"), make_event("b"), make_event("c")
    store.put([e1], states=[("u1/a", {"k": 1})], unit="u1")
    store.put([e2], states=[("u2/b", {"k": 2})], unit="u2")
    store.put([e3], states=[("u1/c", {"k": 3})], unit="u1")
    assert store.pending_after(0, 10, ["u1"])[0] == [e1, e3]
    assert store.pending_after(0, 10, ["u2"])[0] == [e2]
    assert store.pending_after(0, 10, [])[0] == []
    assert store.depth(["u1"]) == 2 and store.depth(["u1", "u2"]) == 3
    assert store.load_states(["u2"]) == [{"k": 2}]
    assert store.oldest_age(0.0, ["nope"]) is None
    store.ack([e2.event_id])
    assert store.depth(["u2"]) == 0 and store.oldest_age(0.0, ["u2"]) is None


def test_single_relay_lock(make_store):
    first, second = make_store(), make_store()
    first.hold_single_relay_lock()
    first.hold_single_relay_lock()   # held already: nothing more
    with pytest.raises(exception.StoreInUse) as caught:
        second.hold_single_relay_lock()
    message = str(caught.value)
    assert "[coordination] backend_url" in message and "\n" not in message
    first.close()
    second.hold_single_relay_lock()


def test_a_large_event_round_trips(make_store):
    store = make_store(max_event_bytes=4 * 1024 * 1024)
    event = make_event(annotations={"log": "x" * 1_500_000 + "é"})
    store.put([event])
    reader = make_store(max_event_bytes=4 * 1024 * 1024)
    assert reader.pending_after(0, 1)[0] == [event]


def test_schema_behind_is_refused(database_url):
    engine = create_engine(database_url, max_retries=0)
    try:
        with pytest.raises(exception.SchemaMismatch, match="none .*alarm-relay-manage db sync"):
            SQLStore(database_url, max_events=10, engine_options={"max_retries": 0}).open()
        migration.upgrade(engine, "0001")
        with pytest.raises(exception.SchemaMismatch) as caught:
            SQLStore(database_url, max_events=10, engine_options={"max_retries": 0}).open()
        assert str(caught.value) == (
            f"database schema is at 0001, this relay needs {migration.head()}: "
            "run 'alarm-relay-manage db sync'")
        assert migration.upgrade(engine) == ("0001", migration.head())
        with SQLStore(database_url, max_events=10, engine_options={"max_retries": 0}) as store:
            assert store.depth() == 0
    finally:
        engine.dispose()
