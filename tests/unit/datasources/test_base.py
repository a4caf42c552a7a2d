"""Tests of daemon/datasources/base.py: result types and error shapes.

The error shapes are what Prometheus 2.x, Aetos 3.0 (both of its
``error_message`` forms) and keystonemiddleware answer; the functional tests
meet the real ones.  Here a loopback aiohttp server replays them, and also
what no real server does on demand (a hang, garbage, a 401 then a 200).
"""

import asyncio
import json
import math

import pytest
from aiohttp import web

from daemon.datasources.base import Datasource, QueryRejected, QueryResult, Sample
from daemon.exception import DatasourceError


class _Backend(Datasource):
    NAME = "test"

    def __init__(self, url, *, reauth=False, **kwargs):
        super().__init__(**kwargs)
        self.url = url
        self.reauth = reauth
        self.reauths = 0
        self.token = "t1"

    async def _base_url(self):
        return self.url

    async def _headers(self):
        return {"X-Auth-Token": self.token}

    async def _reauthenticate(self):
        if not self.reauth:
            return False
        self.reauths += 1
        self.token = "t2"
        return True


@pytest.fixture
async def server():
    """A loopback server answering with ``answers[path]`` = (status, body) or a callable."""
    answers = {}
    seen = []

    async def handle(request):
        seen.append(request)
        answer = answers[request.path]
        if callable(answer):
            return await answer(request)
        status, body = answer
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", answers, seen
    await runner.cleanup()


def _ok(data):
    return 200, {"status": "success", "data": data}


@pytest.mark.parametrize("data,kind,value", [
    ({"resultType": "vector", "result": [
        {"metric": {"a": "1"}, "value": [1.5, "0"]}]}, "vector", 0.0),
    ({"resultType": "scalar", "result": [1.5, "0"]}, "scalar", 0.0),
    ({"resultType": "string", "result": [1.5, "hello"]}, "string", "hello"),
    ({"resultType": "vector", "result": []}, "vector", None),
    ({"resultType": "scalar", "result": [1.5, "NaN"]}, "scalar", "NaN"),
    ({"resultType": "scalar", "result": [1.5, "+Inf"]}, "scalar", "+Inf"),
])
def test_parse_result_types(data, kind, value):
    result = QueryResult.parse(data)
    assert result.result_type == kind
    assert result.json_value() == value
    assert result.empty is (value is None)


def test_zero_is_a_value_not_no_data():
    result = QueryResult.parse({"resultType": "vector", "result": [
        {"metric": {}, "value": [1, "0"]}]})
    assert not result.empty
    assert result.vector[0].value == 0.0
    assert result.json_value() == 0.0


def test_parse_matrix_and_multi_vector():
    matrix = QueryResult.parse({"resultType": "matrix", "result": [
        {"metric": {"a": "1"}, "values": [[1, "1"], [2, "2"]]}]})
    assert matrix.matrix[0].values == ((1.0, 1.0), (2.0, 2.0))
    assert matrix.json_value() == [{"labels": {"a": "1"}, "values": [[1.0, 1.0], [2.0, 2.0]]}]
    vector = QueryResult.parse({"resultType": "vector", "result": [
        {"metric": {"a": "1"}, "value": [1, "1"]}, {"metric": {"a": "2"}, "value": [1, "2"]}]})
    assert vector.json_value() == [{"labels": {"a": "1"}, "value": 1.0},
                                   {"labels": {"a": "2"}, "value": 2.0}]


@pytest.mark.parametrize("data", [
    None, [], {"resultType": "weird", "result": []},
    {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]},
    {"resultType": "string", "result": "x"},
])
def test_parse_rejects(data):
    with pytest.raises((ValueError, KeyError, TypeError)):
        QueryResult.parse(data)


def test_sample_nan():
    assert math.isnan(Sample({}, 0, float("nan")).value)
    assert Sample({}, 0, float("-inf")).json_value() == "-Inf"


async def test_query_labels_series(server):
    url, answers, seen = server
    answers["/api/v1/query"] = _ok({"resultType": "vector", "result": [
        {"metric": {"fqdn": "h"}, "value": [1, "3"]}]})
    answers["/api/v1/labels"] = _ok(["__name__", "fqdn"])
    answers["/api/v1/label/fqdn/values"] = _ok(["a", "b"])
    answers["/api/v1/series"] = _ok([{"__name__": "up", "fqdn": "a"}])
    async with _Backend(url, timeout=2) as backend:
        result = await backend.query('up{a="b"}', time=12.5)
        assert result.vector[0].labels == {"fqdn": "h"}
        assert await backend.labels() == ["__name__", "fqdn"]
        assert await backend.label_values("fqdn", match=["up"]) == ["a", "b"]
        assert await backend.series(["up", "node_load1"]) == [{"__name__": "up", "fqdn": "a"}]
    assert seen[0].query["query"] == 'up{a="b"}'
    assert seen[0].query["time"] == "12.5"
    assert seen[0].headers["X-Auth-Token"] == "t1"
    assert seen[2].query.getall("match[]") == ["up"]
    assert seen[3].query.getall("match[]") == ["up", "node_load1"]


