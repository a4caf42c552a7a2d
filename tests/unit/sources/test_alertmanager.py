"""The poller against a scripted HTTP server (edges a real Alertmanager cannot be made to
produce: 5xx, 429, garbage, hangs). Real Alertmanager runs in tests/functional/sources."""

from __future__ import annotations

import asyncio
import copy
import email.utils
import itertools
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from daemon import telemetry
from daemon.exception import ConfigError
from daemon.sources.alertmanager import (
    AlertmanagerPoller,
    PollerSettings,
    clock_offset,
    display_url,
    json_array_items,
)
from tests.unit.conftest import load


class FakeAM:
    def __init__(self, prefix: str = "") -> None:
        self.alerts = load("api_v2_alerts_firing.json")
        # per request: int status, float seconds of delay, "hang", "garbage", or None
        self.script: list = []
        self.requests: list[web.Request] = []
        self.uptime = "2026-11-21T21:59:00.000Z"
        self.prefix = prefix

    async def alerts_handler(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else None
        if step == "hang":
            await asyncio.sleep(30)
        if isinstance(step, float):
            await asyncio.sleep(step)
            step = None
        if step == "garbage":
            return web.Response(body=b"[{", content_type="application/json")
        if step == "object":
            return web.json_response({"alerts": []})
        if isinstance(step, int):
            return web.Response(status=step)
        return web.json_response(self.alerts)

    async def status_handler(self, request: web.Request) -> web.Response:
        return web.json_response({"uptime": self.uptime, "cluster": {"status": "ready"}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.prefix + "/api/v2/alerts", self.alerts_handler)
        app.router.add_get(self.prefix + "/api/v2/status", self.status_handler)
        return app


@pytest.fixture
async def fake():
    am = FakeAM(prefix="/am")
    server = TestServer(am.app(), host="127.0.0.1", port=0)
    await server.start_server()
    am.url = f"http://127.0.0.1:{server.port}/am"
    yield am
    await server.close()


async def make(urls, **settings) -> tuple[AlertmanagerPoller, list]:
    results: list = []

    async def on_result(result):
        results.append(result)

    settings.setdefault("poll_interval", 2.0)
    settings.setdefault("timeout", 1.0)
    poller = AlertmanagerPoller(cluster="c", urls=urls, settings=PollerSettings(**settings),
                                on_result=on_result)
    await poller.start()
    return poller, results


async def test_poll_once_parses_and_sends_explicit_params(fake):
    poller, _ = await make([fake.url], filters=("job=\"libvirt\"",), receiver="relay")
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
    [replica] = result.replicas
    assert replica.ok and replica.error is None
    assert replica.url == fake.url
    assert replica.uptime == fake.uptime and replica.cluster_status == "ready"
    assert {a.fingerprint for a in replica.alerts} == {o["fingerprint"] for o in fake.alerts}
    query = fake.requests[0].query
    for name in ("active", "silenced", "inhibited", "unprocessed"):
        assert query[name] == "true"
    assert query.getall("filter") == ['job="libvirt"']
    assert query["receiver"] == "relay"
    assert result.complete and result.started_at <= result.finished_at


async def test_retries_5xx_and_429_then_succeeds(fake):
    fake.script = [503, 429, 500]
    poller, _ = await make([fake.url])
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
    assert result.replicas[0].ok
    assert len(fake.requests) == 4


@pytest.mark.parametrize("step, error", [
    (404, "HTTP 404"), ("garbage", "not JSON"), ("object", "not a JSON list")])
async def test_fatal_answers_fail_the_replica_without_retry(fake, step, error):
    fake.script = [step]
    poller, _ = await make([fake.url])
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
    assert result.replicas[0].alerts is None
    assert error in result.replicas[0].error
    assert len(fake.requests) == 1
    assert not result.complete


async def test_persistent_5xx_bounded_by_interval(fake):
    fake.script = [500] * 1000
    poller, _ = await make([fake.url], poll_interval=1.0, timeout=0.5, retry_max_wait=0.2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
    assert loop.time() - began < 1.5
    assert result.replicas[0].alerts is None and "500" in result.replicas[0].error


async def test_hang_times_out(fake):
    fake.script = ["hang"] * 10
    poller, _ = await make([fake.url], poll_interval=0.8, timeout=0.3)
    before = telemetry.POLLS.labels(url=fake.url, outcome="failure")._value.get()
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
    assert result.replicas[0].alerts is None
    assert telemetry.POLLS.labels(url=fake.url, outcome="failure")._value.get() == before + 1


async def test_unreachable_replica_and_one_that_answers(fake):
    poller, _ = await make([fake.url, "http://127.0.0.1:1"], poll_interval=1.0, timeout=0.3)
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
    ok, down = result.replicas
    assert ok.ok and not down.ok and down.uptime is None
    assert not result.complete


async def test_invalid_alerts_skipped_and_reported_present(fake):
    bad = copy.deepcopy(fake.alerts[0])
    bad["startsAt"] = "never"
    fake.alerts = [bad] + fake.alerts[1:]
    poller, _ = await make([fake.url])
    before = telemetry.ALERTS_INVALID.labels(stage="poll")._value.get()
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
    replica = result.replicas[0]
    assert len(replica.alerts) == 3
    assert replica.invalid == frozenset({bad["fingerprint"]})
    assert telemetry.ALERTS_INVALID.labels(stage="poll")._value.get() == before + 1


async def test_basic_auth_and_bearer(fake, tmp_path):
    poller, _ = await make([fake.url], username="u", password="p")
    try:
        await poller.poll_once()
    finally:
        await poller.close()
    assert fake.requests[-1].headers["Authorization"].startswith("Basic ")
    token = tmp_path / "t"
    token.write_text("tok\n")
    poller, _ = await make([fake.url], bearer_token_file=str(token))
    try:
        await poller.poll_once()
    finally:
        await poller.close()
    assert fake.requests[-1].headers["Authorization"] == "Bearer tok"


async def test_run_polls_until_stopped_and_poll_now_wakes(fake):
    poller, results = await make([fake.url], poll_interval=30.0, min_poll_gap=0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        for _ in range(100):
            if results:
                break
            await asyncio.sleep(0.02)
        assert len(results) == 1
        poller.poll_now()
        for _ in range(100):
            if len(results) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(results) == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
        await poller.close()


async def run_for(poller, seconds: float, **run_kwargs) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop, **run_kwargs))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)
    await poller.close()


async def test_run_survives_failing_on_result(fake):
    calls = []

    async def on_result(result):
        calls.append(result)
        raise RuntimeError("boom")

    poller = AlertmanagerPoller(cluster="c", urls=[fake.url],
                                settings=PollerSettings(poll_interval=0.05, poll_jitter=0,
                                                        min_poll_gap=0),
                                on_result=on_result)
    await run_for(poller, 0.4)
    assert len(calls) >= 2


async def test_interval_runs_from_the_start_of_each_cycle(fake):
    # Each answer takes 0.4 s and the interval is 0.6 s: cycles start 0.6 s apart,
    # not 1.0 s (interval after the end of the previous cycle).
    fake.script = [0.4] * 20
    poller, results = await make([fake.url], poll_interval=0.6, poll_jitter=0.0,
                                 timeout=2.0, min_poll_gap=0.0)
    await run_for(poller, 3.2)
    starts = [r.started_at.timestamp() for r in results]
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    assert len(gaps) >= 3, gaps
    assert gaps[len(gaps) // 2] < 0.8, gaps


async def test_polls_wait_while_the_publisher_has_a_backlog(fake, caplog):
    # A 0.1 s interval makes about 15 polls in 1.5 s; with a backlog only the
    # first is made (it is never held: readiness needs an answer).
    poller, results = await make([fake.url], poll_interval=0.1, poll_jitter=0.0,
                                 min_poll_gap=0.0)
    waited = telemetry.POLL_WAIT.labels(cluster="c")
    before = waited._value.get()
    caplog.set_level("INFO", logger="daemon.sources.alertmanager")
    await run_for(poller, 1.5, backlog=lambda: "5 events wait", backlog_max_wait=30.0)
    assert len(results) == 1
    assert waited._value.get() - before > 1.0
    waits = [r.getMessage() for r in caplog.records if "wait while 5 events wait" in r.getMessage()]
    assert len(waits) == 1, waits


async def test_polls_resume_when_the_backlog_is_gone(fake, caplog):
    poller, results = await make([fake.url], poll_interval=0.1, poll_jitter=0.0,
                                 min_poll_gap=0.0)
    loop = asyncio.get_running_loop()
    clears_at = loop.time() + 0.6
    caplog.set_level("INFO", logger="daemon.sources.alertmanager")
    await run_for(poller, 1.6,
                  backlog=lambda: "busy" if loop.time() < clears_at else None,
                  backlog_max_wait=30.0)
    starts = [r.started_at.timestamp() for r in results]
    # One poll, a wait of about 0.6 s, then one every 0.1 s again.
    assert starts[1] - starts[0] >= 0.5, starts
    assert len(results) >= 5, starts
    assert any("are back to every 0.1 s" in r.getMessage() for r in caplog.records)


async def test_backlog_wait_is_bounded(fake):
    # A backlog that never clears (the broker is down) slows polls to one per
    # backlog_max_wait, never stops them.
    poller, results = await make([fake.url], poll_interval=0.1, poll_jitter=0.0,
                                 min_poll_gap=0.0)
    await run_for(poller, 1.7, backlog=lambda: "busy", backlog_max_wait=0.5)
    assert 3 <= len(results) <= 5, [r.started_at for r in results]


def test_display_url_hides_credentials():
    assert display_url("http://user:secret@am:9093/prefix/") == "http://am:9093/prefix"
    assert display_url("https://am:9093") == "https://am:9093"


def test_settings_and_constructor_checks():
    with pytest.raises(ConfigError):
        PollerSettings(username="u", bearer_token_file="/t")
    with pytest.raises(ConfigError):
        PollerSettings(poll_jitter=1.5)
    with pytest.raises(ConfigError):
        AlertmanagerPoller(cluster="c", urls=[], settings=PollerSettings(),
                           on_result=None)
    with pytest.raises(ConfigError):
        AlertmanagerPoller(cluster="c", urls=["http://a", "http://a/"],
                           settings=PollerSettings(), on_result=None)
    assert "pw" not in repr(PollerSettings(username="u", password="pw"))


def test_from_conf():
    from oslo_config import cfg

    from daemon import conf as relay_conf
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    conf([], project="alarm-relay", default_config_files=[])
    conf.set_override("urls", ["http://a:9093", "http://b:9093"], group="alertmanager")
    poller = AlertmanagerPoller.from_conf(conf, on_result=None)
    assert poller.urls == ("http://a:9093", "http://b:9093")
    assert poller.settings.replica_labels == ("replica", "prometheus_replica")
    json.dumps(poller._params)


def _date(at: float) -> str:
    return email.utils.formatdate(at, usegmt=True)


@pytest.mark.parametrize(("server_ahead", "exchange", "expected"), [
    (0.0, 0.05, 0.0),          # same clock, fast answer
    (0.0, 12.0, 0.0),          # same clock, a slow answer is no skew
    (600.0, 0.05, 600.0),      # ten minutes ahead
    (600.0, 12.0, 600.0),      # ahead, slow answer stamped as it ends
    (-600.0, 0.05, -599.0),    # behind
    (3.0, 0.05, 3.0),
])
def test_clock_offset_is_the_smallest_difference_the_date_proves(server_ahead, exchange, expected):
    sent = 1_800_000_000.0
    answered = sent + exchange
    # The worst case for a slow answer: the server stamps Date just before its headers leave.
    stamp = int(answered - 0.001 + server_ahead)
    offset = clock_offset(_date(stamp), sent, answered)
    assert offset == pytest.approx(expected, abs=1.01)
    if server_ahead == 0.0:
        assert offset == 0.0


def test_clock_offset_without_a_readable_date():
    assert clock_offset(None, 1.0, 2.0) is None
    assert clock_offset("yesterday", 1.0, 2.0) is None
# -- decoding the alert list one item at a time ------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
_BLANK = st.text(alphabet=" \t\n\r", max_size=2)


@given(st.lists(_JSON, max_size=6), _BLANK, _BLANK, _BLANK,
       st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_json_array_items_gives_what_json_loads_gives(items, before, inside, after, encoding):
    body = (before + "[" + inside + ("," + inside).join(json.dumps(i) for i in items)
            + inside + "]" + after).encode(encoding)
    assert list(json_array_items(body)) == json.loads(body)


def test_json_array_items_takes_a_utf8_bom_as_json_loads_does():
    assert list(json_array_items(b"\xef\xbb\xbf[1, {}]")) == [1, {}]


@pytest.mark.parametrize("body", [
    b"", b"{}", b'"x"', b"[", b"[{", b"[1,]", b"[1 2]", b"[1]x", b"[1],", b"[,1]", b"[1,,2]",
    b"[1] [2]", b"[NaN"])
def test_json_array_items_refuses_what_json_loads_refuses(body):
    with pytest.raises(ValueError):
        list(json_array_items(body))
    with pytest.raises(ValueError):
        if type(json.loads(body)) is not list:
            raise ValueError("not a list")
