"""Keep CPython's cyclic garbage collector off the alarms the relay holds for hours.

A full collection walks every container object the collector tracks. After a
storm the relay holds 50,000 or more alarms (a few containers each) that live
until they resolve, and every full collection walked all of them again: in the
storm benchmark 15 full collections held the daemon for 3.5 s of its 41 s, one
of them for 0.64 s, while the publishing threads waited for the GIL
(``benchmarks/gcstats``, docs/performance.md).

:func:`gc.freeze` moves every object alive now into the permanent generation,
which no collection walks. Reference counting still frees a frozen object the
moment it is no longer used (a resolved alarm's record goes as before); only a
reference cycle among frozen objects would stay, and the relay's state records
hold none. So after the tracked alarms grew by a lot, they are frozen once, right
after one full collection, so that no garbage is frozen with them. Measured in the
same storm benchmark: about a fifth less time in full collections and a quarter
shorter longest pause; the storm's total did not move beyond the machine's noise.
"""

from __future__ import annotations

import gc

__all__ = ["FREEZE_AFTER_GROWTH", "LongLivedHeap"]

#: Newly tracked alarms since the last freeze that make the next one worth it. Small
#: growth (a steady churn of a few alarms) is never frozen: full collections of a
#: small heap are short, and what they walk may still be cyclic garbage.
FREEZE_AFTER_GROWTH = 10_000


class LongLivedHeap:
    """Freezes the heap after the number of tracked alarms grew by ``growth``.

    :param growth: alarms (count) the tracked number must have grown by since
        the last freeze, or since the smallest number seen after it
    """

    def __init__(self, growth: int = FREEZE_AFTER_GROWTH) -> None:
        self.growth = growth
        self.freezes = 0
        self._base = 0

    def note_tracked(self, tracked: int) -> bool:
        """Record the number of tracked alarms; freeze when it grew by ``growth``.

        :param tracked: alarms tracked now (all units of this relay)
        :returns: whether the heap was frozen now
        """
        if tracked < self._base:
            # Alarms resolved: growth from here on is what a new freeze would save.
            self._base = tracked
            return False
        if tracked - self._base < self.growth:
            return False
        # Garbage alive now (a reference cycle not yet collected: an exception with its
        # traceback, a finished future) would otherwise be frozen too, and never freed.
        gc.collect()
        gc.freeze()
        self._base = tracked
        self.freezes += 1
        return True