async def test_label_values_of_a_utf8_label_name_use_prometheus_3_escaping(server):
    # Issue 13: /api/v1/label/<name>/values takes a name outside the classic charset in
    # Prometheus 3's value encoding (U__ prefix, other characters as _<hex>_).
    url, answers, seen = server
    answers["/api/v1/label/U__host_2e_name/values"] = _ok(["w-1.example.org"])
    answers["/api/v1/label/U__a__b_2f_c/values"] = _ok(["x"])
    answers["/api/v1/label/U___31_x/values"] = _ok(["y"])
    async with _Backend(url, timeout=2) as backend:
        assert await backend.label_values("host.name") == ["w-1.example.org"]
        assert await backend.label_values("a_b/c") == ["x"]
        assert await backend.label_values("1x") == ["y"]
    assert [r.path for r in seen] == ["/api/v1/label/U__host_2e_name/values",
                                      "/api/v1/label/U__a__b_2f_c/values",
                                      "/api/v1/label/U___31_x/values"]


@pytest.mark.parametrize("status,body,expected,kind", [
    (400, {"status": "error", "errorType": "bad_data", "error": "parse error"},
     "HTTP 400: bad_data: parse error", QueryRejected),
    (403, {"error_message": {"faultcode": "Client",
                             "faultstring": "RBAC Authorization Failed",
                             "debuginfo": None}},
     "403 Forbidden (RBAC Authorization Failed)", DatasourceError),
    (400, {"error_message": '[400] invalid parameter "match[]": parse error'},
     'HTTP 400: [400] invalid parameter "match[]": parse error', QueryRejected),
    (401, {"error": {"code": 401, "title": "Unauthorized",
                     "message": "The request you have made requires authentication."}},
     "401 Unauthorized (The request you have made requires authentication.)", DatasourceError),
    (502, "<html>bad gateway</html>", "HTTP 502: <html>bad gateway</html>", DatasourceError),
    (200, {"status": "error", "error": "odd"}, "unexpected answer: odd", DatasourceError),
    (200, "not json", "unexpected answer: not json", DatasourceError),
])
async def test_error_shapes(server, status, body, expected, kind):
    url, answers, _ = server
    answers["/api/v1/query"] = (status, body)
    async with _Backend(url, timeout=2) as backend:
        with pytest.raises(DatasourceError) as err:
            await backend.query("up")
    assert type(err.value) is kind
    assert expected in str(err.value)
    assert str(err.value).startswith("test: ")


async def test_401_reauthenticates_once(server):
    url, answers, seen = server

    async def handler(request):
        if request.headers["X-Auth-Token"] == "t2":
            return web.json_response({"status": "success", "data": ["x"]})
        return web.json_response({"error": {"message": "expired"}}, status=401)

    answers["/api/v1/labels"] = handler
    async with _Backend(url, reauth=True, timeout=2) as backend:
        assert await backend.labels() == ["x"]
        assert backend.reauths == 1
    assert [r.headers["X-Auth-Token"] for r in seen] == ["t1", "t2"]


async def test_401_twice_is_an_error(server):
    url, answers, seen = server
    answers["/api/v1/labels"] = (401, {"error": {"message": "no"}})
    async with _Backend(url, reauth=True, timeout=2) as backend:
        with pytest.raises(DatasourceError, match="401 Unauthorized"):
            await backend.labels()
        assert backend.reauths == 1
    assert len(seen) == 2


async def test_timeout_and_unreachable(server):
    url, answers, _ = server

    async def hang(request):
        await asyncio.sleep(1.5)
        return web.json_response({})

    answers["/api/v1/query"] = hang
    async with _Backend(url, timeout=0.3) as backend:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DatasourceError, match="no answer from .* within 0.3s"):
            await backend.query("up")
        assert loop.time() - started < 2
    async with _Backend("http://127.0.0.1:9", timeout=1) as backend:
        with pytest.raises(DatasourceError, match="cannot reach"):
            await backend.query("up")


async def test_not_started_and_close_twice():
    backend = _Backend("http://127.0.0.1:9", timeout=1)
    with pytest.raises(DatasourceError, match="not started"):
        await backend.labels()
    await backend.start()
    await backend.close()
    await backend.close()


async def test_concurrency_is_bounded(server):
    url, answers, _ = server
    active = 0
    peak = 0

    async def slow(request):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return web.json_response({"status": "success", "data": []})

    answers["/api/v1/labels"] = slow
    async with _Backend(url, timeout=5, max_concurrency=2) as backend:
        await asyncio.gather(*(backend.labels() for _ in range(8)))
    assert peak == 2
