"""daemon/coordination.py: the units, their assignment over members, and the tooz wrapper."""

from __future__ import annotations

import asyncio
import collections
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tooz import coordination as tooz_coordination

from daemon import coordination, exception
from daemon.coordination import assign, cluster_units, partition_of, unit_name

UNITS = st.lists(st.text("abcdefgh/0123456789", min_size=1, max_size=6),
                 max_size=40, unique=True)
MEMBERS = st.lists(st.sampled_from([f"host{i}-{100 + i}" for i in range(8)]),
                   min_size=1, max_size=8, unique=True)
GONE = ["gone-1", "gone-2"]


def _shares(result: dict[str, str], members: list[str]) -> collections.Counter:
    counts = collections.Counter({member: 0 for member in members})
    counts.update(result.values())
    return counts


# -- the units ------------------------------------------------------------------


def test_one_partition_is_the_cluster():
    assert unit_name("eu-west", 0) == "eu-west"
    assert cluster_units("eu-west") == ["eu-west"]
    assert partition_of("0123456789abcdef", 1) == 0


def test_partitions_are_named_after_the_cluster():
    assert cluster_units("eu-west", 3) == ["eu-west/0", "eu-west/1", "eu-west/2"]
    with pytest.raises(ValueError):
        unit_name("eu-west", 3, 3)


def test_partition_of_is_crc32_and_stable():
    # Fixed values: a change would move every alarm to another partition after an upgrade.
    for fp in ("a1b2c3d4e5f60718", "0000000000000000", "ffffffffffffffff"):
        assert partition_of(fp, 7) == zlib.crc32(fp.encode()) % 7


def test_partitions_spread_fingerprints():
    counts = collections.Counter(partition_of(f"{i:016x}", 3) for i in range(3000))
    assert set(counts) == {0, 1, 2}
    assert all(800 < n < 1200 for n in counts.values())


# -- assignment -----------------------------------------------------------------


def test_no_member_owns_nothing():
    assert assign(["a", "b"], []) == {}


def test_one_unit_stays_with_its_live_owner_when_members_join():
    assert assign(["c"], ["m1", "m2", "m3"], {"c": "m3"}) == {"c": "m3"}


def test_a_dead_owners_unit_moves():
    result = assign(["c"], ["m1", "m2"], {"c": "m3"})
    assert result["c"] in {"m1", "m2"}


@settings(max_examples=300, deadline=None)
@given(units=UNITS, members=MEMBERS, data=st.data())
def test_assignment_is_complete_balanced_and_deterministic(units, members, data):
    previous = {unit: data.draw(st.sampled_from(members + GONE)) for unit in units
                if data.draw(st.booleans())}
    result = assign(units, members, previous)
    assert set(result) == set(units)
    assert set(result.values()) <= set(members)
    low, high = divmod(len(units), len(members))
    for member, count in _shares(result, members).items():
        assert low <= count <= low + (1 if high else 0), (member, count)
    # Every member computes the same answer, whatever order it lists things in.
    assert assign(list(reversed(units)), list(reversed(members)), dict(previous)) == result


@settings(max_examples=300, deadline=None)
@given(units=UNITS, members=MEMBERS, data=st.data())
def test_assignment_is_sticky(units, members, data):
    previous = {unit: data.draw(st.sampled_from(members + GONE)) for unit in units}
    result = assign(units, members, previous)
    low, high = divmod(len(units), len(members))
    held = collections.Counter(owner for owner in previous.values() if owner in members)
    for unit, owner in previous.items():
        if owner in members and held[owner] <= low:
            assert result[unit] == owner  # within its share: never moved
    # Only what must move moves: units of gone members, and the excess of members
    # above their share (the members holding most get the larger shares).
    moved = sum(1 for unit in units if result[unit] != previous[unit])
    gone = sum(1 for owner in previous.values() if owner not in members)
    holdings = sorted((held[m] for m in members), reverse=True)
    excess = sum(max(0, n - low - (1 if i < high else 0)) for i, n in enumerate(holdings))
    assert moved == gone + excess


@settings(max_examples=100, deadline=None)
@given(units=UNITS, members=MEMBERS)
def test_reassigning_the_result_moves_nothing(units, members):
    result = assign(units, members)
    assert assign(units, members, result) == result


def test_a_joining_member_takes_only_its_share():
    units = cluster_units("c", 6)
    before = assign(units, ["m1", "m2"])
    after = assign(units, ["m1", "m2", "m3"], before)
    moved = [u for u in units if before[u] != after[u]]
    assert len(moved) == 2 and all(after[u] == "m3" for u in moved)


# -- the tooz wrapper -----------------------------------------------------------


class _DownTooz:
    """A tooz coordinator whose backend refuses every connection (a real one needs a
    server; the functional tests use Redis, this only checks the error boundary)."""

    is_started = False

    def start(self, start_heart=False):
        raise tooz_coordination.ToozConnectionError("Error 111 connecting. Connection refused.")

    def stop(self):
        pass


def test_unreachable_backend_is_a_coordination_error_and_keeps_members(caplog):
    async def run():
        coord = coordination.Coordinator("redis://user:secret@127.0.0.1:1", "h-1", lease=5,
                                         factory=lambda *a, **k: _DownTooz())
        await coord.start()  # logged, not raised: the relay starts as a standby
        assert not coord.healthy
        with pytest.raises(exception.CoordinationError) as err:
            await coord.refresh()
        assert "secret" not in str(err.value)
        assert coord.members == frozenset()
        await coord.stop()
    asyncio.run(run())
    warnings = [r for r in caplog.records if "coordination backend" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per check


def test_partition_0_also_publishes_what_was_stored_under_the_cluster():
    assert coordination.outbox_units({"c/0", "c/2", "d/1"}, 3) == {"c/0", "c/2", "d/1", "c"}
    assert coordination.outbox_units({"c"}, 1) == {"c"}
