"""alarm-relay-watcher as a process, without Watcher: reloads, shutdown while Watcher is away.

Watcher's endpoint here is a closed loopback port (Watcher down), which is all these
behaviours need: the real RabbitMQ holds the events.
"""

from __future__ import annotations

import signal
import time

import kombu

from daemon import conf as relay_conf
from daemon.publish import Notifier
from tests.functional.publish.helpers import alarm_event
from tools.harness.bus import amqp_url, delete_entities
from tools.harness.ports import free_port, wait_until
from tools.harness.relay import write_config
from tools.harness.services import shared_transport_url
from tools.harness.watcher import BridgeProcess

RULES = """\
rules:
- name: cpu
  key: {alertname: HighCpuOnVmAlert}
  audit_template: some-template
"""


def _bridge(tmp_path, name: str, rules: str = RULES) -> BridgeProcess:
    return BridgeProcess(
        transport_url=shared_transport_url(), exchange=name, topic=name, pool=f"{name}-bridge",
        rules=rules, watcher=None, workdir=tmp_path / "bridge",
        sections={"watcher_client": {"auth_mode": "noauth",
                                     "endpoint_override": f"http://127.0.0.1:{free_port()}"}})


def _messages(queue: str) -> int:
    with kombu.Connection(amqp_url(shared_transport_url()), connect_timeout=5) as conn:
        return conn.channel().queue_declare(queue, passive=True).message_count


def test_sigterm_while_watcher_is_down_puts_the_event_back(tmp_path, unique_name):
    bridge = _bridge(tmp_path, unique_name)
    try:
        bridge.start()
        path = write_config(tmp_path / "publisher.conf", {
            "DEFAULT": {"transport_url": shared_transport_url(),
                        "control_exchange": unique_name, "state_dir": tmp_path},
            "oslo_messaging_notifications": {"topics": unique_name}})
        with Notifier(relay_conf.prepare(["--config-file", str(path)])) as notifier:
            notifier.publish(alarm_event(alarm_no=5, sequence=1, kind="firing"))
        wait_until(lambda: bridge.metric("alarm_relay_watcher_retries_total",
                                         reason="unreachable") >= 2,
                   timeout=30, what="the bridge to retry", describe=bridge.log)
        began = time.monotonic()
        bridge.proc.send_signal(signal.SIGTERM)
        assert bridge.wait_exit(timeout=30) == 0
        assert time.monotonic() - began < 10
        log = bridge.log()
        assert "goes back to the queue" in log, log
        assert "stays unacknowledged" in log
        # The event waits on the broker for the next start.
        wait_until(lambda: _messages(f"{unique_name}-bridge") == 1, timeout=10,
                   what="the event back in the bridge's queue")
    finally:
        bridge.close()
        delete_entities(shared_transport_url(), exchanges=[unique_name],
                        queues=[f"{unique_name}-bridge"])


def test_sighup_reloads_the_rules_and_keeps_them_when_invalid(tmp_path, unique_name):
    bridge = _bridge(tmp_path, unique_name)
    try:
        bridge.start()
        bridge.rules_path.write_text(RULES + RULES.replace("name: cpu", "name: cpu2", 1)
                                     .replace("rules:\n", ""))
        bridge.proc.send_signal(signal.SIGHUP)
        bridge.wait_for_log("SIGHUP: 2 rules reloaded from")
        bridge.rules_path.write_text("rules:\n- name: broken\n")
        bridge.proc.send_signal(signal.SIGHUP)
        bridge.wait_for_log("SIGHUP: rules not reloaded, the current ones stay: "
                            f"{bridge.rules_path}:2: rule 1: missing 'key'")
        assert bridge.proc.poll() is None
        assert bridge.stop() == 0
    finally:
        bridge.close()
        delete_entities(shared_transport_url(), exchanges=[unique_name],
                        queues=[f"{unique_name}-bridge"])
