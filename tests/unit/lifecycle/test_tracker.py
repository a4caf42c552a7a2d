"""The lifecycle tracker: every transition rule, restarts, flaps, HA duplicates, reordering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence

import pytest

from daemon.lifecycle import LifecycleTracker, Transition, alarm_id
from daemon.model import Alert, PollResult, ReplicaPoll, fingerprint, parse_alert
from tests.unit.conftest import deliveries, load

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 21, 22, 0, 0, tzinfo=UTC)
A, B = "http://am1:9093", "http://am2:9093"
# Alertmanager's uptime is its start time (Go prints nanoseconds).
U1 = "2026-11-21T20:00:00.123456789Z"
U2 = "2026-11-21T22:00:55.5Z"


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
         uptime: str = U1, offset: float | None = None) -> PollResult:
    reps = []
    for rep in replicas:
        url, alerts, *rest = rep
        reps.append(ReplicaPoll(url=url, alerts=alerts, error=None if alerts is not None
                                else "down", uptime=(rest[0] if rest else uptime)
                                if alerts is not None else None, clock_offset=offset))
    return PollResult("c", tuple(reps), at(t), at(t + 0.1))


def kinds(transitions: list[Transition]) -> list[tuple[str, str, str | None]]:
    return [(t.kind, t.alert.name, t.reason) for t in transitions]


def tracker(policy: str = "keep-firing", **kw) -> LifecycleTracker:
    return LifecycleTracker(cluster="c", suppressed_policy=policy, **kw)


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
    assert tr.observe_poll(poll(30, (A, [alert(starts=10)]), (B, [alert(starts=-60)])),
                           at(30)) == []
    assert tr.tracked == 1


# -- failed polls, restarts, evidence -------------------------------------

def test_failed_poll_never_resolves():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    for t in range(1, 10):
        assert tr.observe_poll(poll(t, (A, None)), at(t)) == []
    assert tr.tracked == 1


def test_absence_from_a_replica_that_kept_running_counts_at_once():
    tr = tracker()
    tr.observe_poll(poll(1, (A, [alert(), alert("Gone")])), at(1))
    assert kinds(tr.observe_poll(poll(2, (A, [alert()])), at(2))) == [
        ("resolved", "Gone", "disappeared")]


def test_alertmanager_restart_outage_then_empty():
    """am-restart-resend in miniature: the restarted replica's silence counts only once
    the alarm's last seen endsAt has passed; re-sent alerts stay the same alarms."""
    tr = tracker(expire_delay=5)
    keep, lost = alert("Keep", ends=240), alert("Lost", ends=240)
    fired = tr.observe_poll(poll(0, (A, [keep, lost], U1)), at(0))
    assert len(fired) == 2
    for t in (15, 30, 45):  # killed for 3 intervals
        assert tr.observe_poll(poll(t, (A, None)), at(t)) == []
        assert tr.expire(at(t)) == []
    assert tr.observe_poll(poll(60, (A, [], U2)), at(60)) == []  # restarted empty
    resent = alert("Keep", ends=360)
    assert tr.observe_poll(poll(120, (A, [resent], U2)), at(120)) == []  # re-sent: no firing
    assert tr.observe_poll(poll(240, (A, [resent], U2)), at(240)) == []  # within expire_delay
    out = tr.observe_poll(poll(246, (A, [resent], U2)), at(246))
    assert kinds(out) == [("resolved", "Lost", "expired")]
    assert out[0].alert.ends_at == at(240)  # when Alertmanager itself would have dropped it
    assert tr.tracked == 1
    # Keep is held by the restarted replica now: its absence counts at once.
    assert kinds(tr.observe_poll(poll(250, (A, [], U2)), at(250))) == [
        ("resolved", "Keep", "disappeared")]


def test_unknown_uptime_is_not_trusted_for_absence():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()])), at(0))
    assert tr.observe_poll(poll(1, (A, [], None)), at(1)) == []
    assert len(tr.observe_poll(poll(2, (A, [], U1)), at(2))) == 1


def test_nothing_expires_on_a_timer_while_polls_fail():
    tr = tracker(expire_delay=10)
    tr.observe_poll(poll(0, (A, [alert(ends=100)])), at(0))
    for t in (15, 200, 5000):
        assert tr.observe_poll(poll(t, (A, None)), at(t)) == []
        assert tr.expire(at(t)) == []
    assert tr.tracked == 1
    # The replica answers again, in the same epoch, without it: it ended.
    [t] = tr.observe_poll(poll(5010, (A, [])), at(5010))
    assert (t.kind, t.reason) == ("resolved", "disappeared")


