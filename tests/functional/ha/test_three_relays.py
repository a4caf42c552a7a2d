"""Must-show 1 of issue 15: three relays play the seed's scenario as one relay does.

Three relays share a database (PostgreSQL, then MariaDB) and the tooz group on Redis; a
single relay with its own SQLite file polls the same Alertmanager and publishes on another
topic. The four alerts fire, two resolve, one is silenced: the group's stream carries one
alarm.firing per alarm, one alarm.resolved per resolved alarm, one alarm.updated for the
silence, and it is the single relay's stream field by field except event_id and
observed_at (and, for an alarm resolved because a poll no longer saw it, its ends_at:
the time of that poll, within a poll of the other's).
"""

from __future__ import annotations

import collections
import datetime as dt
import time

import pytest

from tests.functional.ha.conftest import (
    POLL_INTERVAL,
    TO_RESOLVE,
    TO_SILENCE,
    resolved,
    seed_alerts,
    strip,
    sync_schema,
    wait_owned,
)
from tools.harness.bus import Consumer
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess

NAMES = ("AvgCPUTimeOnIdleMode", "HighCpuOnVmAlert", "HighInodeUsage", "HighTrafficOnBridge")


def _time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _by_name(collector) -> dict[tuple[str, str], list[dict]]:
    found: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    with collector.lock:
        for _, event_type, payload, _ in collector.received:
            found[(event_type, payload["name"])].append(payload)
    return found


def _complete(collector) -> bool:
    got = _by_name(collector)
    return (all(got[("alarm.firing", n)] for n in NAMES)
            and all(got[("alarm.resolved", n)] for n in TO_RESOLVE)
            and bool(got[("alarm.updated", TO_SILENCE)]))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_three_relays_give_the_stream_of_one(
        request, backend, tmp_path, relays, seed_mapping, alertmanager, rabbit_url,
        unique_name, coordination_url):
    database = request.getfixturevalue(f"{backend}_url")
    sync_schema(database)
    exchange = unique_name
    single_topic, group_topic = unique_name, f"{unique_name}-alarms"
    with Consumer(rabbit_url, exchange=exchange, topic=single_topic,
                  conf_dir=tmp_path) as single_bus, \
            Consumer(rabbit_url, exchange=exchange, topic=group_topic,
                     conf_dir=tmp_path) as group_bus, \
            RelayProcess(mapping_path=seed_mapping, transport_url=rabbit_url,
                         alertmanager_urls=[alertmanager.url], workdir=tmp_path / "single",
                         sections={"DEFAULT": {"control_exchange": exchange},
                                   "oslo_messaging_notifications": {"topics": single_topic}}):
        group = relays(3, database=database, backend_url=coordination_url,
                       alertmanager_urls=[alertmanager.url], exchange=exchange,
                       topic=group_topic)
        owner = wait_owned(group, ["default"], timeout=30, members=3)["default"][0]
        for relay in group:  # a standby is ready too: it takes webhooks for the inbox
            wait_until(lambda r=relay: r.get("/readyz")[0] == 200, timeout=30,
                       what="/readyz 200")

        alerts = seed_alerts()
        alertmanager.post_alerts(alerts)
        wait_until(lambda: all(_by_name(bus.collector)[("alarm.firing", n)] for n in NAMES
                               for bus in (single_bus, group_bus)),
                   timeout=60, what="four alarm.firing on both topics")
        alertmanager.post_alerts(resolved(alerts, TO_RESOLVE))
        alertmanager.add_silence({"alertname": TO_SILENCE})
        wait_until(lambda: _complete(single_bus.collector) and _complete(group_bus.collector),
                   timeout=60, what="the resolutions and the silence on both topics")
        time.sleep(4)  # time for a duplicate to show up, if any relay were to send one

        single, ha = _by_name(single_bus.collector), _by_name(group_bus.collector)
        expected = {("alarm.firing", n): 1 for n in NAMES}
        expected.update({("alarm.resolved", n): 1 for n in TO_RESOLVE})
        expected[("alarm.updated", TO_SILENCE)] = 1
        assert {k: len(v) for k, v in ha.items()} == expected
        assert {k: len(v) for k, v in single.items()} == expected
        for key in expected:
            ours, theirs = strip(ha[key][0]), strip(single[key][0])
            if ours.get("reason") in ("disappeared", "expired"):
                # Seen gone by a poll: the end is that poll's time, which no two relays
                # (nor two runs of one) share; it is within a poll of the other's.
                gap = abs(_time(ours.pop("ends_at")) - _time(theirs.pop("ends_at")))
                assert gap <= POLL_INTERVAL + 1.0, (key, gap)
            assert ours == theirs, key
        # Only the owner published; the standbys published nothing. The consumer can have
        # the last message before its relay's loop has taken the confirm that counts it.
        wait_until(lambda: sum(r.metric("alarm_relay_events_published_total")
                               for r in group) >= 7, timeout=15, what="7 events counted")
        for index, relay in enumerate(group):
            published = relay.metric("alarm_relay_events_published_total")
            assert published == (7 if index == owner else 0), (index, published)
        assert group[owner].metric("alarm_relay_owned_units") == 1
        assert "Ownership: took unit default at epoch" in group[owner].log()
