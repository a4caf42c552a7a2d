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
    assert by_name["coordination"].line == (
        "SKIP coordination: [coordination] backend_url is empty (a single relay)")
    assert by_name["ownership"].status == "SKIP"
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


async def test_coordination_unreachable_and_units_from_the_database(tmp_path,
                                                                   alertmanager_status):
    url, _ = alertmanager_status
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("alerts:\n- alert:\n    key: {alertname: A}\n    resource: {id: instance}\n")
    database = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    conf = _conf(tmp_path, url, mapping)
    # Port 9 refuses: the backend does not answer; the URL's password is never shown.
    conf.set_override("backend_url", "redis://:s3cret@127.0.0.1:9", group="coordination")
    conf.set_override("partitions", 2, group="coordination")
    conf.set_override("connection", database, group="database")
    import sqlalchemy as sa

    from daemon.store import migration, store_from_conf

    engine = sa.create_engine(database)
    migration.upgrade(engine)  # alarm-relay-manage db sync
    engine.dispose()
    store = store_from_conf(conf)
    store.open()
    store.claim("default/0", "ctl-1-42")
    store.claim("default/0", "ctl-2-43")
    store.close()
    results = {r.name: r for r in await check.run_checks(conf)}
    assert results["coordination"].status == "FAIL"
    assert "s3cret" not in results["coordination"].message
    # Without the members, the recorded owners are shown as they are.
    assert results["ownership"].line == (
        "FAIL ownership: default/0 -> ctl-2-43 (epoch 2); default/1 -> no one (epoch 0)"
        " -- the units without a live owner are taken over within [coordination] lease"
        " + check_interval; if not, check that a relay runs with the same backend_url"
        " and database")
