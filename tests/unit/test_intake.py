"""intake.plan_store_chunks: a storm is stored in overlapping transactions, state never ahead."""

import datetime

from daemon.intake import plan_store_chunks
from daemon.lifecycle import Transition
from daemon.model import Alert

NOW = datetime.datetime(2026, 11, 21, 22, 0, tzinfo=datetime.UTC)


def _transition(fp: str, kind: str = "firing") -> Transition:
    alert = Alert(fingerprint=fp, labels={"alertname": "A", "n": fp}, annotations={},
                  starts_at=NOW, ends_at=None)
    return Transition(kind, f"id-{fp}-{kind}", 1, alert, NOW, "c", "http://am")


def key(fp: str) -> str:
    return f"c/{fp}"


def test_small_batch_is_one_transaction_with_every_record():
    transitions = [_transition("a"), _transition("b")]
    changes = [(key("a"), {"x": 1}), (key("b"), None), (key("z"), {"only": "state"})]
    plan = plan_store_chunks(transitions, changes, key, 10)
    assert plan == [(transitions, changes)]


def test_no_transition_still_stores_state():
    plan = plan_store_chunks([], [(key("a"), {"x": 1})], key, 10)
    assert plan == [([], [(key("a"), {"x": 1})])]


def test_each_record_goes_with_the_chunk_of_its_alarms_last_transition():
    # A flap: the same alert resolves in chunk 0 and fires again in chunk 2.
    transitions = [_transition("a", "resolved"), _transition("b"), _transition("c"),
                   _transition("d"), _transition("a", "firing"), _transition("e")]
    changes = [(key(fp), {"fp": fp}) for fp in "abcde"] + [(key("q"), {"no": "transition"})]
    plan = plan_store_chunks(transitions, changes, key, 2)
    assert [len(batch) for batch, _ in plan] == [2, 2, 2]
    assert [batch for batch, _ in plan] == [transitions[0:2], transitions[2:4], transitions[4:6]]
    states = [dict(states) for _, states in plan]
    assert set(states[0]) == {key("b")}
    assert set(states[1]) == {key("c"), key("d")}
    # "a" waits for its last transition; unrelated state goes with the last chunk.
    assert set(states[2]) == {key("a"), key("e"), key("q")}
    stored = [k for s in states for k in s]
    assert sorted(stored) == sorted(k for k, _ in changes)


# -- the stage ---------------------------------------------------------------

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import aiohttp  # noqa: E402
import pytest  # noqa: E402

from daemon import api, exception, telemetry  # noqa: E402
from daemon.heap import LongLivedHeap  # noqa: E402
from daemon.intake import Intake  # noqa: E402
from daemon.lifecycle import LifecycleTracker  # noqa: E402
from daemon.model import PollResult, ReplicaPoll, fingerprint  # noqa: E402
from daemon.pipeline.mapping import parse_mapping  # noqa: E402
from daemon.pipeline.resolution import Resolution  # noqa: E402
from daemon.pipeline.transformer import Transformer  # noqa: E402
from daemon.sources.webhook import WebhookReceiver, WebhookSettings  # noqa: E402
from daemon.store import SQLiteStore  # noqa: E402

MAPPING = parse_mapping("alerts:\n- key: {alertname: {'=~': '.*'}}\n  resource: {id: instance}\n")
UPTIME = "2026-11-21T20:00:00Z"


def alert(name: str, **labels: str) -> Alert:
    labels = {"alertname": name, "instance": "h1:9100", **labels}
    return Alert(fingerprint(labels), labels, {}, NOW, NOW + datetime.timedelta(minutes=5))


_polls = iter(range(1, 1_000_000))


def poll(cluster: str, *alerts: Alert) -> PollResult:
    """A poll cycle, each one a second after the one before."""
    at = NOW + datetime.timedelta(seconds=next(_polls))
    return PollResult(cluster, (ReplicaPoll("http://am", list(alerts), None, UPTIME),), at, at)


class SlowFor:
    """A resolver that takes ``delay`` seconds for alerts of one cluster label."""

    NAME = "slow"

    def __init__(self, cluster: str, delay: float) -> None:
        self.cluster, self.delay = cluster, delay

    async def resolve(self, request):
        if request.labels.get("cluster") == self.cluster:
            await asyncio.sleep(self.delay)
        return Resolution()


@pytest.fixture
def store(tmp_path, db):
    box = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=100)
    box.open()
    yield box
    box.close()


def fail_put(store, at_call: int) -> None:
    """Make the ``at_call``-th ``store.put`` raise (disk full); the others store."""
    put, calls = store.put, []

    def failing_put(events, states=(), **kwargs):
        calls.append(len(events))
        if len(calls) == at_call:
            raise OSError("disk full")
        return put(events, states, **kwargs)

    store.put = failing_put


