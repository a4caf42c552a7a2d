"""Issue 6, must-show 1, 2, 4 and 5: resolution against real Prometheus, Aetos and Keystone."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from oslo_config import cfg

from daemon import conf as relay_conf
from daemon.datasources import build_resolver
from daemon.pipeline.resolution import ResolveRequest
from tests.functional.datasources.conftest import (
    DOMAIN,
    FQDN,
    PROJECT,
    READER_PASSWORD,
    READER_USER,
    RELAY_PASSWORD,
    RELAY_USER,
    UUID,
)

# Long: the first test of this package pays the metrics stack's start (Keystone
# bootstrap, 74 s measured here, more on a fresh machine).
pytestmark = pytest.mark.timeout(600)


QUERIES = {"load1": 'node_load1{instance="{instance}"}',
           "up": 'up{fqdn="{host_fqdn}"}',
           "domain_info": 'libvirt_domain_info{resource="{instance_uuid}"}'}


def make_conf(tmp_path, sections):
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in options.items()]
    path = tmp_path / "relay.conf"
    path.write_text("\n".join(lines) + "\n")
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    conf(["--config-file", str(path)], default_config_files=[])
    return conf


def request_for(stack):
    """The seed's HighCpuOnVmAlert rule: instance_name from domain, host_id from instance."""
    instance = stack.exporter.address
    return ResolveRequest(
        resource_type="instance",
        properties={"instance_name": DOMAIN, "host_id": instance},
        labels={"alertname": "HighCpuOnVmAlert", "job": "node", "instance": instance,
                "domain": DOMAIN},
        queries=QUERIES)


def noauth(stack):
    return {"datasources": {"metrics": "aetos"},
            "aetos_client": {"auth_mode": "noauth", "endpoint_override": stack.aetos.url}}


def keystone_mode(stack, user=RELAY_USER, password=RELAY_PASSWORD, **aetos_client):
    creds = stack.keystone.service_credentials(user, password, project=PROJECT)
    # A cold start (token, catalog, Aetos validating the token with Keystone) takes
    # seconds on this machine; the deadline is not what these tests are about.
    return {"datasources": {"metrics": "aetos", "resolve_timeout": 30},
            "aetos_client": {"interface": "public", "region_name": "RegionOne", "timeout": 30,
                             **aetos_client},
            "service_credentials": creds}


async def resolve(conf, request):
    resolver = build_resolver(conf)
    await resolver.start()
    try:
        began = time.monotonic()
        result = await resolver.resolve(request)
        return result, time.monotonic() - began
    finally:
        await resolver.close()


def assert_resolved(result):
    assert result.errors == ()
    assert result.resource_id == UUID
    assert result.properties == {"host_fqdn": FQDN, "instance_uuid": UUID}
    assert isinstance(result.metrics["load1"], float)
    assert result.metrics["up"] == 1.0
    assert result.metrics["domain_info"] == 1.0


async def test_aetos_noauth_resolves_fqdn_uuid_and_enriches(stack, tmp_path):
    result, _ = await resolve(make_conf(tmp_path, noauth(stack)), request_for(stack))
    assert_resolved(result)


async def test_prometheus_gives_the_same_resolution_as_aetos(stack, tmp_path):
    via_aetos, _ = await resolve(make_conf(tmp_path, noauth(stack)), request_for(stack))
    conf = make_conf(tmp_path, {"datasources": {"metrics": "prometheus"},
                                "prometheus_client": {"host": "127.0.0.1",
                                                      "port": stack.prometheus.port}})
    via_prometheus, _ = await resolve(conf, request_for(stack))
    assert_resolved(via_prometheus)
    assert via_prometheus.properties == via_aetos.properties
    assert via_prometheus.resource_id == via_aetos.resource_id


async def test_keystone_catalog_token_and_resolution(stack, tmp_path):
    result, _ = await resolve(make_conf(tmp_path, keystone_mode(stack)), request_for(stack))
    assert_resolved(result)


async def test_keystone_endpoint_removed_gives_the_seed_error(stack, tmp_path):
    for endpoint_id in stack.endpoints.values():
        stack.keystone.delete_endpoint(endpoint_id)
    try:
        conf = make_conf(tmp_path, keystone_mode(stack))
        result, _ = await resolve(conf, request_for(stack))
    finally:
        stack.register_aetos()
    assert result.properties == {}
    assert any("Aetos service not registered in Keystone" in e
               and "interface 'public'" in e and "region 'RegionOne'" in e
               for e in result.errors), result.errors


async def test_keystone_wrong_interface_names_it(stack, tmp_path):
    conf = make_conf(tmp_path, keystone_mode(stack, interface="internal"))
    result, _ = await resolve(conf, request_for(stack))
    assert any("Aetos service not registered in Keystone" in e and "'internal'" in e
               for e in result.errors), result.errors


async def test_keystone_reader_gets_filtered_result_guidance(stack, tmp_path):
    conf = make_conf(tmp_path, keystone_mode(stack, READER_USER, READER_PASSWORD))
    result, _ = await resolve(conf, request_for(stack))
    assert result.properties == {}
    text = " ".join(result.errors)
    assert "needs the admin or service role on a project-scoped token" in text
    assert "roles" in text and "reader" in text


async def test_keystone_bad_password_gives_401_guidance(stack, tmp_path):
    conf = make_conf(tmp_path, keystone_mode(stack, password="wrong"))
    result, _ = await resolve(conf, request_for(stack))
    assert result.properties == {}
    text = " ".join(result.errors)
    assert "401 Unauthorized" in text and "[service_credentials]" in text
    assert "wrong" not in text


async def test_aetos_down_returns_unresolved_fast(stack, tmp_path):
    from tools.harness.services import Aetos

    down = Aetos(prometheus=stack.prometheus)
    down.start()
    url = down.url
    down.close()
    sections = {"datasources": {"metrics": "aetos", "resolve_timeout": 2},
                "aetos_client": {"auth_mode": "noauth", "endpoint_override": url}}
    result, took = await resolve(make_conf(tmp_path, sections), request_for(stack))
    assert took < 2.5
    assert result.properties == {}
    assert any("cannot reach" in e for e in result.errors), result.errors


@pytest.fixture
async def slow_server():
    """A loopback server that never answers in time: no real server can be made slow."""
    async def hang(request):
        await asyncio.sleep(30)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_slow_aetos_honours_the_deadline_and_falls_back(stack, tmp_path, slow_server):
    sections = {"datasources": {"metrics": "aetos", "resolve_timeout": 1},
                "aetos_client": {"auth_mode": "noauth", "endpoint_override": slow_server,
                                 "timeout": 10}}
    conf = make_conf(tmp_path, sections)
    resolver = build_resolver(conf)
    await resolver.start()
    try:
        loop = asyncio.get_running_loop()
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        began = loop.time()
        results = await asyncio.gather(*(resolver.resolve(request_for(stack))
                                         for _ in range(10)))
        took = loop.time() - began
        tick_task.cancel()
    finally:
        await resolver.close()
    assert took < 1.5
    assert ticks >= 10          # the loop kept running meanwhile
    for result in results:
        assert result.properties == {}
        assert any("no answer within 1s" in e for e in result.errors)

    # Rolling back to Prometheus behind a slow Aetos is a config change: order matters.
    sections["datasources"]["metrics"] = "prometheus,aetos"
    sections["prometheus_client"] = {"host": "127.0.0.1", "port": stack.prometheus.port}
    result, _ = await resolve(make_conf(tmp_path, sections), request_for(stack))
    assert_resolved(result)