def test_replica_back_after_restart_resolves_past_endsat_as_expired():
    tr = tracker(expire_delay=10)
    tr.observe_poll(poll(0, (A, [alert(ends=100)], U1)), at(0))
    assert tr.observe_poll(poll(50, (A, [], U2)), at(50)) == []  # forgot it; endsAt ahead
    [t] = tr.observe_poll(poll(111, (A, [], U2)), at(111))
    assert (t.kind, t.reason, t.alert.ends_at) == ("resolved", "expired", at(100))


def test_webhook_only_alarm_never_expires_and_takes_later_deliveries():
    """webhook-only-expiry in miniature: polls fail, the webhook works."""
    tr = tracker(expire_delay=0)
    [f] = tr.observe_webhook([alert(ends=None)], at(0), "http://am")
    for t in (300, 3600, 14400):
        assert tr.observe_poll(poll(t, (A, None)), at(t)) == []
        assert tr.expire(at(t)) == []
    assert tr.observe_webhook([alert(ends=None)], at(14401), "http://am") == []  # repeat
    assert tr.tracked == 1
    [r] = tr.observe_webhook([alert(ends=14500, status="resolved")], at(14501), "http://am")
    assert (r.kind, r.reason, r.alarm_id) == ("resolved", "resolved", f.alarm_id)


def test_webhook_only_alarm_resolves_when_every_replica_answers_without_it():
    tr = tracker()
    tr.observe_webhook([alert(ends=None)], at(10), "http://am")
    # B failed: it may be the replica that sent the delivery.
    assert tr.observe_poll(poll(12, (A, []), (B, None)), at(12)) == []
    # B restarted after the delivery: it may have forgotten it (and no endsAt
    # lead was ever seen in this cluster: max_resend_interval, 900 s, stands in).
    assert tr.observe_poll(poll(13, (A, []), (B, [], U2)), at(13)) == []
    assert tr.observe_poll(poll(600, (A, []), (B, [], U2)), at(600)) == []
    assert len(tr.observe_poll(poll(601, (A, []), (B, [], U1)), at(601))) == 1


def test_webhook_only_alarm_and_a_restarted_replica_use_the_clusters_endsat_lead():
    tr = tracker(expire_delay=5)
    tr.observe_webhook([alert(ends=None)], at(60), "http://am")
    # B restarted at 55.5 (U2); the cluster's polls show endsAt 240 s ahead.
    other = received(alert("Other"), 60, 300)
    assert kinds(tr.observe_poll(poll(61, (A, [other]), (B, [other], U2)), at(61))) == [
        ("firing", "Other", None)]
    assert tr.observe_poll(poll(299, (A, [other]), (B, [other], U2)), at(299)) == []
    # Prometheus would have re-sent it to B by now if it still fired.
    [t] = tr.observe_poll(poll(302, (A, [other]), (B, [other], U2)), at(302))
    assert (t.alert.name, t.reason) == ("HighCpu", "disappeared")


def test_a_late_delivery_is_no_evidence_against_a_replica_restarted_after_the_alert_began():
    """A delivery retried for a while can describe a replica before its restart."""
    tr = tracker(expire_delay=0)
    # B restarted at 55.5 (U2), after the alert began (-60); the delivery arrives at 70.
    tr.observe_webhook([alert(ends=None)], at(70), "http://am")
    # Both answer without it, both running since before the delivery: still no evidence
    # from B, which may have lost it and not have been re-sent it yet.
    assert tr.observe_poll(poll(75, (A, []), (B, [], U2)), at(75)) == []
    assert tr.tracked == 1


def test_without_a_lead_seen_max_resend_interval_bounds_a_restarted_replica():
    tr = tracker(expire_delay=0, max_resend_interval=120)
    tr.observe_webhook([alert(ends=None)], at(70), "http://am")
    # B restarted at 55.5 (U2), after the alert began: evidence once up 120 s.
    assert tr.observe_poll(poll(170, (A, []), (B, [], U2)), at(170)) == []
    [r] = tr.observe_poll(poll(180, (A, []), (B, [], U2)), at(180))
    assert (r.kind, r.reason) == ("resolved", "disappeared")


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


