"""The lifecycle tracker: every transition rule, restarts, flaps, HA duplicates, reordering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence

import pytest

from daemon import telemetry
from daemon.lifecycle import LifecycleTracker, Transition, alarm_id
from daemon.sources.alertmanager import PollResult, ReplicaPoll
from daemon.sources.model import Alert, fingerprint, parse_alert
from tests.unit.sources.conftest import deliveries, load

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 21, 22, 0, 0, tzinfo=UTC)
START = dt.datetime(2026, 11, 21, 21, 0, 0, tzinfo=UTC)
A, B = "http://am1:9093", "http://am2:9093"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def alert(name: str = "HighCpu", *, starts: float = -60, ends: float | None = 300,
          state: str = "active", silenced: Sequence[str] = (), status: str = "firing",
          annotations: dict | None = None, **labels: str) -> Alert:
    lab = {"alertname": name, "severity": "critical", **labels}
    return Alert(fingerprint=fingerprint(lab), labels=lab,
                 annotations=annotations if annotations is not None else {"title": name},
                 starts_at=at(starts), ends_at=None if ends is None else at(ends),
                 status=status, state=state, silenced_by=tuple(silenced))


def poll(t: float, *replicas: tuple[str, list[Alert] | None] | tuple,
         uptime: str = "up1") -> PollResult:
    reps = []
    for rep in replicas:
        url, alerts, *rest = rep
        reps.append(ReplicaPoll(url=url, alerts=alerts, error=None if alerts is not None
                                else "down", uptime=(rest[0] if rest else uptime)
                                if alerts is not None else None))
    return PollResult("c", tuple(reps), at(t), at(t + 0.1))


def kinds(transitions: list[Transition]) -> list[tuple[str, str, str | None]]:
    return [(t.kind, t.alert.name, t.reason) for t in transitions]


def tracker(grace: float = 0, policy: str = "keep-firing", started: dt.datetime = START,
            **kw) -> LifecycleTracker:
    return LifecycleTracker(cluster="c", grace_period=grace, suppressed_policy=policy,
                            started_at=started, **kw)


# -- firing / updated / resolved ------------------------------------------

def test_fixture_sequence_fire_resolve_two_silence_one():
    tr = tracker()
    firing = [parse_alert(o, where="x") for o in load("api_v2_alerts_firing.json")]
    after = [parse_alert(o, where="x")
             for o in load("api_v2_alerts_after_resolve_and_silence.json")]
    first = tr.observe_poll(PollResult("c", (ReplicaPoll(A, firing, None, "u"),), at(0), at(0)),
                            at(0))
    assert sorted(kinds(first)) == sorted(("firing", a.name, None) for a in firing)
    assert all(t.sequence == 1 for t in first)
    assert tr.tracked == 4
    again = tr.observe_poll(PollResult("c", (ReplicaPoll(A, firing, None, "u"),), at(1), at(1)),
                            at(1))
    assert again == []
    second = tr.observe_poll(PollResult("c", (ReplicaPoll(A, after, None, "u"),), at(2), at(2)),
                             at(2))
    assert sorted(kinds(second)) == [
        ("resolved", "AvgCPUTimeOnIdleMode", "disappeared"),
        ("resolved", "HighInodeUsage", "disappeared"),
        ("updated", "HighTrafficOnBridge", None)]
    updated = next(t for t in second if t.kind == "updated")
    assert updated.alert.silenced_by == ("8ab61ebb-bb5f-46bb-99a4-448ccb2cb200",)
    assert updated.sequence == 2
    ids = {t.alert.name: t.alarm_id for t in first}
    for t in second:
        assert t.alarm_id == ids[t.alert.name]
        if t.kind == "resolved":
            assert t.alert.status == "resolved" and t.sequence == 2
    assert tr.tracked == 2


def test_alarm_id_is_uuid5_of_cluster_fingerprint_startsat():
    tr = tracker()
    a = alert()
    [t] = tr.observe_poll(poll(0, (A, [a])), at(0))
    assert t.alarm_id == alarm_id("c", a.fingerprint, a.starts_at)
    assert t.cluster == "c" and t.source_url == A and t.observed_at == at(0)
    # A webhook and a poll of the same occurrence agree (milliseconds).
    webhook = dataclasses.replace(a, starts_at=a.starts_at.replace(microsecond=0))
    assert alarm_id("c", a.fingerprint, webhook.starts_at) == t.alarm_id
    assert alarm_id("other", a.fingerprint, a.starts_at) != t.alarm_id


def test_updated_on_annotations_and_suppression_not_on_endsat():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    assert tr.observe_poll(poll(1, (A, [alert(ends=400)])), at(1)) == []
    [t] = tr.observe_poll(poll(2, (A, [alert(annotations={"title": "new"})])), at(2))
    assert (t.kind, t.sequence, t.alert.annotations) == ("updated", 2, {"title": "new"})
    [t] = tr.observe_poll(poll(3, (A, [alert(annotations={"title": "new"}, state="suppressed",
                                             silenced=["s1"])])), at(3))
    assert (t.kind, t.sequence, t.alert.silenced_by) == ("updated", 3, ("s1",))
    [t] = tr.observe_poll(poll(4, (A, [alert(annotations={"title": "new"})])), at(4))
    assert (t.kind, t.sequence, t.alert.silenced_by) == ("updated", 4, ())
    # unprocessed -> active is no change
    a = dataclasses.replace(alert(annotations={"title": "new"}), state="unprocessed")
    assert tr.observe_poll(poll(5, (A, [a])), at(5)) == []


def test_suppressed_policy_resolve_and_reopen():
    tr = tracker(policy="resolve")
    [fire] = tr.observe_poll(poll(0, (A, [alert()])), at(0))
    [res] = tr.observe_poll(poll(1, (A, [alert(state="suppressed", silenced=["s"])])), at(1))
    assert (res.kind, res.reason, res.alarm_id) == ("resolved", "silenced", fire.alarm_id)
    assert tr.observe_poll(poll(2, (A, [alert(state="suppressed", silenced=["s"])])), at(2)) == []
    # the silence ends: the same occurrence fires again, as a new alarm
    [again] = tr.observe_poll(poll(3, (A, [alert()])), at(3))
    assert again.kind == "firing" and again.sequence == 1
    assert again.alarm_id != fire.alarm_id
    assert again.alarm_id == alarm_id("c", again.alert.fingerprint, again.alert.starts_at, 2)
    # new alert that is already suppressed: nothing
    assert tr.observe_poll(poll(4, (A, [alert(), alert("Other", state="suppressed")])),
                           at(4)) == []


def test_flap_new_startsat_resolves_old_and_fires_new():
    tr = tracker()
    [f1] = tr.observe_poll(poll(0, (A, [alert(starts=-60)])), at(0))
    out = tr.observe_poll(poll(15, (A, [alert(starts=10)])), at(15))
    assert kinds(out) == [("resolved", "HighCpu", "resolved"), ("firing", "HighCpu", None)]
    assert out[0].alarm_id == f1.alarm_id and out[0].sequence == 2
    assert out[1].alarm_id != f1.alarm_id and out[1].sequence == 1
    assert out[0].alert.ends_at == at(10)
    # a stale replica still listing the old occurrence changes nothing
    assert tr.observe_poll(poll(30, (A, [alert(starts=-60)])), at(30)) == []
    assert tr.tracked == 1


# -- failed polls, grace, restarts ----------------------------------------

def test_failed_poll_never_resolves():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    for t in range(1, 10):
        assert tr.observe_poll(poll(t, (A, None)), at(t)) == []
    assert tr.tracked == 1


def test_grace_after_start_holds_disappearance():
    tr = tracker(grace=90, started=at(0))
    tr.observe_poll(poll(1, (A, [alert(), alert("Gone")])), at(1))
    assert tr.observe_poll(poll(30, (A, [alert()])), at(30)) == []
    assert tr.observe_poll(poll(89, (A, [alert()])), at(89)) == []
    assert kinds(tr.observe_poll(poll(91, (A, [alert()])), at(91))) == [
        ("resolved", "Gone", "disappeared")]


def test_grace_does_not_hold_when_endsat_passed():
    tr = tracker(grace=90, started=at(0), expire_delay=5)
    tr.observe_poll(poll(1, (A, [alert(ends=20)])), at(1))
    assert tr.observe_poll(poll(22, (A, [])), at(22)) == []  # within expire_delay
    assert kinds(tr.observe_poll(poll(26, (A, [])), at(26))) == [
        ("resolved", "HighCpu", "disappeared")]


def test_alertmanager_restart_outage_then_empty():
    """Must-show 2 in miniature: outage, restart empty, re-posted stay, others resolve."""
    tr = tracker(grace=90, started=at(-1000))
    keep, lost = alert("Keep", ends=3000), alert("Lost", ends=3000)
    fired = tr.observe_poll(poll(0, (A, [keep, lost], "up1")), at(0))
    assert len(fired) == 2
    for t in (15, 30, 45):  # killed for 3 intervals
        assert tr.observe_poll(poll(t, (A, None)), at(t)) == []
        assert tr.expire(at(t)) == []
    assert tr.observe_poll(poll(60, (A, [], "up2")), at(60)) == []  # restarted empty
    assert tr.observe_poll(poll(75, (A, [keep], "up2")), at(75)) == []  # re-posted: no firing
    assert tr.observe_poll(poll(140, (A, [keep], "up2")), at(140)) == []  # still in grace
    out = tr.observe_poll(poll(151, (A, [keep], "up2")), at(151))
    assert kinds(out) == [("resolved", "Lost", "disappeared")]
    assert tr.tracked == 1


def test_unknown_uptime_is_not_trusted_for_absence():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    assert tr.observe_poll(poll(1, (A, [], None)), at(1)) == []
    assert len(tr.observe_poll(poll(2, (A, [], "up1")), at(2))) == 1


def test_expire_when_unreachable():
    tr = tracker(expire_delay=10)
    tr.observe_poll(poll(0, (A, [alert(ends=100)])), at(0))
    tr.observe_poll(poll(15, (A, None)), at(15))
    assert tr.expire(at(105)) == []
    [t] = tr.expire(at(111))
    assert (t.kind, t.reason, t.alert.ends_at) == ("resolved", "expired", at(100))
    assert tr.tracked == 0


def test_expire_spares_alarm_seen_after_its_endsat():
    tr = tracker(expire_delay=0)
    tr.observe_poll(poll(0, (A, [alert(ends=10)])), at(0))
    tr.observe_poll(poll(20, (A, [alert(ends=10)])), at(20))  # AM's clock is behind
    assert tr.expire(at(30)) == []


def test_expire_webhook_only_alarm_uses_default_resolve_timeout():
    tr = tracker(default_resolve_timeout=300, expire_delay=0)
    tr.observe_webhook([alert(ends=None)], at(0), "http://am")
    assert tr.expire(at(299)) == []
    assert kinds(tr.expire(at(301))) == [("resolved", "HighCpu", "expired")]


# -- replicas --------------------------------------------------------------

def test_cluster_alert_on_one_replica_fires_once_resolves_when_gone():
    tr = tracker()
    a = alert()
    assert len(tr.observe_poll(poll(0, (A, [a]), (B, [])), at(0))) == 1
    assert tr.observe_poll(poll(1, (A, []), (B, [a])), at(1)) == []  # moved: no duplicate
    assert tr.observe_poll(poll(2, (A, [a]), (B, [a])), at(2)) == []
    assert tr.observe_poll(poll(3, (A, []), (B, [a])), at(3)) == []  # still on B
    assert kinds(tr.observe_poll(poll(4, (A, []), (B, [])), at(4))) == [
        ("resolved", "HighCpu", "disappeared")]


def test_failed_replica_that_had_the_alert_blocks_resolution():
    tr = tracker()
    a = alert()
    tr.observe_poll(poll(0, (A, [a]), (B, [a])), at(0))
    assert tr.observe_poll(poll(1, (A, []), (B, None)), at(1)) == []
    assert tr.observe_poll(poll(2, (A, []), (B, None)), at(2)) == []
    assert len(tr.observe_poll(poll(3, (A, []), (B, [])), at(3))) == 1


def test_failed_replica_that_never_had_it_does_not_block():
    tr = tracker()
    a = alert()
    tr.observe_poll(poll(0, (A, [a]), (B, [])), at(0))
    assert len(tr.observe_poll(poll(1, (A, []), (B, None)), at(1))) == 1


def test_restarted_replica_in_grace_keeps_its_claim():
    tr = tracker(grace=60, started=at(-1000))
    a = alert(ends=3000)
    tr.observe_poll(poll(0, (A, [a], "a1"), (B, [a], "b1")), at(0))
    assert tr.observe_poll(poll(10, (A, [], "a1"), (B, [], "b2")), at(10)) == []
    assert tr.observe_poll(poll(65, (A, [], "a1"), (B, [], "b2")), at(65)) == []
    assert len(tr.observe_poll(poll(71, (A, [], "a1"), (B, [], "b2")), at(71))) == 1


def test_replica_labels_merge_ha_duplicates_in_one_poll():
    tr = tracker()
    labels = {"alertname": "X"}
    fp = fingerprint(labels)
    one = Alert(fp, {**labels, "replica": "a"}, {}, at(0), at(300))
    two = Alert(fp, {**labels, "replica": "b"}, {}, at(0), at(301))
    assert len(tr.observe_poll(poll(1, (A, [one, two])), at(1))) == 1
    assert tr.observe_poll(poll(2, (A, [two, one])), at(2)) == []


def test_invalid_alert_counts_as_present():
    tr = tracker()
    a = alert()
    tr.observe_poll(poll(0, (A, [a])), at(0))
    rep = ReplicaPoll(A, [], None, "up1", invalid=frozenset({a.fingerprint}))
    assert tr.observe_poll(PollResult("c", (rep,), at(1), at(1)), at(1)) == []


def test_other_cluster_ignored():
    tr = tracker()
    res = PollResult("other", (ReplicaPoll(A, [alert()], None, "u"),), at(0), at(0))
    assert tr.observe_poll(res, at(0)) == []


# -- webhook ---------------------------------------------------------------

def test_webhook_fixture_deliveries():
    tr = tracker()
    out = []
    for delivery in deliveries():
        alerts = [parse_alert(o, where="x") for o in delivery["alerts"]]
        out += tr.observe_webhook(alerts, at(0), delivery["externalURL"])
    assert sorted(kinds(out)) == sorted([
        ("firing", "AvgCPUTimeOnIdleMode", None), ("firing", "HighInodeUsage", None),
        ("firing", "HighCpuOnVmAlert", None), ("firing", "HighTrafficOnBridge", None),
        ("resolved", "HighInodeUsage", "resolved"),
        ("resolved", "AvgCPUTimeOnIdleMode", "resolved")])
    resolved = [t for t in out if t.kind == "resolved"]
    assert all(t.sequence == 2 and t.source_url == "http://vm:19093" for t in resolved)
    assert tr.tracked == 2


def test_webhook_and_poll_agree_on_identity():
    tr = tracker()
    api = {o["fingerprint"]: parse_alert(o, where="x")
           for o in load("api_v2_alerts_firing.json")}
    out = []
    for delivery in deliveries()[:4]:
        out += tr.observe_webhook([parse_alert(o, where="x") for o in delivery["alerts"]],
                                  at(0), "http://vm:19093")
    assert len(out) == 4
    later = PollResult("c", (ReplicaPoll(A, list(api.values()), None, "u"),), at(1), at(1))
    assert tr.observe_poll(later, at(1)) == []


def test_webhook_duplicates_and_unknown_resolved_are_harmless():
    tr = tracker()
    a = alert(ends=None)
    assert len(tr.observe_webhook([a], at(0), "http://am1")) == 1
    assert tr.observe_webhook([a], at(0.1), "http://am2") == []  # HA peer
    r = alert(ends=5, status="resolved")
    assert kinds(tr.observe_webhook([r], at(5), "http://am1")) == [
        ("resolved", "HighCpu", "resolved")]
    assert tr.observe_webhook([r], at(5.1), "http://am2") == []
    assert tr.observe_webhook([a], at(6), "http://am2") == []  # late firing: no re-fire
    unknown = alert("Never", ends=5, status="resolved")
    assert tr.observe_webhook([unknown], at(7), "http://am1") == []
    assert tr.observe_webhook([alert("Never", ends=None)], at(8), "http://am1") == []


def test_webhook_reordered_within_and_across_deliveries():
    tr = tracker()
    old_res = alert(starts=-60, ends=5, status="resolved")
    new_fire = alert(starts=10, ends=None)
    old_fire = alert(starts=-60, ends=None)
    out = tr.observe_webhook([new_fire, old_res, old_fire], at(20), "http://am")
    # old fires then resolves (startsAt order), then the new one fires
    assert kinds(out) == [("firing", "HighCpu", None), ("resolved", "HighCpu", "resolved"),
                          ("firing", "HighCpu", None)]
    assert out[0].alarm_id == out[1].alarm_id != out[2].alarm_id
    assert tr.observe_webhook([old_fire], at(21), "http://am") == []
    assert tr.observe_webhook([old_res], at(21), "http://am") == []
    # resolved for the newest occurrence arrives before its firing
    tr2 = tracker()
    assert tr2.observe_webhook([alert(starts=10, ends=30, status="resolved")], at(31), "x") == []
    assert tr2.observe_webhook([alert(starts=10, ends=None)], at(32), "x") == []


def test_webhook_firing_keeps_suppression_and_endsat_from_poll():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert(state="suppressed", silenced=["s"], ends=300)])), at(0))
    assert tr.observe_webhook([alert(ends=None)], at(1), "http://am") == []
    [t] = tr.observe_webhook([alert(ends=None, annotations={"title": "changed"})], at(2), "x")
    assert t.kind == "updated" and t.alert.silenced_by == ("s",) and t.alert.ends_at == at(300)


def test_webhook_firing_survives_a_poll_that_started_before_it():
    tr = tracker()
    tr.observe_webhook([alert(ends=None)], at(10), "http://am")
    assert tr.observe_poll(poll(9, (A, [])), at(11)) == []  # started before the webhook
    assert len(tr.observe_poll(poll(12, (A, [])), at(12))) == 1


def test_poll_started_before_webhook_resolve_does_not_refire():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    tr.observe_webhook([alert(ends=5, status="resolved")], at(5), "x")
    assert tr.observe_poll(poll(4, (A, [alert()])), at(6)) == []  # stale poll
    # Alertmanager lists the occurrence again later (re-sent after its resolve_timeout)
    [t] = tr.observe_poll(poll(20, (A, [alert()])), at(20))
    assert t.kind == "firing" and t.alarm_id == alarm_id("c", t.alert.fingerprint,
                                                         t.alert.starts_at, 2)


def test_reappearing_after_disappeared_is_a_new_alarm():
    tr = tracker()
    [f1] = tr.observe_poll(poll(0, (A, [alert()])), at(0))
    [r1] = tr.observe_poll(poll(1, (A, [])), at(1))
    [f2] = tr.observe_poll(poll(2, (A, [alert()])), at(2))
    assert r1.alarm_id == f1.alarm_id != f2.alarm_id
    [r2] = tr.observe_poll(poll(3, (A, [])), at(3))
    [f3] = tr.observe_poll(poll(4, (A, [alert()])), at(4))
    assert len({f1.alarm_id, f2.alarm_id, f3.alarm_id}) == 3 and r2.alarm_id == f2.alarm_id


# -- state -----------------------------------------------------------------

def roundtrip(tr: LifecycleTracker, store: dict) -> list[dict]:
    for key, record in tr.export_changes():
        if record is None:
            store.pop(key, None)
        else:
            store[key] = json.loads(json.dumps(record))
    return list(store.values())


def test_restore_neither_refires_nor_misses():
    """Must-show 5 in miniature: killed mid-incident, one alert resolved while down."""
    store: dict = {}
    tr = tracker(grace=90, started=at(-1000))
    stay, gone = alert("Stay", ends=3000), alert("Gone", ends=3000)
    fired = tr.observe_poll(poll(0, (A, [stay, gone])), at(0))
    tr.observe_poll(poll(15, (A, [stay, gone], "up1")), at(15))
    records = roundtrip(tr, store)
    assert {r["key"] for r in records} == {f"c/{stay.fingerprint}", f"c/{gone.fingerprint}"}
    # the relay restarts at t=100; "Gone" resolved in Alertmanager meanwhile
    tr2 = tracker(grace=90, started=at(100))
    tr2.restore(records)
    assert tr2.tracked == 2
    assert tr2.observe_poll(poll(101, (A, [stay])), at(101)) == []
    out = tr2.observe_poll(poll(191, (A, [stay])), at(191))
    assert kinds(out) == [("resolved", "Gone", "disappeared")]
    assert out[0].alarm_id == next(t.alarm_id for t in fired if t.alert.name == "Gone")
    assert out[0].sequence == 2
    # and the state after that has the tombstone
    records = roundtrip(tr2, store)
    gone_record = store[f"c/{gone.fingerprint}"]
    assert gone_record["alarm"] is None and gone_record["closed"] is not None
    tr3 = tracker(grace=0, started=at(200))
    tr3.restore(records)
    assert tr3.observe_poll(poll(150, (A, [stay, gone])), at(201)) == []  # stale poll


def test_restore_keeps_sequence_and_suppression():
    store: dict = {}
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    tr.observe_poll(poll(1, (A, [alert(state="suppressed", silenced=["s"])])), at(1))
    tr2 = tracker()
    tr2.restore(roundtrip(tr, store))
    assert tr2.observe_poll(poll(2, (A, [alert(state="suppressed", silenced=["s"])])),
                            at(2)) == []
    [t] = tr2.observe_poll(poll(3, (A, [alert()])), at(3))
    assert (t.kind, t.sequence) == ("updated", 3)


def test_restore_then_unreachable_expires_by_stored_endsat():
    store: dict = {}
    tr = tracker(expire_delay=0)
    tr.observe_poll(poll(0, (A, [alert(ends=100)])), at(0))
    tr2 = tracker(grace=90, started=at(50), expire_delay=0)
    tr2.restore(roundtrip(tr, store))
    tr2.observe_poll(poll(60, (A, None)), at(60))
    assert tr2.expire(at(99)) == []
    assert kinds(tr2.expire(at(101))) == [("resolved", "HighCpu", "expired")]


def test_restore_skips_bad_and_foreign_records():
    tr = tracker()
    tr.restore([{"key": "x", "cluster": "c", "version": 1},
                {"key": "y", "cluster": "other", "version": 1, "fingerprint": "f",
                 "alarm": None, "closed": None},
                {"key": "z", "cluster": "c", "version": 99}])
    assert tr.tracked == 0


def test_endsat_refresh_is_exported_only_when_needed():
    tr = tracker(refresh_margin=120)
    tr.observe_poll(poll(0, (A, [alert(ends=300)])), at(0))
    assert len(tr.export_changes()) == 1
    tr.observe_poll(poll(15, (A, [alert(ends=315)])), at(15))
    assert tr.export_changes() == []  # stored 300 is far from now
    tr.observe_poll(poll(200, (A, [alert(ends=500)])), at(200))
    [(key, record)] = tr.export_changes()
    assert record["alarm"]["alert"]["ends_at"] == at(500).isoformat()


def test_tombstones_are_forgotten_after_retention():
    tr = tracker(resolved_retention=100)
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    tr.observe_poll(poll(1, (A, [])), at(1))
    tr.export_changes()
    tr.expire(at(50))
    assert tr.export_changes() == []
    tr.expire(at(102))
    [(key, record)] = tr.export_changes()
    assert record is None


def test_telemetry_counts():
    before = telemetry.TRANSITIONS.labels(kind="resolved", reason="disappeared")._value.get()
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    assert telemetry.ALERTS_TRACKED._value.get() == 1
    tr.observe_poll(poll(1, (A, [])), at(1))
    after = telemetry.TRANSITIONS.labels(kind="resolved", reason="disappeared")._value.get()
    assert after == before + 1
    assert telemetry.ALERTS_TRACKED._value.get() == 0


def test_invalid_arguments():
    with pytest.raises(ValueError):
        tracker(policy="ignore")
    with pytest.raises(ValueError):
        LifecycleTracker(cluster="c", grace_period=0, suppressed_policy="resolve",
                         started_at=dt.datetime(2026, 1, 1))
