"""The bridge's state in SQLite: what survives a restart."""

from __future__ import annotations

from daemon.watcher.state import AuditRecord, AuditStatus, open_state


def test_events_and_sequences_survive_a_reopen(tmp_path):
    state = open_state(tmp_path, "s.sqlite")
    assert not state.seen("e1") and state.last_sequence("a1") == 0
    state.finish_event("e1", "a1", 2, at=100.0)
    state.finish_event("e0", "a1", 1, at=101.0)  # an older sequence never lowers it
    state.close()
    state.close()  # idempotent
    state = open_state(tmp_path, "s.sqlite")
    assert state.seen("e1") and state.seen("e0")
    assert state.last_sequence("a1") == 2
    state.close()


def test_audit_records_and_cooldown_clock(tmp_path):
    state = open_state(tmp_path, "s.sqlite")
    assert state.audit("a1", "r") is None
    created = AuditRecord("a1", "r", AuditStatus.CREATED, "a1-r", "uuid-1", updated_at=10.0)
    state.save_audit(created)
    assert state.audit("a1", "r") == created
    assert not created.status.done
    triggered = AuditRecord("a1", "r", AuditStatus.TRIGGERED, "a1-r", "uuid-1", updated_at=11.0)
    state.save_trigger(triggered, "host:h1", "tpl", at=11.0)
    assert state.audit("a1", "r") == triggered and triggered.status.done
    assert state.last_trigger("host:h1", "tpl") == 11.0
    assert state.last_trigger("host:h1", "other") is None
    state.close()


def test_prune_keeps_unfinished_audits(tmp_path):
    state = open_state(tmp_path, "s.sqlite")
    state.finish_event("old", "a-old", 1, at=1.0)
    state.finish_event("new", "a-new", 1, at=1000.0)
    state.save_audit(AuditRecord("a-old", "r", AuditStatus.CREATED, "n1", "u1", updated_at=1.0))
    state.save_audit(AuditRecord("a-old", "s", AuditStatus.REFUSED, "n2", updated_at=1.0))
    state.save_trigger(AuditRecord("a-old", "t", AuditStatus.TRIGGERED, "n3", "u3",
                                   updated_at=1.0), "host:h", "tpl", at=1.0)
    assert state.prune(before=500.0) == 5
    assert not state.seen("old") and state.seen("new")
    assert state.audit("a-old", "r") is not None  # created, its event still to be handled
    assert state.audit("a-old", "s") is None and state.last_trigger("host:h", "tpl") is None
    state.close()