def make_intake(store, db, clusters=("east", "west"), resolvers=(), **kw) -> Intake:
    intake = Intake(clusters=list(clusters),
                    make_tracker=lambda name: LifecycleTracker(cluster=name), store=store,
                    transformer=Transformer(MAPPING, resolvers=list(resolvers),
                                            resolve_timeout=30),
                    db_executor=db, **kw)
    intake.accepting = True
    return intake


async def test_alerts_tracked_is_the_sum_over_clusters(store, db):
    """Issue 14, must-show 4: one writer, the whole relay's count (each tracker
    used to set it to its own count, so the last cluster polled won)."""
    intake = make_intake(store, db)
    await intake.on_poll(poll("east", alert("A"), alert("B")))
    assert telemetry.ALERTS_TRACKED._value.get() == 2
    await intake.on_poll(poll("west", alert("C"), alert("D"), alert("E")))
    assert telemetry.ALERTS_TRACKED._value.get() == 5
    await intake.on_poll(poll("east", alert("A")))
    assert telemetry.ALERTS_TRACKED._value.get() == 4 == intake.tracked


async def test_a_large_poll_freezes_its_new_alarms_once(store, db):
    """Issue 16: after a storm's poll the new alarms are frozen out of the collector's
    walks, once; polls that add nothing do not freeze again."""
    heap = LongLivedHeap(growth=50)
    intake = make_intake(store, db, heap=heap)
    try:
        await intake.on_poll(poll("east", *(alert(f"A{n}") for n in range(60))))
        assert heap.freezes == 1
        assert gc.get_freeze_count() > 0
        await intake.on_poll(poll("east", *(alert(f"A{n}") for n in range(60))))
        await intake.on_poll(poll("west", *(alert(f"B{n}") for n in range(10))))
        assert heap.freezes == 1
    finally:
        gc.unfreeze()


async def test_each_chunks_state_records_are_built_when_it_is_stored(store, db):
    """Issue 16: a storm's 50,000 records built before the first chunk were 400,000
    objects alive (and walked by every full collection) until the last chunk."""
    intake = make_intake(store, db, chunk=2)
    tracker = intake.tracker("east")
    put, seen = store.put, []

    def spying_put(events, states=(), **kw):
        states = list(states)
        seen.append((len(events), len(states), tracker.pending_changes))
        # Each chunk carries the records of its own events' alarms.
        assert sorted(key for key, _ in states) == sorted(
            tracker.state_key(e.payload["fingerprint"]) for e in events)
        return put(events, states, **kw)

    store.put = spying_put
    await intake.on_poll(poll("east", *(alert(f"A{n}") for n in range(5))))
    # Chunks of 2, 2 and 1 events, each with its alarms' records; while a chunk is
    # written, the later chunks' records are not built yet.
    assert seen == [(2, 2, 3), (2, 2, 1), (1, 1, 0)]
    assert len(store.load_states()) == 5


async def test_a_storms_later_chunks_wait_for_the_pace_and_the_first_does_not(store, db):
    """Issue 16: [publisher] store_ahead paces a poll's chunks after the first; one chunk
    (a normal poll), a webhook delivery and a stopping relay never wait."""
    order = []
    put = store.put

    def recording_put(events, states=(), **kw):
        order.append(("put", len(events)))
        return put(events, states, **kw)

    starts = []

    async def pace(started):
        starts.append(started)
        order.append(("pace", store.depth()))

    store.put = recording_put
    intake = make_intake(store, db, chunk=2, pace=pace)
    await intake.on_poll(poll("east", *(alert(f"A{n}") for n in range(5))))
    assert order == [("put", 2), ("pace", 2), ("put", 2), ("pace", 4), ("put", 1)]
    assert len(set(starts)) == 1   # one budget for the whole poll, not one per chunk
    order.clear()
    await intake.on_poll(poll("west", alert("B")))
    assert order == [("put", 1)]
    order.clear()
    await intake.on_webhook([alert(f"W{n}") for n in range(3)], "http://am1:9093", "west")
    assert order == [("put", 2), ("put", 1)]
    # Stopping: what is left is stored without waiting.
    order.clear()
    intake.accepting = False
    await intake._observe("west", lambda tracker, now: tracker.observe_poll(
        poll("west", alert("B"), *(alert(f"W{n}") for n in range(3)),
             *(alert(f"C{n}") for n in range(3))), now), paced=True)
    assert order == [("put", 2), ("put", 1)]


