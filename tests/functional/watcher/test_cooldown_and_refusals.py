"""Must-show 3: a flapping alert starts one audit; a missing template is one clear error.

An alert fires and resolves five times (five alarms, one resource) within its rule's
cooldown: one audit, four cooldown skips. A rule naming an audit template Watcher does not
have logs one ERROR naming the rule and the template, counts a failure and acknowledges the
event; the bridge goes on and starts the next alarm's audit.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from tools.harness.ports import wait_until
from tools.harness.services import make_alert

# Watcher's install (75 s fresh) may fall in this module's first test.
pytestmark = pytest.mark.timeout(600)

RULES = """\
rules:
- name: flap-@NAME@
  key: {alertname: Flapping}
  audit_template: "@TEMPLATE@"
  cooldown: 600
- name: orphan-@NAME@
  key: {alertname: Orphan}
  audit_template: no-such-template-@NAME@
- name: after-@NAME@
  key: {alertname: AfterOrphan}
  audit_template: "@TEMPLATE@"
"""

FLAPS = 5


def _events(line, event_type: str) -> float:
    return line.bridge.metric("alarm_relay_watcher_events_total", event_type=event_type)


def test_flapping_alert_within_cooldown_gives_one_audit(pipeline):
    line = pipeline(rules=RULES)
    began = time.monotonic()
    labels = {"instance": "compute-7:9100", "severity": "warning"}
    for flap in range(1, FLAPS + 1):
        start = dt.datetime.now(dt.UTC)
        line.alertmanager.post_alerts([make_alert("Flapping", labels, starts_at=start)])
        wait_until(lambda n=flap: _events(line, "alarm.firing") >= n, timeout=30,
                   what=f"firing {flap} at the bridge",
                   describe=lambda: line.relay.log()[-2000:])
        line.alertmanager.post_alerts([make_alert(
            "Flapping", labels, starts_at=start, ends_at=dt.datetime.now(dt.UTC))])
        wait_until(lambda n=flap: _events(line, "alarm.resolved") >= n, timeout=30,
                   what=f"resolved {flap} at the bridge",
                   describe=lambda: line.relay.log()[-2000:])
    rule = f"flap-{line.name}"
    assert line.bridge.metric("alarm_relay_watcher_triggers_total", rule=rule) == 1
    assert line.bridge.metric("alarm_relay_watcher_cooldown_skips_total", rule=rule) == FLAPS - 1
    [audit] = line.audits()
    done = line.watcher.wait_audit_state(audit["uuid"], ("SUCCEEDED", "FAILED"))
    assert done["state"] == "SUCCEEDED", line.watcher.log_tail()
    # Five different alarms (occurrences), one resource.
    alarms = set(re.findall(r"Alarm (\S+) \(Flapping\)", line.bridge.log()))
    assert len(alarms) == FLAPS, alarms
    assert line.bridge.log().count("(cooldown 600s)") == FLAPS - 1
    print(f"timings: {FLAPS} flaps in {time.monotonic() - began:.1f}s, "
          f"setup {line.timings['setup']:.1f}s")


def test_missing_template_is_one_clear_error_and_the_bridge_goes_on(pipeline):
    line = pipeline(rules=RULES)
    began = time.monotonic()
    line.alertmanager.post_alerts([make_alert("Orphan", {"instance": "compute-8:9100"})])
    line.wait_metric("alarm_relay_watcher_failures_total", 1, reason="template_not_found")
    line.alertmanager.post_alerts([make_alert("AfterOrphan", {"instance": "compute-9:9100"})])
    line.wait_metric("alarm_relay_watcher_triggers_total", 1, rule=f"after-{line.name}")

    errors = [row for row in line.bridge.log().splitlines() if " ERROR " in row]
    assert len(errors) == 1, errors
    assert f"rule orphan-{line.name}" in errors[0]
    assert f"audit template 'no-such-template-{line.name}' not found in Watcher" in errors[0]
    assert "Traceback" not in line.bridge.log()
    # The refused event was acknowledged (nothing is retried), and no audit was made for it.
    assert line.bridge.metric("alarm_relay_watcher_retries_total") == 0
    assert line.bridge.metric("alarm_relay_watcher_events_total", event_type="alarm.firing",
                              outcome="applied") == 2
    [audit] = line.audits()
    assert audit["name"].endswith(f"-after-{line.name}")
    print(f"timings: {time.monotonic() - began:.1f}s, setup {line.timings['setup']:.1f}s")