def test_restarted_replica_keeps_its_claim_until_endsat_passed():
    tr = tracker(expire_delay=5)
    a = alert(ends=60)
    tr.observe_poll(poll(0, (A, [a], U1), (B, [a], U1)), at(0))
    assert tr.observe_poll(poll(10, (A, [], U1), (B, [], U2)), at(10)) == []
    assert tr.observe_poll(poll(64, (A, [], U1), (B, [], U2)), at(64)) == []
    [t] = tr.observe_poll(poll(66, (A, [], U1), (B, [], U2)), at(66))
    # A, which kept running, dropped it: that is a disappearance, not a guess.
    assert (t.kind, t.reason) == ("resolved", "disappeared")


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
    rep = ReplicaPoll(A, [], None, U1, invalid=frozenset({a.fingerprint}))
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


def test_lagging_replica_never_reopens_an_explicitly_resolved_occurrence():
    tr = tracker()
    tr.observe_poll(poll(0, (A, [alert()]), (B, [alert()])), at(0))
    tr.observe_webhook([alert(ends=5, status="resolved")], at(5), "x")
    assert tr.observe_poll(poll(4, (A, [alert()]), (B, [alert()])), at(6)) == []  # stale
    # B lags by a resend period: it still lists the occurrence, then drops it.
    assert tr.observe_poll(poll(20, (A, []), (B, [alert()])), at(20)) == []
    assert tr.observe_poll(poll(80, (A, []), (B, [alert(ends=400)])), at(80)) == []
    assert tr.observe_poll(poll(140, (A, []), (B, [])), at(140)) == []
    assert tr.tracked == 0
    # A new occurrence (a later startsAt) is a new alarm.
    [t] = tr.observe_poll(poll(150, (A, [alert(starts=145)])), at(150))
    assert t.kind == "firing" and t.alarm_id == alarm_id("c", t.alert.fingerprint, at(145))


def received(a: Alert, t: float, ends: float) -> Alert:
    """``a`` as Alertmanager lists it after receiving it at ``t`` (API updatedAt)."""
    return dataclasses.replace(a, updated_at=at(t), ends_at=at(ends))


def test_reappearing_after_disappeared_reopens_only_when_received_again():
    tr = tracker()
    [f1] = tr.observe_poll(poll(0, (A, [received(alert(), -10, 230)]), (B, [])), at(0))
    [r1] = tr.observe_poll(poll(1, (A, []), (B, [])), at(1))
    # A replica lagging behind lists what it received late: nothing.
    assert tr.observe_poll(poll(2, (A, []), (B, [received(alert(), 260, 235)])), at(2)) == []
    # A, which dropped it, holds it again, received after its endsAt had
    # passed: Prometheus re-sent it after Alertmanager had expired it, and
    # Alertmanager takes it as new (it notifies a new firing). So does the relay.
    [f2] = tr.observe_poll(poll(300, (A, [received(alert(), 290, 530)]), (B, [])), at(300))
    assert r1.alarm_id == f1.alarm_id != f2.alarm_id
    assert f2.alarm_id == alarm_id("c", f2.alert.fingerprint, f2.alert.starts_at, 2)
    [r2] = tr.observe_poll(poll(301, (A, [])), at(301))
    [f3] = tr.observe_poll(poll(900, (A, [received(alert(), 890, 1130)])), at(900))
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
    tr = tracker()
    stay, gone = alert("Stay", ends=3000), alert("Gone", ends=3000)
    fired = tr.observe_poll(poll(0, (A, [stay, gone])), at(0))
    tr.observe_poll(poll(15, (A, [stay, gone], U1)), at(15))
    records = roundtrip(tr, store)
    assert {r["key"] for r in records} == {f"c/{stay.fingerprint}", f"c/{gone.fingerprint}"}
    # the relay restarts at t=100; "Gone" resolved in Alertmanager meanwhile.
    # Alertmanager kept running (same uptime): its word counts at the first poll.
    tr2 = tracker()
    tr2.restore(records)
    assert tr2.tracked == 2
    out = tr2.observe_poll(poll(101, (A, [stay])), at(101))
    assert kinds(out) == [("resolved", "Gone", "disappeared")]
    assert out[0].alarm_id == next(t.alarm_id for t in fired if t.alert.name == "Gone")
    assert out[0].sequence == 2
    # and the state after that has the tombstone
    records = roundtrip(tr2, store)
    gone_record = store[f"c/{gone.fingerprint}"]
    assert gone_record["alarm"] is None and gone_record["closed"] is not None
    tr3 = tracker()
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


