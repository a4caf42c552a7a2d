"""Issue 6, must-show 3: ``alarm-relay-manage check`` (the real console script) against
real Keystone, Aetos (keystone mode), Prometheus, Alertmanager and the shared RabbitMQ."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.functional.datasources.conftest import (
    PROJECT,
    READER_PASSWORD,
    READER_USER,
    RELAY_PASSWORD,
    RELAY_USER,
    SHARED_MAPPING,
)
from tools.harness.services import Alertmanager, shared_transport_url

# Long: the first test of this package pays the metrics stack's start (Keystone
# bootstrap, 74 s measured here, more on a fresh machine).
pytestmark = pytest.mark.timeout(600)


MANAGE = Path(sys.executable).with_name("alarm-relay-manage")


@pytest.fixture(scope="module")
def alertmanager():
    with Alertmanager() as am:
        yield am


def write_conf(tmp_path, stack, alertmanager, *, user=RELAY_USER, password=RELAY_PASSWORD,
               metrics="aetos", mapping=SHARED_MAPPING, am_url=None):
    creds = stack.keystone.service_credentials(user, password, project=PROJECT)
    text = (
        "[DEFAULT]\n"
        f"transport_url = {shared_transport_url()}\n"
        "[alertmanager]\n"
        f"urls = {am_url or alertmanager.url}\n"
        "timeout = 3\n"
        "[mapping]\n"
        f"path = {mapping}\n"
        "[datasources]\n"
        f"metrics = {metrics}\n"
        "[aetos_client]\n"
        "interface = public\n"
        "region_name = RegionOne\n"
        "timeout = 20\n"
        "[prometheus_client]\n"
        "host = 127.0.0.1\n"
        f"port = {stack.prometheus.port}\n"
        "[service_credentials]\n"
        + "".join(f"{k} = {v}\n" for k, v in creds.items()))
    path = tmp_path / "relay.conf"
    path.write_text(text)
    return path


def check(path):
    proc = subprocess.run([str(MANAGE), "--config-file", str(path), "check"],
                          capture_output=True, text=True, timeout=180)
    lines = {}
    for line in proc.stdout.splitlines():
        status, _, rest = line.partition(" ")
        name, _, message = rest.partition(": ")
        lines[name] = (status, message)
    return proc.returncode, lines, proc.stdout + proc.stderr


def test_all_ok(stack, alertmanager, tmp_path):
    code, lines, out = check(write_conf(tmp_path, stack, alertmanager,
                                        metrics="aetos,prometheus"))
    assert code == 0, out
    for name in ("keystone", "catalog", "aetos-query", "aetos-role", "aetos-labels",
                 "prometheus-query", "prometheus-labels", f"alertmanager {alertmanager.url}",
                 "rabbitmq", "mapping"):
        assert lines[name][0] == "OK", out
    assert RELAY_PASSWORD not in out


def test_endpoint_removed(stack, alertmanager, tmp_path):
    for endpoint_id in stack.endpoints.values():
        stack.keystone.delete_endpoint(endpoint_id)
    try:
        code, lines, out = check(write_conf(tmp_path, stack, alertmanager))
    finally:
        stack.register_aetos()
    assert code == 1
    status, message = lines["catalog"]
    assert status == "FAIL"
    assert "Aetos service not registered in Keystone" in message
    assert "interface 'public'" in message and "region 'RegionOne'" in message
    assert lines["aetos-query"][0] == "SKIP"


def test_reader_only_account(stack, alertmanager, tmp_path):
    code, lines, out = check(write_conf(tmp_path, stack, alertmanager, user=READER_USER,
                                        password=READER_PASSWORD))
    assert code == 1, out
    assert lines["keystone"][0] == "OK"
    status, message = lines["aetos-role"]
    assert status == "FAIL"
    assert "admin or service role on a project-scoped token" in message


def test_bad_password(stack, alertmanager, tmp_path):
    code, lines, out = check(write_conf(tmp_path, stack, alertmanager, password="wrong"))
    assert code == 1
    status, message = lines["keystone"]
    assert status == "FAIL"
    assert "401 Unauthorized" in message and "[service_credentials]" in message
    assert "wrong" not in out


def test_prometheus_only_skips_aetos_and_reports_other_faults(stack, alertmanager, tmp_path):
    bad_mapping = tmp_path / "bad.yaml"
    bad_mapping.write_text("alerts: [1, 2\n")
    code, lines, out = check(write_conf(tmp_path, stack, alertmanager, metrics="prometheus",
                                        mapping=bad_mapping, am_url="http://127.0.0.1:9"))
    assert code == 1
    for name in ("keystone", "catalog", "aetos-query"):
        assert lines[name][0] == "SKIP"
    assert lines["prometheus-query"][0] == "OK"
    assert lines["alertmanager http://127.0.0.1:9"][0] == "FAIL"
    assert lines["mapping"][0] == "FAIL"
    assert all(" -- " in m for s, m in lines.values() if s == "FAIL"), out
