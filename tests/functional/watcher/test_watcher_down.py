"""Must-show 2: Watcher's API is down for 30 s while three alarms fire; none is lost.

The bridge keeps each event unacknowledged and retries with backoff while the API refuses
connections; once the API is back, every alarm gets exactly one audit, each SUCCEEDED.
"""

from __future__ import annotations

import time

import pytest

from tools.harness.ports import wait_until
from tools.harness.services import make_alert

# Long: a 30 s outage by design (38 s measured), plus Watcher's install if it comes first.
pytestmark = pytest.mark.timeout(600)

OUTAGE = 30.0

RULES = """\
rules:
- name: down-@NAME@
  key: {alertname: {"=~": "WatcherDown.*"}}
  audit_template: "@TEMPLATE@"
  parameters: {host: "{labels.instance}", alarm: "{name}"}
  cooldown: 0
"""


def test_three_alarms_while_watcher_is_down_each_get_one_audit(pipeline):
    line = pipeline(rules=RULES)
    began = time.monotonic()
    line.watcher.api.stop()
    try:
        alerts = [make_alert(f"WatcherDown{n}", {"instance": f"compute-{n}:9100",
                                                   "severity": "critical"})
                  for n in range(3)]
        line.alertmanager.post_alerts(alerts)
        # The first event waits for Watcher; the others queue behind it, unacknowledged.
        line.wait_metric("alarm_relay_watcher_retries_total", 3, reason="unreachable",
                         timeout=20)
        assert line.bridge.metric("alarm_relay_watcher_triggers_total") == 0
        assert "stays unacknowledged" in line.bridge.log()
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - began)))
    finally:
        line.watcher.api.start()
    back = time.monotonic()
    line.wait_metric("alarm_relay_watcher_triggers_total", 3, timeout=60)
    caught_up = time.monotonic() - back

    audits = line.audits()
    assert sorted(a["parameters"]["alarm"] for a in audits) == [
        "WatcherDown0", "WatcherDown1", "WatcherDown2"], audits
    assert len({a["name"] for a in audits}) == 3
    for audit in audits:
        done = line.watcher.wait_audit_state(audit["uuid"], ("SUCCEEDED", "FAILED"))
        assert done["state"] == "SUCCEEDED", line.watcher.log_tail()
    # Nothing more arrives later: every event was handled once.
    wait_until(lambda: line.bridge.metric("alarm_relay_watcher_events_total",
                                          outcome="applied") >= 3,
               timeout=10, what="three events applied")
    time.sleep(2)
    assert len(line.audits()) == 3
    assert line.bridge.metric("alarm_relay_watcher_failures_total") == 0
    assert line.bridge.metric("alarm_relay_watcher_events_total", outcome="applied") == 3
    print(f"timings: outage {back - began:.1f}s, caught up {caught_up:.1f}s after the API "
          f"returned, total {time.monotonic() - began:.1f}s")