def test_restore_then_restarted_replica_resolves_once_stored_endsat_passed():
    store: dict = {}
    tr = tracker(expire_delay=0)
    tr.observe_poll(poll(0, (A, [alert(ends=100)])), at(0))
    tr2 = tracker(expire_delay=0)
    tr2.restore(roundtrip(tr, store))
    assert tr2.observe_poll(poll(60, (A, None)), at(60)) == []
    assert tr2.observe_poll(poll(70, (A, [], U2)), at(70)) == []
    assert tr2.expire(at(101)) == []
    assert kinds(tr2.observe_poll(poll(101, (A, [], U2)), at(101))) == [
        ("resolved", "HighCpu", "expired")]


def test_restore_version_1_records():
    """A state file of the previous release: its replica epochs are unknown."""
    a = alert(ends=100)
    record = {"key": f"c/{a.fingerprint}", "version": 1, "cluster": "c",
              "fingerprint": a.fingerprint, "closed": None,
              "alarm": {"alarm_id": "id-1", "starts_at": a.starts_at.isoformat(),
                        "incarnation": 1, "sequence": 1, "last_seen": at(0).isoformat(),
                        "seen_on": [A], "source_url": A,
                        "alert": {"labels": dict(a.labels),
                                  "annotations": dict(a.annotations),
                                  "starts_at": a.starts_at.isoformat(),
                                  "ends_at": at(100).isoformat(), "status": "firing",
                                  "state": "active", "silenced_by": [], "inhibited_by": [],
                                  "generator_url": "", "updated_at": None}}}
    tr = tracker(expire_delay=0)
    tr.restore([record])
    assert tr.tracked == 1
    assert tr.observe_poll(poll(10, (A, [a])), at(10)) == []  # no second firing
    [t] = tr.observe_poll(poll(20, (A, [])), at(20))
    assert (t.alarm_id, t.sequence, t.reason) == ("id-1", 2, "disappeared")
    # and the tombstone of a version 1 record keeps an old listing quiet
    closed = dict(record, alarm=None, closed={"starts_at": a.starts_at.isoformat(),
                                              "at": at(20).isoformat(), "incarnation": 1})
    tr2 = tracker()
    tr2.restore([closed])
    assert tr2.observe_poll(poll(15, (A, [a])), at(30)) == []


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


def test_records_exported_in_parts_equal_one_export():
    """Issue 16: the intake builds each stored chunk's records when it stores it."""
    alerts = [alert(f"A{n}") for n in range(5)]
    whole, parts = tracker(), tracker()
    for tr in (whole, parts):
        tr.observe_poll(poll(0, (A, alerts)), at(0))
    expected = dict(whole.export_changes())
    changed = parts.changed_keys()
    assert sorted(key for key, _ in changed) == sorted(expected)
    first = [fp for _, fp in changed[:2]]
    got = dict(parts.export_changes(first))
    assert len(got) == 2 and parts.pending_changes == 3
    assert parts.export_changes(first) == []  # exported once
    third = changed[2][1]
    [(key, record)] = parts.export_changes([third, third])  # asked twice, built once
    got[key] = record
    got |= dict(parts.export_changes(fp for _, fp in changed[3:]))
    assert got == expected
    assert parts.pending_changes == 0 and parts.changed_keys() == []


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


def test_invalid_arguments():
    with pytest.raises(ValueError):
        tracker(policy="ignore")
    with pytest.raises(ValueError):
        LifecycleTracker(cluster="c", suppressed_policy="silence")


# -- HA topologies: occurrence identity as Alertmanager merges it ---------

def copy_of(replica: str, *, starts: float, ends: float | None = 300,
            status: str = "firing", **kw) -> Alert:
    """A copy of HighCpu sent by one Prometheus replica (the label the relay drops)."""
    a = alert(starts=starts, ends=ends, status=status, **kw)
    labels = {**a.labels, "prometheus_replica": replica}
    return dataclasses.replace(a, labels=labels)


def test_ha_pair_copies_in_one_webhook_are_one_alarm():
    """ha-pair-startsat (webhook variant): startsAt 15 s apart, one alarm."""
    tr = tracker()
    out = tr.observe_webhook([copy_of("prom-b", starts=-25, ends=None),
                              copy_of("prom-a", starts=-40, ends=None)], at(0), "x")
    assert kinds(out) == [("firing", "HighCpu", None)]
    assert out[0].alert.starts_at == at(-40)
    # later deliveries, in either order, change nothing
    assert tr.observe_webhook([copy_of("prom-b", starts=-25, ends=None)], at(30), "x") == []
    assert tr.observe_webhook([copy_of("prom-a", starts=-40, ends=None)], at(31), "x") == []


