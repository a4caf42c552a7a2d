"""Tests of daemon/manage/check.py without Keystone or Aetos (those run in
tests/functional/datasources/test_check.py against real services)."""

from __future__ import annotations

import pytest
from aiohttp import web
from oslo_config import cfg

from daemon import conf as relay_conf
from daemon.manage import check


@pytest.fixture
async def alertmanager_status():
    """A loopback stand-in for GET /api/v2/status; ``state['cluster']`` sets the status."""
    state = {"cluster": "ready"}

    async def status(request):
        return web.json_response({"cluster": {"status": state["cluster"], "peers": [{}, {}]},
                                  "versionInfo": {"version": "0.25.0"}})

    app = web.Application()
    app.router.add_get("/api/v2/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", state
    await runner.cleanup()


def _conf(tmp_path, am_url, mapping):
    path = tmp_path / "relay.conf"
    path.write_text(
        "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:9/\n"
        f"[alertmanager]\nurls = {am_url}\ntimeout = 2\n"
        f"[mapping]\npath = {mapping}\n")
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    relay_conf.set_defaults(conf)
    conf(["--config-file", str(path)], default_config_files=[])
    return conf


async def test_lines_skips_and_failures(tmp_path, alertmanager_status):
    url, state = alertmanager_status
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("alerts:\n- alert:\n    key: {alertname: A}\n    resource: {id: instance}\n")
    lines = []
    results = await check.run_checks(_conf(tmp_path, url, mapping), out=lines.append)
    by_name = {r.name: r for r in results}
    assert [r.line for r in results] == lines
    for name in ("keystone", "catalog", "aetos-query", "prometheus-query"):
        assert by_name[name].status == "SKIP"
    assert by_name[f"alertmanager {url}"].status == "OK"
    assert "cluster ready, 2 peers" in by_name[f"alertmanager {url}"].message
    assert by_name["mapping"].status == "OK"
    assert by_name["rabbitmq"].status == "FAIL"
    assert " -- check [DEFAULT] transport_url" in by_name["rabbitmq"].message
    assert "guest:guest" not in by_name["rabbitmq"].message

    state["cluster"] = "settling"
    (tmp_path / "mapping.yaml").write_text("alerts: [")
    results = await check.run_checks(_conf(tmp_path, url, mapping))
    by_name = {r.name: r for r in results}
    assert by_name[f"alertmanager {url}"].line.startswith(
        f"FAIL alertmanager {url}: cluster status is 'settling' -- ")
    assert by_name["mapping"].status == "FAIL"


def test_exit_code(monkeypatch):
    async def fake(conf, out=None):
        found = [check.Check("OK", "a", "fine"), check.Check("SKIP", "b", "n/a")]
        for c in found:
            out(c.line)
        return found

    monkeypatch.setattr(check, "run_checks", fake)
    printed = []
    assert check.run(None, out=printed.append) == 0
    assert printed == ["OK a: fine", "SKIP b: n/a"]

    async def failing(conf, out=None):
        return [check.Check("FAIL", "a", "bad -- fix it")]

    monkeypatch.setattr(check, "run_checks", failing)
    assert check.run(None, out=printed.append) == 1
