"""Issue 4 must-shows 1-4 and 6 against real Alertmanager processes.

The relay's intake runs in-process here: poller + lifecycle tracker + webhook receiver,
wired as daemon/service.py wires them (on_result -> observe_poll; webhook -> observe_webhook
then poll_now), without transformer and outbox.  Must-show 5 (SIGKILL of the whole daemon)
lives with the daemon's own functional tests.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from daemon.lifecycle import LifecycleTracker, Transition, alarm_id
from daemon.model import Alert, PollResult
from daemon.sources.alertmanager import AlertmanagerPoller, PollerSettings
from daemon.sources.webhook import WebhookReceiver, WebhookSettings
from tools.harness.services import Alertmanager

FIXTURES = Path("/work/shared/fixtures/alertmanager")
if not FIXTURES.is_dir():  # pragma: no cover
    FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "alertmanager"
UTC = dt.UTC
CLUSTER = "test"


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seed_alerts(starts_at: dt.datetime, ends_at: dt.datetime | None = None) -> list[dict]:
    """The seed's four alerts (posted_firing.json) re-timed to now."""
    alerts = json.loads((FIXTURES / "posted_firing.json").read_text())
    for alert in alerts:
        alert["startsAt"] = iso(starts_at)
        alert["endsAt"] = iso(ends_at or starts_at + dt.timedelta(hours=1))
    return alerts


def resolved(alerts: list[dict], names: set[str]) -> list[dict]:
    out = []
    for alert in alerts:
        if alert["labels"]["alertname"] in names:
            alert = copy.deepcopy(alert)
            alert["endsAt"] = iso(utcnow())
            out.append(alert)
    return out


class Intake:
    """Poller + tracker + webhook receiver, recording every transition with its time."""

    def __init__(self, *, interval: float, webhook: WebhookSettings | None = None,
                 policy: str = "keep-firing", expire_delay: float = 15.0) -> None:
        self.interval = interval
        self.tracker = LifecycleTracker(cluster=CLUSTER, suppressed_policy=policy,
                                        expire_delay=expire_delay)
        self.poller: AlertmanagerPoller | None = None
        self.transitions: list[tuple[float, str, Transition]] = []
        self.polls: list[PollResult] = []
        self.webhook_settings = webhook or WebhookSettings()
        self.url = ""
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._runner: web.AppRunner | None = None

    async def on_result(self, result: PollResult) -> None:
        self.polls.append(result)
        self._record(self.tracker.observe_poll(result, utcnow()), "poll")

    async def on_alerts(self, alerts: list[Alert], source_url: str, cluster: str) -> None:
        self._record(self.tracker.observe_webhook(alerts, utcnow(), source_url), "webhook")
        if self.poller is not None:
            self.poller.poll_now()

    def _record(self, transitions: list[Transition], path: str) -> None:
        now = time.monotonic()
        self.transitions.extend((now, path, t) for t in transitions)
        self.tracker.export_changes()

    async def listen(self) -> str:
        app = web.Application(client_max_size=self.webhook_settings.max_body_size)
        WebhookReceiver(settings=self.webhook_settings, on_alerts=self.on_alerts).add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1/alerts"
        return self.url

    async def poll(self, urls: list[str], *, run: bool = True,
                   expire_every: float | None = None) -> None:
        self.poller = AlertmanagerPoller(
            cluster=CLUSTER, urls=urls,
            settings=PollerSettings(poll_interval=self.interval, poll_jitter=0.0,
                                    timeout=min(2.0, self.interval), min_poll_gap=0.0),
            on_result=self.on_result)
        await self.poller.start()
        if run:
            self._tasks.append(asyncio.create_task(self.poller.run(self._stop)))
        if expire_every:
            self._tasks.append(asyncio.create_task(self._expire(expire_every)))

    async def poll_once(self) -> list[Transition]:
        before = len(self.transitions)
        await self.on_result(await self.poller.poll_once())
        return [t for _, _, t in self.transitions[before:]]

    async def _expire(self, every: float) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(every)
            self._record(self.tracker.expire(utcnow()), "expire")

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.poller is not None:
            await self.poller.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def kinds(self, since: float = 0.0) -> list[tuple[str, str, str | None]]:
        return sorted((t.kind, t.alert.name, t.reason)
                      for at, _, t in self.transitions if at >= since)

    async def wait_for(self, predicate: Callable[[], bool], limit: float, what: str) -> float:
        began = time.monotonic()
        while time.monotonic() - began < limit:
            if predicate():
                return time.monotonic() - began
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {limit}s waiting for {what}; "
                             f"transitions: {self.kinds()}")

    async def wait_polls(self, n: int, limit: float = 30.0) -> None:
        target = len(self.polls) + n
        await self.wait_for(lambda: len(self.polls) >= target, limit, f"{n} polls")


