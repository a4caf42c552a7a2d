"""``tools/demo.py --with-watcher`` (``make demo DEMO_ARGS=--with-watcher``) as run by hand.

The demo's alarms start Watcher audits through alarm-relay-watcher: one for DemoHostLoad
(the alert Prometheus evaluates itself), one for the first of the two critical alerts on
one VM, and a cooldown skip for the other; both audits reach SUCCEEDED with an
action plan. Everything it started is stopped, and its queues are gone.
"""

from __future__ import annotations

import re
import time

import kombu
import pytest

from tests.functional.test_demo import AMQP_SHARED, _assert_nothing_left, _run_demo

# Long: the whole demo with a Watcher (67 s measured).
pytestmark = pytest.mark.timeout(600)

DURATION = 50


def test_demo_with_watcher_shows_the_audits_and_cleans_up():
    began = time.monotonic()
    proc = _run_demo("--with-watcher", "--duration", str(DURATION), timeout=DURATION + 240)
    output = proc.stdout
    assert proc.returncode == 0, output + proc.stderr
    lines = [line for line in output.splitlines() if line.startswith("[watcher] ")]
    assert any("alarm-relay-watcher ready: 2 rules" in line for line in lines), output
    triggered = [line for line in lines if ": Watcher audit " in line and " triggered," in line]
    alerts = {re.search(r"\((\w+)\): Watcher audit", line).group(1) for line in triggered}
    # The relay publishes different alarms in parallel: either VM alert may come first.
    vm_alerts = {"HighCpuOnVmAlert", "HighTrafficOnBridge"}
    assert len(alerts) == 2 and "DemoHostLoad" in alerts and alerts & vm_alerts, output
    [skipped] = vm_alerts - alerts
    assert any(f"({skipped}): no audit, rule critical-vm" in line for line in lines), output
    succeeded = [line for line in lines if re.search(
        r"audit \S+ SUCCEEDED: 1 action plan\(s\) RECOMMENDED with 1 action\(s\)", line)]
    assert len(succeeded) == 2, output
    assert re.search(r"^\[demo\] summary: 2 Watcher audits \(SUCCEEDED 2\)$", output,
                     re.MULTILINE), output
    assert "Traceback" not in output + proc.stderr
    exchange = re.search(r"removed exchanges (\S+),", output).group(1)
    pids = re.search(r"^\[demo\] stopped pids: (.*)$", output, re.MULTILINE).group(1)
    for name in ("alarm-relay-watcher=", "watcher-api=", "watcher-decision-engine="):
        assert name in pids, pids
    _assert_nothing_left(output)
    pool = re.search(r"--pool (\S+)", output).group(1)
    with kombu.Connection(AMQP_SHARED, connect_timeout=5) as conn:
        for queue in (f"{pool}-watcher", f"{exchange}-de"):
            channel = conn.channel()
            try:
                channel.queue_declare(queue, passive=True)
            except Exception:  # noqa: BLE001 - NOT_FOUND: removed, as it should be
                continue
            raise AssertionError(f"the demo left its queue {queue} on the broker")
    print(f"timings: demo with Watcher {time.monotonic() - began:.1f}s")
