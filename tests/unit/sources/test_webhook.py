"""The webhook receiver, through aiohttp's test client."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemon import telemetry
from daemon.exception import ConfigError, OutboxFull
from daemon.sources.webhook import WebhookReceiver, WebhookSettings
from tests.unit.conftest import deliveries


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[list, str, str]] = []
        self.fail: BaseException | None = None

    async def __call__(self, alerts, source_url, cluster):
        if self.fail is not None:
            raise self.fail
        self.calls.append((alerts, source_url, cluster))


async def client_for(settings: WebhookSettings, sink: Sink) -> TestClient:
    app = web.Application(client_max_size=settings.max_body_size)
    WebhookReceiver(settings=settings, on_alerts=sink).add_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest.fixture
async def plain():
    sink = Sink()
    client = await client_for(WebhookSettings(max_body_size=1 << 20), sink)
    yield client, sink
    await client.close()


def body(**changes):
    data = copy.deepcopy(deliveries()[0])
    data.update(changes)
    return data


async def test_fixture_deliveries_accepted(plain):
    client, sink = plain
    for delivery in deliveries():
        resp = await client.post("/v1/alerts", json=delivery)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["alerts"] == len(delivery["alerts"])
    assert len(sink.calls) == 6
    assert all(url == "http://vm:19093" for _, url, _ in sink.calls)
    assert sink.calls[-1][0][0].status == "resolved"


async def test_malformed_json(plain):
    client, sink = plain
    resp = await client.post("/v1/alerts", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "not JSON" in (await resp.json())["error"]
    assert sink.calls == []


@pytest.mark.parametrize("data, where", [
    (body(version="3"), "version"),
    (body(alerts={}), "alerts"),
    (body(truncatedAlerts="0"), "truncatedAlerts"),
    (body(externalURL=3), "externalURL"),
    ([1, 2], "$"),
])
async def test_bad_envelope(plain, data, where):
    client, sink = plain
    resp = await client.post("/v1/alerts", json=data)
    assert resp.status == 400
    assert (await resp.json())["where"] == where
    assert sink.calls == []


async def test_one_bad_alert_rejects_whole_body(plain):
    client, sink = plain
    data = body()
    good = data["alerts"][0]
    bad = copy.deepcopy(good)
    bad["labels"]["job"] = 1
    data["alerts"] = [good, good, good, bad]
    before = telemetry.ALERTS_INVALID.labels(stage="webhook")._value.get()
    resp = await client.post("/v1/alerts", json=data)
    assert resp.status == 400
    error = await resp.json()
    assert error["where"] == "alerts[3].labels.job"
    assert error["error"] == "alerts[3].labels.job must be a string"
    assert sink.calls == []
    assert telemetry.ALERTS_INVALID.labels(stage="webhook")._value.get() == before + 1


async def test_wrong_content_type(plain):
    client, _ = plain
    resp = await client.post("/v1/alerts", data=json.dumps(body()),
                             headers={"Content-Type": "text/plain"})
    assert resp.status == 415


async def test_oversized_body():
    sink = Sink()
    client = await client_for(WebhookSettings(max_body_size=2048), sink)
    try:
        data = body()
        data["alerts"] = data["alerts"] * 20
        resp = await client.post("/v1/alerts", json=data)
        assert resp.status == 413
        # chunked, without Content-Length

        async def gen():
            yield json.dumps(data).encode()
        resp = await client.post("/v1/alerts", data=gen(),
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 413
        assert sink.calls == []
    finally:
        await client.close()


async def test_ten_thousand_alerts(plain):
    client, sink = plain
    await client.close()
    sink = Sink()
    client = await client_for(WebhookSettings(max_body_size=64 << 20), sink)
    try:
        template = body()["alerts"][0]
        alerts = []
        for i in range(10_000):
            a = copy.deepcopy(template)
            a["labels"]["instance"] = f"host-{i}"
            a["fingerprint"] = f"{i:016x}"
            alerts.append(a)
        resp = await client.post("/v1/alerts", json=body(alerts=alerts))
        assert resp.status == 200
        assert len(sink.calls[0][0]) == 10_000
        assert len({a.fingerprint for a in sink.calls[0][0]}) == 10_000
    finally:
        await client.close()


async def test_outbox_full_is_503_other_failure_500(plain):
    client, sink = plain
    sink.fail = OutboxFull(depth=10, limit=10)
    resp = await client.post("/v1/alerts", json=body())
    assert resp.status == 503
    sink.fail = RuntimeError("disk on fire")
    resp = await client.post("/v1/alerts", json=body())
    assert resp.status == 500
    sink.fail = None
    resp = await client.post("/v1/alerts", json=body())
    assert resp.status == 200


async def test_basic_auth():
    sink = Sink()
    client = await client_for(WebhookSettings(username="am", password="s3cret"), sink)
    try:
        resp = await client.post("/v1/alerts", json=body())
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
        wrong = base64.b64encode(b"am:nope").decode()
        resp = await client.post("/v1/alerts", json=body(),
                                 headers={"Authorization": f"Basic {wrong}"})
        assert resp.status == 401
        assert "nope" not in await resp.text()
        resp = await client.post("/v1/alerts", json=body(),
                                 headers={"Authorization": "Basic !!!"})
        assert resp.status == 401
        right = base64.b64encode(b"am:s3cret").decode()
        resp = await client.post("/v1/alerts", json=body(),
                                 headers={"Authorization": f"Basic {right}"})
        assert resp.status == 200
    finally:
        await client.close()


async def test_bearer_token_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-1\n")
    sink = Sink()
    client = await client_for(WebhookSettings(bearer_token_file=str(token)), sink)
    try:
        resp = await client.post("/v1/alerts", json=body(),
                                 headers={"Authorization": "Bearer tok-2"})
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        resp = await client.post("/v1/alerts", json=body(),
                                 headers={"Authorization": "Bearer tok-1"})
        assert resp.status == 200
        token.write_text("tok-2")
        import os
        os.utime(token, (1, 1))
        resp = await client.post("/v1/alerts", json=body(),
                                 headers={"Authorization": "Bearer tok-2"})
        assert resp.status == 200
    finally:
        await client.close()


async def test_requests_counted(plain):
    client, _ = plain
    before = telemetry.WEBHOOK_REQUESTS.labels(code="400")._value.get()
    await client.post("/v1/alerts", json=body(version="5"))
    assert telemetry.WEBHOOK_REQUESTS.labels(code="400")._value.get() == before + 1


def test_settings_checks():
    with pytest.raises(ConfigError):
        WebhookSettings(username="a")
    with pytest.raises(ConfigError):
        WebhookSettings(username="a", password="b", bearer_token_file="/x")
    assert "s3cret" not in repr(WebhookSettings(username="a", password="s3cret"))


async def test_one_route_per_cluster():
    sink = Sink()
    app = web.Application()
    WebhookReceiver(settings=WebhookSettings(), on_alerts=sink,
                    clusters=("east", "west")).add_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        resp = await client.post("/v1/alerts/west", json=body())
        assert resp.status == 200
        assert sink.calls[-1][2] == "west"
        resp = await client.post("/v1/alerts/east", json=body())
        assert resp.status == 200
        assert sink.calls[-1][2] == "east"
        # Which cluster a delivery belongs to cannot be guessed: refused, not misfiled.
        resp = await client.post("/v1/alerts", json=body())
        assert resp.status == 404
        assert "post to /v1/alerts/<cluster>, one of east, west" in (await resp.json())["error"]
        resp = await client.post("/v1/alerts/north", json=body())
        assert resp.status == 404
        assert "unknown Alertmanager cluster 'north'" in (await resp.json())["error"]
        assert len(sink.calls) == 2
    finally:
        await client.close()


async def test_the_only_cluster_answers_on_both_routes(plain):
    client, sink = plain
    assert (await client.post("/v1/alerts", json=body())).status == 200
    assert (await client.post("/v1/alerts/default", json=body())).status == 200
    assert [call[2] for call in sink.calls] == ["default", "default"]