@pytest.fixture
async def intake_factory():
    made: list[Intake] = []

    def make(**kwargs: Any) -> Intake:
        intake = Intake(**kwargs)
        made.append(intake)
        return intake

    yield make
    for intake in made:
        await intake.close()


async def post(am: Alertmanager, alerts: list[dict]) -> None:
    await asyncio.to_thread(am.post_alerts, alerts)


FIRING4 = sorted(("firing", n, None) for n in (
    "AvgCPUTimeOnIdleMode", "HighCpuOnVmAlert", "HighInodeUsage", "HighTrafficOnBridge"))
RESOLVE2 = {"HighInodeUsage", "AvgCPUTimeOnIdleMode"}


# -- must-show 1 ---------------------------------------------------------------

async def test_fire_resolve_two_silence_one_by_polling(alertmanager, intake_factory):
    interval = 1.0
    intake = intake_factory(interval=interval)
    await intake.poll([alertmanager.url])
    await intake.wait_polls(1)
    alerts = seed_alerts(utcnow() - dt.timedelta(minutes=1))
    await post(alertmanager, alerts)
    took = await intake.wait_for(lambda: len(intake.transitions) >= 4, 3 * interval,
                                 "4 firing")
    assert took <= interval + 0.5
    assert intake.kinds() == FIRING4
    for _, _, t in intake.transitions:
        assert t.alarm_id == alarm_id(CLUSTER, t.alert.fingerprint, t.alert.starts_at)

    mark = time.monotonic()
    await post(alertmanager, resolved(alerts, RESOLVE2))
    await asyncio.to_thread(alertmanager.add_silence, {"alertname": "HighTrafficOnBridge"})
    took = await intake.wait_for(lambda: len(intake.kinds(mark)) >= 3, 3 * interval,
                                 "2 resolved + 1 updated")
    assert took <= interval + 0.5
    await intake.wait_polls(3)  # and nothing else comes
    assert intake.kinds(mark) == [("resolved", "AvgCPUTimeOnIdleMode", "disappeared"),
                                  ("resolved", "HighInodeUsage", "disappeared"),
                                  ("updated", "HighTrafficOnBridge", None)]
    updated = next(t for _, _, t in intake.transitions if t.kind == "updated")
    assert len(updated.alert.silenced_by) == 1 and updated.alert.suppressed
    assert len(intake.transitions) == 7
    assert intake.tracker.tracked == 2


async def test_fire_resolve_two_silence_one_by_webhook(alertmanager_factory, intake_factory):
    interval = 4.0
    intake = intake_factory(interval=interval)
    webhook_url = await intake.listen()
    am = await asyncio.to_thread(alertmanager_factory, webhook_url=webhook_url)
    await intake.poll([am.url])
    await intake.wait_polls(1)
    alerts = seed_alerts(utcnow() - dt.timedelta(minutes=1))
    await post(am, alerts)
    took = await intake.wait_for(lambda: len(intake.transitions) >= 4, interval, "4 firing")
    assert intake.kinds() == FIRING4
    assert {path for _, path, _ in intake.transitions} == {"webhook"}
    assert took < interval  # faster than the poll

    mark = time.monotonic()
    await post(am, resolved(alerts, RESOLVE2))
    took = await intake.wait_for(lambda: len(intake.kinds(mark)) >= 2, interval, "2 resolved")
    assert took < interval
    await asyncio.to_thread(am.add_silence, {"alertname": "HighTrafficOnBridge"})
    await intake.wait_for(lambda: len(intake.kinds(mark)) >= 3, 2 * interval + 1, "updated")
    await intake.wait_polls(2)
    got = intake.kinds(mark)
    assert [k[:2] for k in got] == [("resolved", "AvgCPUTimeOnIdleMode"),
                                    ("resolved", "HighInodeUsage"),
                                    ("updated", "HighTrafficOnBridge")]
    # The delivery says "resolved"; a poll that ran between Alertmanager's resolve and its
    # notification may have seen the disappearance first: the same transition either way.
    assert {k[2] for k in got[:2]} <= {"resolved", "disappeared"}
    assert len(intake.transitions) == 7


# -- must-show 2 ---------------------------------------------------------------

