"""The bridge's decisions: once per (alarm, rule), in order, cooldowns, refusals, crashes.

Watcher is an in-memory stand-in implementing the bridge's ``WatcherAPI`` protocol: the
functional tests (tests/functional/watcher/) run the same paths against a real Watcher;
here the edges are cheap to reach (a crash between two calls, a 5xx at one exact call).
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from daemon.exception import WatcherError
from daemon.watcher import telemetry
from daemon.watcher.bridge import Bridge, audit_name, resource_key
from daemon.watcher.client import Audit
from daemon.watcher.rules import parse_rules
from daemon.watcher.state import AuditStatus, open_state

RULES = """\
rules:
- name: load
  key: {alertname: HighLoad}
  audit_template: load-tpl
  parameters: {host: "{resource.id}"}
  cooldown: 300
- name: any-critical
  key: {alertname: {present: true}}
  severity: critical
  audit_template: crit-tpl
  cooldown: 0
"""


class FakeWatcher:
    """Audits and templates in dicts; ``fail`` maps a method name to errors to raise next."""

    def __init__(self) -> None:
        self.templates = {"load-tpl": str(uuid.uuid4()), "crit-tpl": str(uuid.uuid4())}
        self.audits: dict[str, dict[str, Any]] = {}
        self.triggers: list[str] = []
        self.creates = 0
        self.fail: dict[str, list[WatcherError]] = {}

    def _maybe_fail(self, method: str) -> None:
        pending = self.fail.get(method)
        if pending:
            raise pending.pop(0)

    def template_uuid(self, ident: str) -> str:
        self._maybe_fail("template_uuid")
        if ident not in self.templates:
            raise WatcherError(problem=f"audit template {ident!r} not found in Watcher",
                               recoverable=False, reason="template_not_found")
        return self.templates[ident]

    def find_audit(self, name: str) -> Audit | None:
        self._maybe_fail("find_audit")
        audit = self.audits.get(name)
        return None if audit is None else Audit(audit["uuid"], name, audit["state"])

    def create_audit(self, *, name: str, template_uuid: str,
                     parameters: Mapping[str, Any]) -> Audit:
        self._maybe_fail("create_audit")
        assert name not in self.audits, "a second audit of the same name"
        self.creates += 1
        self.audits[name] = {"uuid": str(uuid.uuid4()), "state": "PENDING",
                             "template": template_uuid, "parameters": dict(parameters)}
        return Audit(self.audits[name]["uuid"], name, "PENDING")

    def trigger(self, audit_uuid: str, body: Mapping[str, Any]) -> None:
        self._maybe_fail("trigger")
        [audit] = [a for a in self.audits.values() if a["uuid"] == audit_uuid]
        assert audit["state"] == "PENDING", "an audit triggered twice"
        audit["state"] = "SUCCEEDED"
        self.triggers.append(audit_uuid)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


_ids = itertools.count(1)


def event(alarm_id: str = "alarm-1", *, sequence: int = 1, name: str = "HighLoad",
          status: str = "firing", severity: str = "warning", resource_id: str = "host-1",
          **extra: Any) -> dict[str, Any]:
    payload = {"event_id": f"ev-{next(_ids)}", "alarm_id": alarm_id, "sequence": sequence,
               "name": name, "status": status, "severity": severity,
               "fingerprint": "00000000000000aa", "labels": {"alertname": name},
               "silenced_by": [], "inhibited_by": [],
               "resource": {"type": "host", "id": resource_id, "properties": {},
                            "mapped": True}}
    payload.update(extra)
    return payload


@pytest.fixture
def parts(tmp_path):
    watcher, clock = FakeWatcher(), Clock()
    state = open_state(tmp_path, "bridge.sqlite")
    bridge = Bridge(rules=parse_rules(RULES), state=state, watcher=watcher,
                    default_cooldown=600.0, clock=clock)
    yield bridge, watcher, clock, state
    state.close()


def counter(metric, **labels) -> float:
    return metric.labels(**labels)._value.get()


def test_a_firing_alarm_starts_one_audit_named_after_it(parts, caplog):
    bridge, watcher, _, state = parts
    before = counter(telemetry.TRIGGERS, rule="load")
    with caplog.at_level(logging.INFO):
        assert bridge.handle("alarm.firing", event()) == "applied"
    name = audit_name("alarm-1", "load")
    assert name == "alarm-1-load"
    assert watcher.audits[name]["parameters"] == {"host": "host-1"}
    assert watcher.audits[name]["template"] == watcher.templates["load-tpl"]
    assert watcher.triggers == [watcher.audits[name]["uuid"]]
    record = state.audit("alarm-1", "load")
    assert record.status is AuditStatus.TRIGGERED
    assert record.audit_uuid == watcher.audits[name]["uuid"]
    assert counter(telemetry.TRIGGERS, rule="load") == before + 1
    [line] = [r.getMessage() for r in caplog.records if "Watcher audit" in r.getMessage()]
    assert line == (f"Alarm alarm-1 (HighLoad): Watcher audit {record.audit_uuid} "
                    "(alarm-1-load) triggered, template load-tpl, rule load")


def test_redelivery_and_restart_never_start_a_second_audit(parts, tmp_path):
    bridge, watcher, clock, state = parts
    first = event()
    bridge.handle("alarm.firing", first)
    assert bridge.handle("alarm.firing", first) == "duplicate"
    # A restart: a new Bridge on the same state file.
    again = Bridge(rules=bridge.rules, state=open_state(tmp_path, "bridge.sqlite"),
                   watcher=watcher, default_cooldown=600.0, clock=clock)
    assert again.handle("alarm.firing", first) == "duplicate"
    # Even a new event_id for the same alarm (a relay that lost its outbox) changes nothing.
    assert again.handle("alarm.updated", event(sequence=2)) == "applied"
    assert watcher.creates == 1 and len(watcher.triggers) == 1


def test_events_of_an_alarm_apply_in_sequence_order(parts):
    bridge, watcher, _, _ = parts
    assert bridge.handle("alarm.resolved", event(sequence=2, status="resolved")) == "applied"
    assert bridge.handle("alarm.firing", event(sequence=1)) == "stale"
    assert watcher.creates == 0


def test_only_firing_unsuppressed_alarms_start_audits(parts):
    bridge, watcher, _, _ = parts
    bridge.handle("alarm.firing", event("a", silenced_by=["s1"]))
    bridge.handle("alarm.updated", event("b", inhibited_by=["fp"]))
    bridge.handle("alarm.resolved", event("c", status="resolved"))
    bridge.handle("alarm.firing", event("d", name="Unmatched"))
    assert watcher.creates == 0
    # The silence ends: the updated event (still firing) starts the audit.
    bridge.handle("alarm.updated", event("a", sequence=2))
    assert list(watcher.audits) == ["a-load"]


def test_every_matching_rule_gets_its_own_audit(parts):
    bridge, watcher, _, _ = parts
    bridge.handle("alarm.firing", event(severity="critical"))
    assert sorted(watcher.audits) == ["alarm-1-any-critical", "alarm-1-load"]


def test_cooldown_per_resource_and_template(parts):
    bridge, watcher, clock, state = parts
    skips = counter(telemetry.COOLDOWN_SKIPS, rule="load")
    bridge.handle("alarm.firing", event("flap-1"))
    clock.now += 100
    bridge.handle("alarm.firing", event("flap-2"))
    bridge.handle("alarm.firing", event("other-host", resource_id="host-2"))
    assert sorted(watcher.audits) == ["flap-1-load", "other-host-load"]
    assert state.audit("flap-2", "load").status is AuditStatus.COOLDOWN
    assert counter(telemetry.COOLDOWN_SKIPS, rule="load") == skips + 1
    clock.now += 201  # 301 s after the first trigger
    bridge.handle("alarm.firing", event("flap-3"))
    assert "flap-3-load" in watcher.audits


def test_a_crash_after_create_is_found_by_name_and_triggered_once(parts):
    bridge, watcher, _, _ = parts
    # The audit exists (created before a crash), untriggered: trigger it, create nothing.
    watcher.audits["alarm-1-load"] = {"uuid": "u-1", "state": "PENDING"}
    bridge.handle("alarm.firing", event())
    assert watcher.creates == 0 and watcher.triggers == ["u-1"]
    # Triggered before the crash: never again, and not counted again.
    watcher.audits["alarm-2-load"] = {"uuid": "u-2", "state": "SUCCEEDED"}
    triggers = counter(telemetry.TRIGGERS, rule="load")
    bridge.handle("alarm.firing", event("alarm-2", resource_id="host-9"))
    assert watcher.triggers == ["u-1"]
    assert counter(telemetry.TRIGGERS, rule="load") == triggers


def test_watcher_down_keeps_the_event_unhandled_then_finishes_it(parts):
    bridge, watcher, _, state = parts
    down = WatcherError(problem="cannot reach Watcher", reason="unreachable")
    watcher.fail["trigger"] = [down]
    first = event()
    with pytest.raises(WatcherError):
        bridge.handle("alarm.firing", first)
    assert not state.seen(first["event_id"])
    assert state.audit("alarm-1", "load").status is AuditStatus.CREATED
    assert bridge.handle("alarm.firing", first) == "applied"  # the retry
    assert watcher.creates == 1 and len(watcher.triggers) == 1
    assert state.seen(first["event_id"])


def test_permanent_refusals_are_recorded_counted_and_logged_once_per_rule(parts, caplog):
    bridge, watcher, _, state = parts
    del watcher.templates["load-tpl"]
    failures = counter(telemetry.FAILURES, reason="template_not_found")
    with caplog.at_level(logging.DEBUG):
        assert bridge.handle("alarm.firing", event("x1")) == "applied"
        assert bridge.handle("alarm.firing", event("x2", resource_id="h2")) == "applied"
    assert state.audit("x1", "load").status is AuditStatus.REFUSED
    assert counter(telemetry.FAILURES, reason="template_not_found") == failures + 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "no Watcher audit for rule load (template load-tpl)" in errors[0].getMessage()
    assert errors[0].exc_info is None
    watcher.fail["trigger"] = [WatcherError(problem="refused", recoverable=False,
                                            reason="refused")]
    watcher.templates["load-tpl"] = "t-new"  # created later: found
    bridge.handle("alarm.firing", event("x3", resource_id="h3"))
    assert state.audit("x3", "load").status is AuditStatus.REFUSED
    assert watcher.audits["x3-load"]["template"] == "t-new"


def test_missing_parameter_values_refuse_the_rule(parts):
    bridge, watcher, _, state = parts
    bridge.handle("alarm.firing", event(resource_id=None))
    record = state.audit("alarm-1", "load")
    assert record.status is AuditStatus.REFUSED and record.reason.startswith("parameters:")
    assert watcher.creates == 0


@pytest.mark.parametrize("payload", [None, [], {"alarm_id": "a"},
                                     {"event_id": "e", "alarm_id": "a", "sequence": "1"}])
def test_what_is_not_an_alarm_event_is_invalid(parts, payload):
    bridge, watcher, _, _ = parts
    assert bridge.handle("alarm.firing", payload) == "invalid"


def test_audit_names_are_deterministic_unique_and_short():
    assert audit_name("a", "r") == audit_name("a", "r") == "a-r"
    long_rule = "r" * 40
    names = {audit_name("e0893eec-ae84-56b9-a424-f929139263b3", long_rule),
             audit_name("e0893eec-ae84-56b9-a424-f929139263b3", long_rule[:-1] + "s"),
             audit_name("x" * 200, "r"), audit_name("x" * 199, "r"),
             audit_name("has space", "r")}
    assert len(names) == 5
    assert all(len(n) <= 63 and " " not in n for n in names)


def test_resource_keys():
    assert resource_key({"resource": {"type": "host", "id": "h1"}}) == "host:h1"
    assert resource_key({"resource": {"type": "fs", "mapped": True,
                                      "properties": {"b": "2", "a": "1"}}}) == \
        'fs:{"a":"1","b":"2"}'
    assert resource_key({"fingerprint": "ff", "resource": {"mapped": False}}) == \
        "fingerprint:ff"
    assert resource_key({"resource": {"type": None, "mapped": True,
                                      "properties": {"host_id": "h:9100"}}}) == \
        '{"host_id":"h:9100"}'