async def test_each_transition_is_counted_once_by_kind_and_reason(store, db):
    def count(kind, reason=""):
        return telemetry.TRANSITIONS.labels(kind=kind, reason=reason)._value.get()

    intake = make_intake(store, db)
    firing, gone = count("firing"), count("resolved", "disappeared")
    await intake.on_poll(poll("east", *(alert(f"A{n}") for n in range(5))))
    assert count("firing") == firing + 5
    await intake.on_poll(poll("east", alert("A0")))
    assert count("resolved", "disappeared") == gone + 4   # gone from a poll that answered
    assert count("firing") == firing + 5


async def test_a_failed_later_chunk_keeps_what_was_stored_and_loses_nothing(store, db):
    """A chunk failing after others were stored: the tracker is rebuilt from the store
    (the stored chunks' alarms), and the next poll stores the rest, once."""
    intake = make_intake(store, db, chunk=2)
    fail_put(store, at_call=2)
    alerts = [alert(f"A{n}") for n in range(5)]
    with pytest.raises(OSError):
        await intake.on_poll(poll("east", *alerts))
    assert intake.tracker("east").tracked == 2 == len(store.load_states())
    await intake.on_poll(poll("east", *alerts))
    stored, _ = await asyncio.get_running_loop().run_in_executor(db, store.pending_after, 0, 10)
    names = [e.payload["name"] for e in stored]
    assert sorted(names) == [f"A{n}" for n in range(5)]  # each fired once
    assert len(store.load_states()) == 5
    assert intake.tracker("east").pending_changes == 0


async def test_a_slow_resolver_never_holds_back_another_cluster(store, db):
    """Issue 14, must-show 3: while east's alarm waits 5 s for its resolver, a webhook
    for west is stored and answered in under 0.5 s."""
    intake = make_intake(store, db, resolvers=[SlowFor("east", 5.0)])
    app = api.build_app(max_body_size=1 << 20, readiness=lambda: {})
    WebhookReceiver(settings=WebhookSettings(), on_alerts=intake.on_webhook,
                    clusters=["east", "west"]).add_routes(app)
    runner, port = await api.serve(app, "127.0.0.1", 0)
    try:
        slow = asyncio.create_task(intake.on_poll(poll("east", alert("A", cluster="east"))))
        await asyncio.sleep(0.2)  # east is now waiting on its resolver, under its lock
        body = {"version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "B", "instance": "h2:9100",
                                           "cluster": "west"},
            "annotations": {}, "startsAt": "2026-11-21T21:59:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""}]}
        began = time.monotonic()
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/v1/alerts/west", data=json.dumps(body),
                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 200
        took = time.monotonic() - began
        assert took < 0.5, took
        stored = await asyncio.get_running_loop().run_in_executor(db, store.pending_after, 0, 10)
        assert [e.payload["name"] for e in stored[0]] == ["B"]
        assert not slow.done()
        await slow
        stored = await asyncio.get_running_loop().run_in_executor(db, store.pending_after, 0, 10)
        assert sorted(e.payload["name"] for e in stored[0]) == ["A", "B"]
    finally:
        await runner.cleanup()


async def test_full_outbox_leaves_the_tracker_untouched(tmp_path, db):
    box = SQLiteStore(str(tmp_path / "s.sqlite"), max_events=1)
    box.open()
    try:
        intake = make_intake(box, db)
        await intake.on_poll(poll("east", alert("A")))
        await intake.on_poll(poll("east", alert("A"), alert("B")))  # full: dropped, logged
        assert intake.tracked == 1
        with pytest.raises(exception.OutboxFull):
            await intake.on_webhook([alert("C")], "http://am", "west")
        assert intake.tracker("west").tracked == 0
    finally:
        box.close()


async def test_a_failed_store_rebuilds_the_tracker_and_nothing_is_lost(store, db):
    intake = make_intake(store, db)
    fail_put(store, at_call=1)
    with pytest.raises(OSError):
        await intake.on_poll(poll("east", alert("A")))
    assert intake.tracker("east").tracked == 0  # rebuilt from what was stored: nothing
    await intake.on_poll(poll("east", alert("A")))  # the next poll derives it again
    stored, _ = await asyncio.get_running_loop().run_in_executor(db, store.pending_after, 0, 10)
    assert [(e.payload["name"], e.payload["status"]) for e in stored] == [("A", "firing")]


async def test_restore_and_drain(store, db):
    first = make_intake(store, db)
    await first.on_poll(poll("east", alert("A")))
    await first.drain()
    assert not first.accepting
    with pytest.raises(exception.OutboxFull):  # stopping: the webhook gets 503
        await first.on_webhook([alert("B")], "http://am", "east")
    again = make_intake(store, db, clusters=("east",))
    await again.restore()
    assert again.tracked == 1
    await again.on_poll(poll("east", alert("A")))  # the same alarm: no second firing
    stored, _ = await asyncio.get_running_loop().run_in_executor(db, store.pending_after, 0, 10)
    assert len(stored) == 1


