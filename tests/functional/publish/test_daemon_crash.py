"""Issue 5, must show 3 with the real daemon: SIGKILLed with events in the outbox, then sent."""

from __future__ import annotations

import json
import pathlib
import shutil
import sqlite3
import time
import urllib.request

from daemon.store import STATE_FILE
from tools.harness.bus import Consumer
from tools.harness.relay import RelayProcess

SHARED = pathlib.Path(__file__).resolve().parents[4] / "shared" / "fixtures"
SEED_MAPPING = SHARED / "mapping" / "seed-mapping.yaml"
DELIVERIES = SHARED / "alertmanager" / "webhook_v4_deliveries.jsonl"


def _stored_event_ids(state_dir: pathlib.Path) -> list[str]:
    path = state_dir / STATE_FILE
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT event_id FROM outbox ORDER BY seq")]
    except sqlite3.OperationalError:   # table not created yet
        return []
    finally:
        db.close()


def _post(url: str, body: str) -> int:
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_daemon_sigkilled_with_unsent_events_sends_them_after_restart(
        tmp_path, rabbit_node, alertmanager, unique_name):
    exchange, topic = f"{unique_name}-x", f"{unique_name}-alarms"
    mapping = tmp_path / "mappings.yaml"
    shutil.copy(SEED_MAPPING, mapping)
    workdir = tmp_path / "relay"
    sections = {"DEFAULT": {"control_exchange": exchange},
                "oslo_messaging_notifications": {"topics": topic}}

    def relay() -> RelayProcess:
        return RelayProcess(mapping_path=mapping, transport_url=rabbit_node.transport_url,
                            alertmanager_urls=[alertmanager.url], sections=sections,
                            workdir=workdir)

    first = relay().start()
    try:
        rabbit_node.stop_app()
        firing = [line for line in DELIVERIES.read_text().splitlines()
                  if json.loads(line)["status"] == "firing"]
        for body in firing:
            assert _post(f"{first.url}/v1/alerts", body) == 200
        deadline = time.monotonic() + 20
        while not (stored := _stored_event_ids(first.state_dir)):
            assert time.monotonic() < deadline, first.log()[-3000:]
            time.sleep(0.1)
        time.sleep(1.0)                       # let the dispatcher fail a send or two
        stored = _stored_event_ids(first.state_dir)
    finally:
        first.kill()                          # SIGKILL, master and worker
    assert stored

    rabbit_node.start_app()
    with Consumer(rabbit_node.transport_url, exchange=exchange, topic=topic,
                  conf_dir=tmp_path) as consumer:
        second = relay().start()
        try:
            deadline = time.monotonic() + 60
            while not set(stored) <= set(consumer.collector.event_ids()):
                assert time.monotonic() < deadline, (
                    f"missing {set(stored) - set(consumer.collector.event_ids())}\n"
                    f"{second.log()[-3000:]}")
                time.sleep(0.2)
        finally:
            assert second.stop() == 0
    received = {p["event_id"]: p for _, _, p, _ in consumer.collector.received}
    for event_id in stored:
        assert received[event_id]["schema_version"] == "1.0"
