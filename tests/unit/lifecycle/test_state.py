"""Issue 16: state records build their times through a memo; the records do not change."""

from __future__ import annotations

import datetime as dt

from daemon.lifecycle import state
from tests.unit.lifecycle.test_tracker import A, B, alert, at, poll, tracker

PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


def test_the_memo_gives_what_isoformat_gives():
    iso = state.iso_memo(limit=3)
    utc = dt.datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=dt.UTC)
    same_instant = utc.astimezone(PLUS_ONE)   # equal, and hashes alike
    times = [utc, same_instant, utc, None, same_instant,
             *(utc + dt.timedelta(seconds=s) for s in range(5)), utc]
    assert [iso(t) for t in times] == [state.iso_or_none(t) for t in times]
    assert iso(same_instant).endswith("+01:00") and iso(utc).endswith("+00:00")


def test_records_built_with_the_memo_equal_records_built_without(monkeypatch):
    def observe(tr):
        tr.observe_poll(poll(0, (A, [alert("Firing", starts=-30), alert("Gone")]),
                             (B, [alert("Firing", starts=-30)])), at(0))
        tr.observe_poll(poll(10, (A, [alert("Firing", starts=-30)]),
                             (B, [alert("Firing", starts=-30)])), at(10))
        tr.observe_poll(poll(20, (A, [alert("Firing", starts=-30)]), (B, None)), at(20))
        return dict(tr.export_changes())

    with_memo = observe(tracker())
    monkeypatch.setattr(state, "iso_memo", lambda: state.iso_or_none)
    without = observe(tracker())
    assert with_memo == without
    assert any(r and r["closed"] for r in with_memo.values())   # a closed occurrence too
    assert any(r and r["alarm"] for r in with_memo.values())