def test_ha_pair_copies_in_one_poll_keep_the_earliest_startsat():
    """ha-pair-startsat (Alertmanager variant): copy a, then copy b 5 minutes later."""
    tr = tracker()
    a, b = copy_of("prom-a", starts=-360), copy_of("prom-b", starts=-60)
    [f] = tr.observe_poll(poll(0, (A, [a])), at(0))
    assert tr.observe_poll(poll(6, (A, [a, b])), at(6)) == []
    assert tr.observe_poll(poll(12, (A, [b, a])), at(12)) == []
    # the later copy seen first, the earlier one after: still one alarm
    tr2 = tracker()
    [f2] = tr2.observe_poll(poll(0, (A, [b])), at(0))
    assert tr2.observe_poll(poll(6, (A, [a, b])), at(6)) == []
    [u] = tr2.observe_poll(poll(7, (A, [a, b])), at(7),
                           ) or [None]  # nothing: the earliest startsAt is kept silently
    assert u is None
    assert f.alarm_id != f2.alarm_id  # ids come from the first copy each tracker saw
    assert tr2.firing()[0].alert.starts_at == at(-360)


def test_replica_briefly_holding_only_the_later_copy_changes_nothing():
    tr = tracker()
    a, b = copy_of("prom-a", starts=-40), copy_of("prom-b", starts=-25)
    assert len(tr.observe_poll(poll(0, (A, [a, b]), (B, [])), at(0))) == 1
    assert tr.observe_poll(poll(15, (A, [a, b]), (B, [b])), at(15)) == []  # B lags
    assert tr.observe_poll(poll(30, (A, [a, b]), (B, [a, b])), at(30)) == []
    # AM-level dedupe (Prometheus dropped the replica label): one copy per replica
    tr2 = tracker()
    assert len(tr2.observe_poll(poll(0, (A, [a]), (B, [])), at(0))) == 1
    assert tr2.observe_poll(poll(15, (A, [a]), (B, [b])), at(15)) == []
    assert tr2.observe_poll(poll(30, (A, [a]), (B, [a])), at(30)) == []


def test_alarm_id_stays_the_first_copys_after_an_earlier_copy_and_a_restart():
    """The id is derived, not stored: once startsAt moves to an earlier copy's, it is kept."""
    store: dict = {}
    tr = tracker()
    a, b = copy_of("prom-a", starts=-360), copy_of("prom-b", starts=-60)
    [f] = tr.observe_poll(poll(0, (A, [b])), at(0))
    assert tr.observe_poll(poll(6, (A, [a, b])), at(6)) == []
    assert f.alarm_id != alarm_id("c", a.fingerprint, a.starts_at)
    assert [t.alarm_id for t in tr.firing()] == [f.alarm_id]
    tr2 = tracker()
    tr2.restore(roundtrip(tr, store))
    assert store[f"c/{a.fingerprint}"]["alarm"]["alarm_id"] == f.alarm_id
    assert [t.alarm_id for t in tr2.firing()] == [f.alarm_id]
    [r] = tr2.observe_poll(poll(20, (A, [])), at(20))
    assert (r.kind, r.alarm_id, r.sequence) == ("resolved", f.alarm_id, 2)


def test_prometheus_replica_failover_is_no_new_occurrence():
    """prom-a dies: its copy expires in Alertmanager while prom-b's fires on."""
    tr = tracker()
    a, b = copy_of("prom-a", starts=-40), copy_of("prom-b", starts=-25)
    tr.observe_poll(poll(0, (A, [a, b])), at(0))
    assert tr.observe_poll(poll(400, (A, [b])), at(400)) == []
    assert tr.tracked == 1


def test_ha_pair_with_lagging_replica_on_fire_and_resolve():
    """Must-show 2, first kind, in miniature: one firing, one resolved."""
    tr = tracker()
    out = []
    a, b = copy_of("prom-a", starts=0, ends=240), copy_of("prom-b", starts=12, ends=252)
    out += tr.observe_poll(poll(20, (A, [a, b]), (B, [a])), at(20))  # B lags on fire
    out += tr.observe_poll(poll(140, (A, [a, b]), (B, [a, b])), at(140))
    out += tr.observe_poll(poll(300, (A, []), (B, [a, b])), at(300))  # B lags on resolve
    out += tr.observe_poll(poll(420, (A, []), (B, [])), at(420))
    assert kinds(out) == [("firing", "HighCpu", None), ("resolved", "HighCpu", "disappeared")]
    assert out[0].alarm_id == out[1].alarm_id


