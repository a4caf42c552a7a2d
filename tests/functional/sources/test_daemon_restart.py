"""Issue 4 must-show 5: the daemon SIGKILLed mid-incident, an alert resolved while it was
down, the daemon restarted: that alert resolves after the restart, the others are not
re-announced as new (checked on the bus, with the daemon as a real process)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from tools.harness.bus import Consumer
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess

FIXTURES = Path("/work/shared/fixtures")
if not FIXTURES.is_dir():  # pragma: no cover
    FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"


def _iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")




def test_sigkill_mid_incident(tmp_path, alertmanager, rabbit_url, unique_name):
    exchange = topic = unique_name
    now = dt.datetime.now(dt.UTC)
    alerts = json.loads((FIXTURES / "alertmanager" / "posted_firing.json").read_text())
    for alert in alerts:
        alert["startsAt"] = _iso(now - dt.timedelta(minutes=1))
        alert["endsAt"] = _iso(now + dt.timedelta(hours=1))
    relay = RelayProcess(
        mapping_path=FIXTURES / "mapping" / "seed-mapping.yaml", transport_url=rabbit_url,
        alertmanager_urls=[alertmanager.url], workdir=tmp_path / "relay",
        sections={"DEFAULT": {"control_exchange": exchange},
                  "oslo_messaging_notifications": {"topics": topic},
                  "alertmanager": {"poll_interval": 1.0}})
    with Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
        events = consumer.collector.payloads
        relay.start()
        try:
            alertmanager.post_alerts(alerts)
            wait_until(lambda: len({e["alarm_id"] for e in events("alarm.firing")}) == 4,
                       timeout=30, what="4 alarm.firing")
            ids = {e["name"]: e["alarm_id"] for e in events("alarm.firing")}
            time.sleep(1.5)  # let the broker confirm and the outbox drain

            relay.kill()
            gone = [dict(a, endsAt=_iso(dt.datetime.now(dt.UTC))) for a in alerts
                    if a["labels"]["alertname"] == "HighInodeUsage"]
            alertmanager.post_alerts(gone)
            time.sleep(2)
            relay.start()

            wait_until(lambda: events("alarm.resolved"), timeout=30, what="alarm.resolved")
            time.sleep(4)  # a few more polls: nothing else may come
            resolved = events("alarm.resolved")
            assert {(e["name"], e["alarm_id"], e["reason"]) for e in resolved} == {
                ("HighInodeUsage", ids["HighInodeUsage"], "disappeared")}
            firing = events("alarm.firing")
            # Redelivery of an unconfirmed event is allowed (same event_id); a new
            # announcement (another alarm_id or event) is not.
            assert {e["alarm_id"] for e in firing} == set(ids.values())
            assert len({e["event_id"] for e in firing}) == 4
        finally:
            relay.stop()
