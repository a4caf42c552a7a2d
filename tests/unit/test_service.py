"""service.plan_store_chunks: a storm is stored in overlapping transactions, state never ahead."""

import datetime

from daemon.lifecycle import Transition
from daemon.model import Alert
from daemon.service import plan_store_chunks

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