async def test_outage_then_restart_empty(alertmanager, intake_factory):
    """Alertmanager is down for 3 polls and comes back empty. Prometheus (played here)
    re-sends the alerts still firing with the same startsAt, every resend period, with an
    endsAt LEAD ahead: those stay the same alarms. The two that ended meanwhile resolve
    once their last seen endsAt has passed: Alertmanager would have dropped them then."""
    interval, resend, lead = 1.0, 2.0, 8.0
    intake = intake_factory(interval=interval, expire_delay=1.0)
    await intake.poll([alertmanager.url], expire_every=interval)
    starts = utcnow() - dt.timedelta(minutes=1)

    def sends(names: set[str] | None = None) -> list[dict]:
        ends = utcnow() + dt.timedelta(seconds=lead)
        return [a for a in seed_alerts(starts, ends)
                if names is None or a["labels"]["alertname"] in names]

    await post(alertmanager, sends())
    await intake.wait_for(lambda: len(intake.transitions) >= 4, 3 * interval, "4 firing")
    await asyncio.sleep(resend)
    await post(alertmanager, sends())
    last_send = utcnow()
    await intake.wait_polls(1)
    assert intake.kinds() == FIRING4

    await asyncio.to_thread(alertmanager.kill)
    mark = time.monotonic()
    await asyncio.sleep(3 * interval)
    assert not intake.polls[-1].replicas[0].ok
    assert intake.kinds(mark) == []  # nothing during the outage

    await asyncio.to_thread(alertmanager.start)  # empty: Alertmanager keeps no alerts
    await intake.wait_for(lambda: intake.polls[-1].replicas[0].ok, 3 * interval, "AM up")
    keep = {"HighCpuOnVmAlert", "HighTrafficOnBridge"}
    last_ends = last_send + dt.timedelta(seconds=lead)
    while utcnow() < last_ends:
        await post(alertmanager, sends(keep))  # Prometheus re-sends (same startsAt)
        assert intake.kinds(mark) == []  # no resolve before the last endsAt, no duplicate
        await asyncio.sleep(resend)
    await intake.wait_for(lambda: len(intake.kinds(mark)) >= 2, 5 * interval,
                          "the two not re-sent to resolve")
    await post(alertmanager, sends(keep))
    await intake.wait_polls(2)
    assert intake.kinds(mark) == [("resolved", "AvgCPUTimeOnIdleMode", "expired"),
                                  ("resolved", "HighInodeUsage", "expired")]
    for _, _, t in intake.transitions:
        if t.kind == "resolved":  # ended when Alertmanager itself would have dropped it
            assert abs(t.alert.ends_at - last_ends) < dt.timedelta(seconds=2)
    assert intake.tracker.tracked == 2


# -- must-show 3 ---------------------------------------------------------------

async def test_cluster_alert_on_one_replica(alertmanager_cluster, intake_factory):
    one, two = alertmanager_cluster[0], alertmanager_cluster[1]
    intake = intake_factory(interval=1.0)
    await intake.poll(alertmanager_cluster.urls, run=False)
    alerts = seed_alerts(utcnow() - dt.timedelta(minutes=1))
    only, both = alerts[0], alerts[1]
    await post(one, [only])
    await post(one, [both])
    await post(two, [both])
    out = await intake.poll_once()
    assert sorted((t.kind, t.alert.name) for t in out) == sorted([
        ("firing", both["labels"]["alertname"]), ("firing", only["labels"]["alertname"])])
    for _ in range(3):
        assert await intake.poll_once() == []  # no duplicate
    await post(one, resolved([both], {both["labels"]["alertname"]}))
    assert await intake.poll_once() == []  # still on the second replica
    await post(two, resolved([both], {both["labels"]["alertname"]}))
    out = await intake.poll_once()
    assert [(t.kind, t.alert.name, t.reason) for t in out] == [
        ("resolved", both["labels"]["alertname"], "disappeared")]
    await post(one, resolved([only], {only["labels"]["alertname"]}))
    out = await intake.poll_once()
    assert [(t.kind, t.alert.name, t.reason) for t in out] == [
        ("resolved", only["labels"]["alertname"], "disappeared")]


async def test_cluster_replica_down_never_resolves(alertmanager_cluster, intake_factory):
    one, two = alertmanager_cluster[0], alertmanager_cluster[1]
    intake = intake_factory(interval=1.0)
    await intake.poll(alertmanager_cluster.urls, run=False)
    [alert] = seed_alerts(utcnow() - dt.timedelta(minutes=1))[:1]
    await post(one, [alert])
    await post(two, [alert])
    assert len(await intake.poll_once()) == 1
    await asyncio.to_thread(two.kill)
    await post(one, resolved([alert], {alert["labels"]["alertname"]}))
    for _ in range(2):
        assert await intake.poll_once() == []  # the replica that had it cannot answer


