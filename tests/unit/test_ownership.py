"""daemon/ownership.py: units claimed, fenced, given up; two relays on one store.

The membership is real tooz (its file driver in a temp dir: the same API as Redis, without
a server); the store is the real SQLite store; the intake is the real one.
"""

from __future__ import annotations

import asyncio

import pytest

from daemon import telemetry
from daemon.coordination import Coordinator
from daemon.ownership import Ownership
from daemon.store import SQLiteStore
from tests.unit.test_intake import alert, make_intake, poll

UNITS = ["east/0", "east/1", "east/2", "east/3"]
CHECK_INTERVAL = 0.1


@pytest.fixture
def store(tmp_path, db):
    box = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=10000)
    box.open()
    yield box
    box.close()


def _relay(tmp_path, store, db, name: str, changes: list | None = None):
    intake = make_intake(store, db, clusters=["east"], coordinated=True, partitions=4)
    coordinator = Coordinator(f"file://{tmp_path / 'tooz'}", name, lease=5)
    ownership = Ownership(coordinator, store, db_executor=db, units=intake.units(),
                          check_interval=CHECK_INTERVAL, on_take=intake.take,
                          on_release=intake.release,
                          on_change=(changes.append if changes is not None else
                                     lambda units: None),
                          verify=intake.verify, settle=5)
    intake._on_fenced = ownership.fenced
    return intake, ownership


async def _started(ownership: Ownership) -> None:
    """Join, then the second check: the first claims nothing no one owned."""
    await ownership.start()
    await asyncio.sleep(CHECK_INTERVAL)
    await ownership.check()


async def test_two_relays_share_the_units_and_take_over_a_leaving_one(tmp_path, store, db,
                                                                      caplog):
    caplog.set_level("INFO")
    changes: list = []
    a_intake, a = _relay(tmp_path, store, db, "host-a-1", changes)
    await _started(a)
    assert set(a.owned) == set(UNITS)  # alone: everything
    assert changes[-1] == frozenset(UNITS)
    b_intake, b = _relay(tmp_path, store, db, "host-b-2")
    await _started(b)
    assert b.owned == {}  # a is alive: b lets a hand its excess over first
    await a.check()  # a sees b and gives up its excess
    await asyncio.sleep(0.25)  # two of b's checks
    await b.check()
    assert len(a.owned) == 2 and len(b.owned) == 2 and not set(a.owned) & set(b.owned)
    assert set(a_intake.owned()) == set(a.owned)
    assert set(b.owned.values()) == {2}  # claimed after a: epoch 2
    assert telemetry.OWNED_UNITS._value.get() in (2.0,)
    took = [r for r in caplog.records if "Ownership: took unit" in r.getMessage()]
    gave = [r for r in caplog.records if "Ownership: gave up unit" in r.getMessage()]
    down = [r for r in caplog.records if "Ownership: stepped down" in r.getMessage()]
    assert len(took) == 6 and len(gave) == 2 and not down  # one line per change, no fencing

    await b.stop()  # leaves the group: a takes everything back at once
    await a.check()
    assert set(a.owned) == set(UNITS)
    await a.stop()


async def test_a_relay_whose_units_were_claimed_steps_down_at_its_next_check(
        tmp_path, store, db):
    intake, ownership = _relay(tmp_path, store, db, "host-a-1")
    await _started(ownership)
    await intake.on_poll(poll("east", alert("A")))
    before = telemetry.FENCED_WRITES._value.get()
    # Another relay claimed east/2 while this one was paused.
    await asyncio.get_running_loop().run_in_executor(db, store.claim, "east/2", "host-b-2")
    await ownership.check()
    assert telemetry.FENCED_WRITES._value.get() == before + 1
    # host-b-2 is not a member, so the assignment gives east/2 back here: claimed again,
    # its state loaded again.
    assert ownership.owned["east/2"] == 3 == intake.owned()["east/2"]
    assert intake.tracked == 1
    await ownership.stop()


async def test_backend_down_keeps_the_units_and_claims_nothing(tmp_path, store, db):
    intake, ownership = _relay(tmp_path, store, db, "host-a-1")
    await _started(ownership)
    owned = dict(ownership.owned)
    assert owned
    (tmp_path / "tooz").rename(tmp_path / "tooz-gone")
    (tmp_path / "tooz").write_text("not a directory: the backend fails")
    await ownership.check()
    assert ownership.owned == owned and not ownership.coordinator.healthy
    await ownership.stop()


async def test_relays_started_together_claim_each_unit_once(tmp_path, store, db, caplog):
    """A cluster's first start (CI found both relays claiming the one unit 2 ms apart,
    the second claim fencing the first): a relay that just joined claims no unowned
    unit at its first check, so both see each other and split the units at once."""
    caplog.set_level("INFO")
    before = telemetry.FENCED_WRITES._value.get()
    a_intake, a = _relay(tmp_path, store, db, "host-a-1")
    b_intake, b = _relay(tmp_path, store, db, "host-b-2")
    await a.start()
    await b.start()
    assert a.owned == {} and b.owned == {}  # both just joined: nothing claimed yet
    await asyncio.sleep(CHECK_INTERVAL)
    await a.check()
    await b.check()
    assert len(a.owned) == 2 and len(b.owned) == 2 and not set(a.owned) & set(b.owned)
    # Each unit claimed once, at epoch 1: nothing handed over, nothing fenced.
    assert set(a.owned.values()) == set(b.owned.values()) == {1}
    assert not [r for r in caplog.records if "Ownership: gave up unit" in r.getMessage()]
    assert telemetry.FENCED_WRITES._value.get() == before
    await a.stop()
    await b.stop()
