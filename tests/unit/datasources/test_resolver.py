"""Tests of daemon/datasources/resolver.py with in-memory backends.

The functional tests run the same resolver against real Prometheus and Aetos;
here the backends are fakes so collisions, caching, back-off and deadlines can
be driven exactly.
"""

import asyncio
import re

import pytest
from oslo_config import cfg

from daemon import conf as relay_conf
from daemon import telemetry
from daemon.datasources import build_resolver
from daemon.datasources.aetos import AetosDatasource
from daemon.datasources.base import Datasource, QueryRejected, QueryResult, Sample
from daemon.datasources.prometheus import PrometheusDatasource
from daemon.datasources.resolver import (
    DatasourceResolver,
    ResolverSettings,
)
from daemon.exception import DatasourceError
from daemon.pipeline.resolution import ResolveRequest


class FakeBackend(Datasource):
    """Series in memory; ``query`` understands the selectors the resolver sends."""

    def __init__(self, name="fake", series=(), *, fail=None, delay=0.0, values=None):
        super().__init__(timeout=1)
        self.NAME = name
        self.series_list = [dict(s) for s in series]
        self.fail = fail
        self.delay = delay
        self.values = values or {}
        self.queries = []
        self.started = False

    async def start(self):
        self.started = True

    async def close(self):
        self.started = False

    async def _base_url(self):
        return "http://fake"

    async def query(self, promql, *, time=None):
        self.queries.append(promql)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise self.fail
        if promql in self.values:
            value = self.values[promql]
            samples = () if value is None else (Sample({}, 1.0, value),)
            return QueryResult("vector", vector=samples)
        match = re.fullmatch(r"([a-z_]*)\{(.*)\}", promql)
        if not match:
            raise QueryRejected(backend=self.NAME, problem=f"bad query {promql}")
        name, body = match.groups()
        matchers = re.findall(r'([a-z_]+)(=|!=)"((?:[^"\\]|\\.)*)"', body)
        out = []
        for labels in self.series_list:
            if name and labels.get("__name__") != name:
                continue
            if all((labels.get(k, "") == v) == (op == "=") for k, op, v in matchers):
                out.append(Sample(labels, 1.0, 1.0))
        return QueryResult("vector", vector=tuple(out))

    async def label_values(self, name, match=()):
        if self.fail:
            raise self.fail
        return sorted({s[name] for s in self.series_list if s.get(name)})


NODE = [
    {"__name__": "up", "instance": "10.0.0.5:9100", "fqdn": "compute-1.a.example"},
    {"__name__": "up", "instance": "10.0.0.6:9100", "fqdn": "compute-2.a.example"},
    {"__name__": "up", "instance": "10.0.0.7:9100", "fqdn": "compute-2.b.example"},
    {"__name__": "up", "instance": "10.0.0.8:9100", "fqdn": "compute-3.a.example"},
    {"__name__": "up", "instance": "10.0.0.8:9100", "fqdn": "compute-3.b.example"},
    {"__name__": "libvirt_domain_info", "instance": "10.0.0.5:9177",
     "domain": "instance-00000004", "resource": "0b9f9a7c-uuid-a"},
    {"__name__": "libvirt_domain_info", "instance": "10.0.0.6:9177",
     "domain": "instance-00000004", "resource": "1c8e8b6d-uuid-b"},
]


def _host(value, queries=None):
    return ResolveRequest("host", {"host_id": value}, {"instance": value}, queries or {})


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def test_host_from_instance_label():
    backend = FakeBackend(series=NODE)
    async with DatasourceResolver([backend]) as resolver:
        res = await resolver.resolve(_host("10.0.0.5:9100"))
    assert res.resource_id == "compute-1.a.example"
    assert res.properties == {"host_fqdn": "compute-1.a.example"}
    assert res.errors == ()
    assert backend.queries == ['up{instance="10.0.0.5:9100",fqdn!=""}']