# -- must-show 4 ---------------------------------------------------------------

async def test_flap_between_polls_gives_two_alarm_ids(alertmanager, intake_factory):
    intake = intake_factory(interval=1.0)
    await intake.poll([alertmanager.url], run=False)
    [alert] = seed_alerts(utcnow() - dt.timedelta(minutes=2))[:1]
    await post(alertmanager, [alert])
    [first] = await intake.poll_once()
    await post(alertmanager, resolved([alert], {alert["labels"]["alertname"]}))
    await asyncio.sleep(0.2)
    again = dict(alert, startsAt=iso(utcnow()))
    again.pop("endsAt")
    await post(alertmanager, [again])
    out = await intake.poll_once()
    assert [(t.kind, t.reason) for t in out] == [("resolved", "resolved"), ("firing", None)]
    assert out[0].alarm_id == first.alarm_id
    assert out[1].alarm_id != first.alarm_id
    assert out[1].alert.fingerprint == first.alert.fingerprint
    assert await intake.poll_once() == []


# -- must-show 6 ---------------------------------------------------------------

async def test_webhook_edges_over_http(alertmanager_factory, intake_factory, tmp_path):
    intake = intake_factory(interval=30.0,
                            webhook=WebhookSettings(username="am", password="pw",
                                                    max_body_size=32 << 20))
    url = await intake.listen()
    auth = {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}
    delivery = json.loads((FIXTURES / "webhook_v4_deliveries.jsonl").read_text()
                          .splitlines()[0])
    async with aiohttp.ClientSession() as http:
        async def send(data: Any, headers: dict | None = None, raw: bytes | None = None):
            hdrs = {"Content-Type": "application/json", **auth, **(headers or {})}
            body = raw if raw is not None else json.dumps(data).encode()
            async with http.post(url, data=body, headers=hdrs) as resp:
                return resp.status

        assert await send(None, raw=b'{"version": "4", "alerts": [') == 400
        assert await send(dict(delivery, version="3")) == 400
        assert await send(None, raw=b" " * (33 << 20)) == 413
        assert await send(delivery, {"Authorization": "Basic " +
                                     base64.b64encode(b"am:wrong").decode()}) == 401
        half = copy.deepcopy(delivery)
        bad = copy.deepcopy(delivery["alerts"][0])
        bad["labels"] = {"alertname": "Other", "n": 1}
        half["alerts"] = [delivery["alerts"][0], bad]
        assert await send(half) == 400
        assert intake.tracker.tracked == 0 and intake.transitions == []  # nothing half-stored
        gone = copy.deepcopy(delivery)
        gone["alerts"][0].update(status="resolved", endsAt=iso(utcnow()))
        assert await send(gone) == 200  # resolved, never seen: harmless
        assert intake.transitions == []
        many = copy.deepcopy(delivery)
        template = delivery["alerts"][0]
        many["alerts"] = []
        for i in range(10_000):
            item = copy.deepcopy(template)
            item["labels"]["instance"] = f"10.0.{i // 256}.{i % 256}:9100"
            item["fingerprint"] = f"{i:016x}"
            many["alerts"].append(item)
        assert await send(many) == 200
        assert len(intake.transitions) == 10_000
        assert intake.tracker.tracked == 10_000
        assert await send(delivery) == 200  # still serving

    # A real Alertmanager with the wrong password: 401, dropped, nothing stored; then right.
    for password, expect in (("wrong", 0), ("pw", 1)):
        config = {
            "route": {"receiver": "relay", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "4h"},
            "receivers": [{"name": "relay", "webhook_configs": [{
                "url": url, "send_resolved": True,
                "http_config": {"basic_auth": {"username": "am", "password": password}}}]}]}
        am = await asyncio.to_thread(alertmanager_factory, config=config)
        alert = seed_alerts(utcnow() - dt.timedelta(minutes=1))[0]
        alert["labels"]["probe"] = password
        before = len(intake.transitions)
        await post(am, [alert])
        if expect:
            await intake.wait_for(lambda b=before: len(intake.transitions) > b, 10, "delivery")
        else:
            await asyncio.sleep(3)
        assert len(intake.transitions) - before == expect
