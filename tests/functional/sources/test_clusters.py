"""Several Alertmanager clusters in one daemon (issue 4, "several clusters may be
configured as named groups"): each cluster is polled and tracked apart, has its own
webhook route, and one cluster's outage never resolves or delays the other's alarms.

Two independent Alertmanager processes play the clusters ``east`` and ``west``; the
daemon runs from its console script and the events are read on the bus.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from tools.harness.bus import Consumer
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess
from tools.harness.services import make_alert

FIXTURES = Path("/work/shared/fixtures")
if not FIXTURES.is_dir():  # pragma: no cover
    FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"




def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_two_clusters_tracked_apart(tmp_path, alertmanager_factory, rabbit_url, unique_name):
    exchange = topic = unique_name
    relay = RelayProcess(
        mapping_path=FIXTURES / "mapping" / "seed-mapping.yaml", transport_url=rabbit_url,
        alertmanager_urls=[], workdir=tmp_path / "relay",
        sections={"DEFAULT": {"control_exchange": exchange},
                  "oslo_messaging_notifications": {"topics": topic},
                  "alertmanager": {"clusters": "east,west", "poll_interval": 1.0},
                  "lifecycle": {"expire_delay": 2.0}})
    # east also delivers by webhook, to its own route; west is only polled. West gives
    # its alerts an endsAt 30 s ahead (as Prometheus does, some resend periods ahead).
    east = alertmanager_factory(webhook_url=f"{relay.url}/v1/alerts/east")
    west = alertmanager_factory(resolve_timeout="30s")
    relay.rewrite_config({"alertmanager:east": {"urls": east.url},
                          "alertmanager:west": {"urls": west.url}})
    starts = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    same = make_alert("HighCpuOnVmAlert", {"domain": "instance-00000004",
                                           "instance": "135.248.18.109:9177"},
                      starts_at=starts)

    with Consumer(rabbit_url, exchange=exchange, topic=topic, conf_dir=tmp_path) as consumer:
        events = consumer.collector.payloads
        relay.start()
        try:
            relay.wait_for_log("cluster east at", timeout=5)
            status, body = relay.get("/readyz")
            checks = json.loads(body)["checks"]
            assert {"alertmanager_answered:east", "alertmanager_answered:west"} <= set(checks)

            # The same alert (same labels, same startsAt) in both clusters is two alarms.
            east.post_alerts([same])
            west.post_alerts([same])
            wait_until(lambda: len(events("alarm.firing")) == 2, timeout=30, what="2 alarm.firing")
            firing = {e["source"]["cluster"]: e for e in events("alarm.firing")}
            assert set(firing) == {"east", "west"}
            assert firing["east"]["alarm_id"] != firing["west"]["alarm_id"]
            assert firing["east"]["source"]["url"] == east.url.rstrip("/")
            assert firing["west"]["source"]["url"] == west.url.rstrip("/")
            assert relay.get("/readyz")[0] == 200

            # west goes down for 4 poll intervals: nothing of west resolves, and
            # east goes on: a new alert fires and one resolves.
            west.kill()
            east.post_alerts([make_alert("HighInodeUsage", {"instance": "h1:9100"},
                                         starts_at=starts)])
            wait_until(lambda: any(e["name"] == "HighInodeUsage"
                                   for e in events("alarm.firing")),
                       timeout=15, what="east's new alert while west is down")
            east.post_alerts([dict(same, endsAt=(dt.datetime.now(dt.UTC)).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"))])
            wait_until(lambda: events("alarm.resolved"), timeout=15, what="east's resolve")
            time.sleep(4)
            resolved = events("alarm.resolved")
            assert [e["alarm_id"] for e in resolved] == [firing["east"]["alarm_id"]]
            assert resolved[0]["source"]["cluster"] == "east"

            # west comes back empty: it forgot its alerts, so its silence counts only
            # once the alarm's last seen endsAt has passed; then it resolves, as its
            # own alarm, with the reason `expired` and that endsAt.
            west.start()
            wait_until(lambda: len(events("alarm.resolved")) == 2,
                       timeout=45, what="west's resolve")
            last = events("alarm.resolved")[-1]
            assert (last["alarm_id"], last["source"]["cluster"], last["reason"]) == (
                firing["west"]["alarm_id"], "west", "expired")
            assert last["ends_at"] < last["observed_at"]
            assert len(events("alarm.firing")) == 3
        finally:
            relay.stop()


def test_webhook_routes_per_cluster(tmp_path, alertmanager_factory, rabbit_url, unique_name):
    east = alertmanager_factory()
    west = alertmanager_factory()
    relay = RelayProcess(
        mapping_path=FIXTURES / "mapping" / "seed-mapping.yaml", transport_url=rabbit_url,
        alertmanager_urls=[], workdir=tmp_path / "relay",
        sections={"DEFAULT": {"control_exchange": unique_name},
                  "oslo_messaging_notifications": {"topics": unique_name},
                  "alertmanager": {"clusters": "east,west"},
                  "alertmanager:east": {"urls": east.url},
                  "alertmanager:west": {"urls": west.url, "poll_interval": 2.0}})
    deliveries = (FIXTURES / "alertmanager" / "webhook_v4_deliveries.jsonl").read_text()
    body = json.loads(deliveries.splitlines()[0])
    with relay:
        status, answer = _post(f"{relay.url}/v1/alerts", body)
        assert status == 404
        assert "east, west" in answer["error"]
        status, answer = _post(f"{relay.url}/v1/alerts/north", body)
        assert status == 404
        assert "north" in answer["error"]
        status, answer = _post(f"{relay.url}/v1/alerts/west", body)
        assert status == 200, answer
        assert relay.get("/healthz")[0] == 200
        # One line per rejection, naming the reason once (no internal exception appended).
        rejected = [line for line in relay.log().splitlines() if "rejected (404)" in line]
        assert len(rejected) == 2
        assert not any("_BadRequest" in line for line in rejected), rejected