def test_flap_seen_by_one_replica_waits_for_the_lagging_one():
    """A holder replaced the occurrence (Alertmanager's verdict that it ended);
    another still lists it: the old stays firing, the new waits, then both move."""
    tr = tracker()
    old, new = alert(starts=-60), alert(starts=30)
    [f1] = tr.observe_poll(poll(0, (A, [old]), (B, [old])), at(0))
    assert tr.observe_poll(poll(40, (A, [new]), (B, [old])), at(40)) == []
    assert tr.observe_poll(poll(55, (A, [new]), (B, [old])), at(55)) == []
    out = tr.observe_poll(poll(70, (A, [new]), (B, [new])), at(70))
    assert kinds(out) == [("resolved", "HighCpu", "resolved"), ("firing", "HighCpu", None)]
    assert out[0].alarm_id == f1.alarm_id and out[0].alert.ends_at == at(30)
    assert out[1].alert.starts_at == at(30)


def test_later_copy_after_explicit_resolve_is_a_new_occurrence_only_when_later():
    tr = tracker()
    tr.observe_webhook([copy_of("prom-a", starts=0, ends=None)], at(1), "x")
    # prom-a resolved; prom-b's copy (skewed) still fires in the same delivery
    assert tr.observe_webhook([copy_of("prom-a", starts=0, ends=100, status="resolved"),
                               copy_of("prom-b", starts=10, ends=None)], at(100), "x") == []
    out = tr.observe_webhook([copy_of("prom-a", starts=0, ends=100, status="resolved"),
                              copy_of("prom-b", starts=10, ends=110, status="resolved")],
                             at(110), "x")
    assert kinds(out) == [("resolved", "HighCpu", "resolved")]
    # a lagging Alertmanager's delivery of prom-b's copy: part of what ended
    assert tr.observe_webhook([copy_of("prom-b", starts=10, ends=None)], at(111), "x") == []
    [f] = tr.observe_webhook([copy_of("prom-b", starts=200, ends=None)], at(201), "x")
    assert f.kind == "firing" and f.alert.starts_at == at(200)


# -- clocks ----------------------------------------------------------------

def test_alertmanager_clock_ahead_gives_consistent_times():
    """Alertmanager's clock is 10 minutes ahead of the relay's."""
    skew = 600.0
    tr = tracker(expire_delay=5)
    a = alert(starts=skew - 30, ends=skew + 240)  # Alertmanager's times
    [f] = tr.observe_poll(poll(0, (A, [a]), offset=skew), at(0))
    [r] = tr.observe_poll(poll(15, (A, []), offset=skew), at(15))
    assert r.alert.ends_at >= r.alert.starts_at
    assert r.alert.ends_at == at(15 + skew)
    assert tr.clock_offset(A) == dt.timedelta(seconds=skew)
    # a restarted replica: its silence counts once endsAt passed in *its* clock
    tr2 = tracker(expire_delay=5)
    tr2.observe_poll(poll(0, (A, [a], U1), offset=skew), at(0))
    assert tr2.observe_poll(poll(200, (A, [], U2), offset=skew), at(200)) == []
    [r2] = tr2.observe_poll(poll(250, (A, [], U2), offset=skew), at(250))
    assert (r2.reason, r2.alert.ends_at) == ("expired", at(skew + 240))


def test_alertmanager_clock_behind_never_resolves_before_start():
    tr = tracker()
    a = alert(starts=-30, ends=240)
    tr.observe_poll(poll(0, (A, [a]), offset=-600), at(0))
    [r] = tr.observe_poll(poll(15, (A, []), offset=-600), at(15))
    assert r.alert.ends_at == r.alert.starts_at == at(-30)


def test_uptime_with_nanoseconds_is_read():
    from daemon.lifecycle.state import uptime_time

    assert uptime_time(U1) == dt.datetime(2026, 11, 21, 20, 0, 0, 123456, tzinfo=UTC)
    assert uptime_time("2026-11-21T20:00:00+01:00") == dt.datetime(2026, 11, 21, 19,
                                                                     tzinfo=UTC)
    assert uptime_time("up1") is None and uptime_time(None) is None