@pytest.mark.parametrize("value,expected", [
    ("compute-1", "compute-1.a.example"),
    ("compute-1.a.example", "compute-1.a.example"),
    ("compute-1.a", "compute-1.a.example"),
    ("compute-1:9100", "compute-1.a.example"),
])
async def test_host_short_name(value, expected):
    async with DatasourceResolver([FakeBackend(series=NODE)]) as resolver:
        res = await resolver.resolve(_host(value))
    assert res.properties.get("host_fqdn") == expected, res.errors


async def test_short_name_collision_is_reported_not_guessed():
    async with DatasourceResolver([FakeBackend(series=NODE)]) as resolver:
        res = await resolver.resolve(_host("compute-2"))
    assert res.resource_id is None
    assert res.properties == {}
    assert len(res.errors) == 1
    assert "collision" in res.errors[0]
    assert "compute-2.a.example, compute-2.b.example" in res.errors[0]


async def test_instance_collision_is_reported():
    async with DatasourceResolver([FakeBackend(series=NODE)]) as resolver:
        res = await resolver.resolve(_host("10.0.0.8:9100"))
    assert res.properties == {}
    assert "collision" in res.errors[0] and "compute-3.b.example" in res.errors[0]


async def test_ip_never_short_matches_and_miss_says_why():
    async with DatasourceResolver([FakeBackend(series=NODE)]) as resolver:
        res = await resolver.resolve(_host("10.0.0.99:9100"))
    assert res.properties == {}
    assert "no current series with instance=\"10.0.0.99:9100\" carries label fqdn" in res.errors[0]


async def test_instance_uuid_scoped_by_exporter():
    async with DatasourceResolver([FakeBackend(series=NODE)]) as resolver:
        req = ResolveRequest("instance", {"instance_name": "instance-00000004"},
                             {"instance": "10.0.0.6:9177", "domain": "instance-00000004"})
        res = await resolver.resolve(req)
        assert res.resource_id == "1c8e8b6d-uuid-b"
        unscoped = ResolveRequest("instance", {"instance_name": "instance-00000004"},
                                  {"domain": "instance-00000004"})
        res = await resolver.resolve(unscoped)
    assert res.resource_id is None
    assert "collision" in res.errors[0] and "2 values of resource" in res.errors[0]


async def test_seed_rule_resolves_both():
    req = ResolveRequest(None, {"instance_name": "instance-00000004", "host_id": "10.0.0.5:9100"},
                         {"instance": "10.0.0.5:9177", "domain": "instance-00000004"})
    async with DatasourceResolver([FakeBackend(series=NODE)]) as resolver:
        res = await resolver.resolve(req)
    assert res.properties == {"host_fqdn": "compute-1.a.example",
                              "instance_uuid": "0b9f9a7c-uuid-a"}
    assert res.resource_id == "0b9f9a7c-uuid-a"


async def test_nothing_to_do():
    backend = FakeBackend(series=NODE)
    async with DatasourceResolver([backend]) as resolver:
        res = await resolver.resolve(ResolveRequest("service", {"x": "y"}, {"a": "b"}))
    assert res == type(res)()
    assert backend.queries == []


async def test_enrichment_uses_escaped_labels_and_resolved_properties():
    backend = FakeBackend(series=NODE, values={
        'node_load1{instance="10.0.0.5:9100"}': 0.0,
        'up{fqdn="compute-1.a.example"}': 1.0,
        'nothing{instance="10.0.0.5:9100"}': None,
    })
    queries = {"load": 'node_load1{instance="{instance}"}',
               "up": 'up{fqdn="{host_fqdn}"}',
               "none": 'nothing{instance="{instance}"}',
               "missing": 'x{a="{nolabel}"}'}
    async with DatasourceResolver([backend]) as resolver:
        res = await resolver.resolve(_host("10.0.0.5:9100", queries))
    assert res.metrics == {"load": 0.0, "up": 1.0, "none": None, "missing": None}
    assert any("metrics.none: no data" in e for e in res.errors)
    assert any("metrics.missing:" in e and "nolabel" in e for e in res.errors)