# -- several relays (issue 15): units, fencing, the inbox -----------------------------

import dataclasses  # noqa: E402

from daemon.coordination import partition_of  # noqa: E402
from daemon.intake import alert_from_json, alert_to_json  # noqa: E402


async def _call(db, func, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(db, lambda: func(*args, **kwargs))


def test_an_alert_goes_through_the_inbox_unchanged():
    original = dataclasses.replace(alert("A", domain="x"), status="resolved",
                                   silenced_by=("s1",), generator_url="http://p/g")
    assert alert_from_json(json.loads(json.dumps(alert_to_json(original)))) == original


async def test_partitions_keep_only_the_alerts_of_the_units_owned(store, db):
    intake = make_intake(store, db, clusters=["east"], coordinated=True, partitions=3)
    assert intake.units() == ["east/0", "east/1", "east/2"] and intake.owned() == {}
    await intake.on_poll(poll("east", *[alert(f"A{i}") for i in range(30)]))
    assert await _call(db, store.depth) == 0  # nothing owned: nothing stored
    epoch = await _call(db, store.claim, "east/1", "me")
    await intake.take("east/1", epoch)
    alerts = [alert(f"A{i}") for i in range(30)]
    await intake.on_poll(poll("east", *alerts))
    mine = [a for a in alerts if partition_of(a.fingerprint, 3) == 1]
    assert 0 < len(mine) < 30
    assert await _call(db, store.depth, ["east/1"]) == len(mine) == intake.tracked
    assert await _call(db, store.depth) == len(mine)


async def test_a_fenced_write_drops_the_unit_and_is_counted(store, db):
    fenced = []
    intake = make_intake(store, db, clusters=["east"], coordinated=True,
                         on_fenced=fenced.append)
    await intake.take("east", await _call(db, store.claim, "east", "me"))
    await intake.on_poll(poll("east", alert("A")))
    assert await intake.verify("east")
    await _call(db, store.claim, "east", "someone-else")  # took over while we were paused
    before = telemetry.FENCED_WRITES._value.get()
    await intake.on_poll(poll("east", alert("A"), alert("B")))
    assert telemetry.FENCED_WRITES._value.get() == before + 1
    assert fenced == ["east"] and intake.owned() == {}
    assert await _call(db, store.depth) == 1  # B was not stored
    assert not await intake.verify("east")


async def test_verify_finds_a_lost_unit_without_anything_to_write(store, db):
    fenced = []
    intake = make_intake(store, db, clusters=["east"], coordinated=True,
                         on_fenced=fenced.append)
    await intake.take("east", await _call(db, store.claim, "east", "me"))
    await _call(db, store.claim, "east", "someone-else")
    assert not await intake.verify("east")
    assert fenced == ["east"]


async def test_a_webhook_for_a_unit_owned_elsewhere_goes_through_the_inbox_once(
        tmp_path, store, db):
    standby = make_intake(store, db, clusters=["east"], coordinated=True)
    owner = make_intake(store, db, clusters=["east"], coordinated=True)
    await owner.take("east", await _call(db, store.claim, "east", "owner"))
    await standby.on_webhook([alert("A"), alert("B")], "http://am", "east")
    assert await _call(db, store.depth) == 0
    assert len(await _call(db, store.inbox_take, "east", 10)) == 1
    assert await owner.drain_inbox() == 1
    assert await _call(db, store.depth) == 2 and owner.tracked == 2
    assert await _call(db, store.inbox_take, "east", 10) == []  # deleted with the results
    assert await owner.drain_inbox() == 0


async def test_single_relay_owns_every_cluster_unfenced(store, db):
    intake = make_intake(store, db)
    assert intake.owned() == {"east": None, "west": None}
    await intake.on_poll(poll("east", alert("A")))
    assert await intake.verify("east")
    stored, _ = await _call(db, store.pending_after, 0, 10, units=["east"])
    assert len(stored) == 1  # the unit column says whose event it is


async def test_partitions_take_the_state_a_single_relay_left_under_the_cluster(store, db):
    single = make_intake(store, db, clusters=["east"])  # what `db copy` brings: unit "east"
    alerts = [alert(f"A{i}") for i in range(12)]
    await single.on_poll(poll("east", *alerts))
    intake = make_intake(store, db, clusters=["east"], coordinated=True, partitions=3)
    for p in range(3):
        await intake.take(f"east/{p}", await _call(db, store.claim, f"east/{p}", "me"))
    assert intake.tracked == 12  # each alarm in its partition, none twice
    before = await _call(db, store.depth)
    await intake.on_poll(poll("east", *alerts))
    assert await _call(db, store.depth) == before  # nothing fired again
