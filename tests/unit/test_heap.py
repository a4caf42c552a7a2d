"""daemon/heap.py: the heap is frozen once per large growth of the tracked alarms."""

from __future__ import annotations

import gc
import weakref

import pytest

from daemon.heap import LongLivedHeap


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezes_the_alarms_alive_after_a_large_growth():
    heap = LongLivedHeap(growth=100)
    alarms = [{"fingerprint": str(n)} for n in range(100)]
    assert heap.note_tracked(len(alarms)) is True
    assert heap.freezes == 1
    assert gc.get_freeze_count() > len(alarms)
    # Frozen objects are out of every generation the collector walks.
    assert not any(obj is alarms for obj in gc.get_objects())


def test_small_growth_is_never_frozen():
    heap = LongLivedHeap(growth=100)
    for tracked in range(0, 100, 10):
        assert heap.note_tracked(tracked) is False
    assert gc.get_freeze_count() == 0
    assert heap.freezes == 0


def test_growth_counts_from_the_last_freeze():
    heap = LongLivedHeap(growth=100)
    assert heap.note_tracked(150) is True
    assert heap.note_tracked(240) is False
    assert heap.note_tracked(250) is True
    assert heap.freezes == 2


def test_growth_counts_from_the_lowest_number_after_alarms_resolved():
    heap = LongLivedHeap(growth=100)
    assert heap.note_tracked(500) is True
    assert heap.note_tracked(50) is False   # most alarms resolved
    assert heap.note_tracked(140) is False  # 90 new since the low point
    assert heap.note_tracked(150) is True


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_garbage_alive_at_the_freeze_is_collected_not_frozen():
    heap = LongLivedHeap(growth=1)
    gc.disable()  # the cycle must still be uncollected when the freeze comes
    try:
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
        assert gone() is not None  # a cycle: reference counting alone does not free it
        assert heap.note_tracked(1) is True
    finally:
        gc.enable()
    assert gone() is None
    gc.collect()
    assert gone() is None