async def test_cache_hits_misses_and_ttls():
    clock = Clock()
    backend = FakeBackend(series=NODE)
    settings = ResolverSettings(cache_ttl=100, negative_cache_ttl=10)
    async with DatasourceResolver([backend], settings=settings, clock=clock) as resolver:
        await resolver.resolve(_host("10.0.0.5:9100"))
        await resolver.resolve(_host("10.0.0.5:9100"))
        assert len(backend.queries) == 1
        await resolver.resolve(_host("10.0.0.99:9100"))
        await resolver.resolve(_host("10.0.0.99:9100"))
        assert len(backend.queries) == 2
        clock.now += 11   # negative entry expired, positive not
        await resolver.resolve(_host("10.0.0.5:9100"))
        await resolver.resolve(_host("10.0.0.99:9100"))
        assert len(backend.queries) == 3
        clock.now += 100
        await resolver.resolve(_host("10.0.0.5:9100"))
        assert len(backend.queries) == 4


async def test_concurrent_requests_share_one_lookup():
    backend = FakeBackend(series=NODE, delay=0.05)
    async with DatasourceResolver([backend]) as resolver:
        results = await asyncio.gather(*(resolver.resolve(_host("10.0.0.5:9100"))
                                         for _ in range(20)))
    assert {r.resource_id for r in results} == {"compute-1.a.example"}
    assert len(backend.queries) == 1


async def test_refresh_once_renews_due_entries():
    clock = Clock()
    backend = FakeBackend(series=NODE)
    settings = ResolverSettings(cache_ttl=100, negative_cache_ttl=10, refresh_interval=30)
    async with DatasourceResolver([backend], settings=settings, clock=clock) as resolver:
        await resolver.resolve(_host("10.0.0.5:9100"))
        assert await resolver.refresh_once() == 0
        clock.now += 80   # expires within the next refresh interval
        backend.series_list[0]["fqdn"] = "renamed.a.example"
        assert await resolver.refresh_once() == 1
        res = await resolver.resolve(_host("10.0.0.5:9100"))
        assert res.resource_id == "renamed.a.example"
        assert len(backend.queries) == 2


async def test_first_backend_that_answers_wins_and_failures_back_off():
    clock = Clock()
    down = FakeBackend("aetos", fail=DatasourceError(backend="aetos", problem="cannot reach x"))
    up = FakeBackend("prometheus", series=NODE)
    settings = ResolverSettings(failure_backoff=10, negative_cache_ttl=0)
    before = telemetry.RESOLVER_FAILURES.labels(backend="aetos")._value.get()
    async with DatasourceResolver([down, up], settings=settings, clock=clock) as resolver:
        res = await resolver.resolve(_host("10.0.0.5:9100"))
        assert res.resource_id == "compute-1.a.example"
        await resolver.resolve(_host("10.0.0.6:9100"))
        assert len(down.queries) == 1          # backing off
        clock.now += 11
        await resolver.resolve(_host("10.0.0.7:9100"))
        assert len(down.queries) == 2
    assert telemetry.RESOLVER_FAILURES.labels(backend="aetos")._value.get() == before + 2


async def test_an_empty_answer_is_an_answer():
    first = FakeBackend("aetos", series=[])
    second = FakeBackend("prometheus", series=NODE)
    async with DatasourceResolver([first, second]) as resolver:
        res = await resolver.resolve(_host("10.0.0.5:9100"))
    assert res.resource_id is None
    assert second.queries == []


async def test_all_backends_failing_gives_reasons():
    failing = [FakeBackend(n, fail=DatasourceError(backend=n, problem="down")) for n in
               ("aetos", "prometheus")]
    async with DatasourceResolver(failing) as resolver:
        res = await resolver.resolve(_host("10.0.0.5:9100"))
    assert res.errors == ("host_fqdn: aetos: down; prometheus: down",)


async def test_deadline_is_honoured_and_late_lookup_fills_cache():
    backend = FakeBackend(series=NODE, delay=2.0)
    settings = ResolverSettings(resolve_timeout=0.1)
    async with DatasourceResolver([backend], settings=settings) as resolver:
        loop = asyncio.get_running_loop()
        started = loop.time()
        res = await resolver.resolve(_host("10.0.0.5:9100", {"q": 'up{instance="{instance}"}'}))
        # Returned at its deadline, long before the 2 s lookup (wide bound for CI load).
        assert loop.time() - started < 1.5
        assert res.resource_id is None
        assert any("host_fqdn: no answer within 0.1s" in e for e in res.errors)
        assert res.metrics == {"q": None}
        await asyncio.sleep(2.5)
        res = await resolver.resolve(_host("10.0.0.5:9100"))
        assert res.resource_id == "compute-1.a.example"


async def test_resolve_never_raises():
    class Broken(FakeBackend):
        async def query(self, promql, *, time=None):
            raise RuntimeError("boom")

    async with DatasourceResolver([Broken()]) as resolver:
        res = await resolver.resolve(_host("10.0.0.5:9100"))
    assert res.resource_id is None
    assert any("boom" in e for e in res.errors)


async def test_background_task_via_factory_and_close():
    created = []

    def factory(coro):
        task = asyncio.get_running_loop().create_task(coro)
        created.append(task)
        return task

    backend = FakeBackend(series=NODE)
    resolver = DatasourceResolver([backend])
    await resolver.start(task_factory=factory)
    assert backend.started and len(created) == 1
    await resolver.close()
    await resolver.close()
    assert created[0].cancelled() and not backend.started


def test_settings_checked():
    with pytest.raises(ValueError):
        ResolverSettings(cache_ttl=10, negative_cache_ttl=20)
    with pytest.raises(ValueError):
        ResolverSettings(resolve_timeout=0)


def _conf(tmp_path, **groups):
    # A file, not set_override: oslo.config keeps overrides in the shared
    # module-level OptGroup objects, so they would leak into the next test.
    lines = []
    for group, values in groups.items():
        lines.append(f"[{group}]")
        for key, value in values.items():
            value = ",".join(value) if isinstance(value, list) else value
            lines.append(f"{key} = {value}")
    path = tmp_path / "relay.conf"
    path.write_text("\n".join(lines) + "\n")
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    conf(["--config-file", str(path)], default_config_files=[])
    return conf


def test_build_resolver_none_when_no_datasource(tmp_path):
    assert build_resolver(_conf(tmp_path)) is None


def test_build_resolver_in_order(tmp_path):
    conf = _conf(tmp_path, datasources={"metrics": ["prometheus", "aetos", "prometheus"],
                              "resolve_timeout": 1.5},
                 aetos_client={"endpoint_override": "http://127.0.0.1:1",
                               "fqdn_label": "host_name"},
                 prometheus_client={"host": "::1", "port": 9999, "path_prefix": "/prom/",
                                    "username": "u", "password": "p", "use_tls": "false"})
    resolver = build_resolver(conf)
    assert [type(b) for b in resolver.backends] == [PrometheusDatasource, AetosDatasource]
    assert resolver.backends[0].url == "http://[::1]:9999/prom"
    assert resolver.backends[1].fqdn_label == "host_name"
    assert resolver.settings.resolve_timeout == 1.5


def test_noauth_needs_endpoint_override(tmp_path):
    conf = _conf(tmp_path, datasources={"metrics": ["aetos"]}, aetos_client={"auth_mode": "noauth"})
    with pytest.raises(DatasourceError, match="endpoint_override"):
        build_resolver(conf)
