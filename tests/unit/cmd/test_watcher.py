"""``alarm-relay-watcher`` refuses to start on a bad configuration, with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.harness.relay import write_config

SCRIPT = Path(sys.executable).with_name("alarm-relay-watcher")


def run(tmp_path: Path, sections: dict) -> subprocess.CompletedProcess:
    base = {"DEFAULT": {"state_dir": tmp_path / "state",
                        "transport_url": "rabbit://guest:guest@127.0.0.1:1/"},
            "watcher_bridge": {"rules_path": tmp_path / "rules.yaml", "metrics_port": 0},
            "watcher_client": {"auth_mode": "noauth",
                               "endpoint_override": "http://127.0.0.1:1"}}
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
        for option in [k for k, v in values.items() if v is None]:
            del base[name][option]
    conf = write_config(tmp_path / "bridge.conf", base)
    return subprocess.run([str(SCRIPT), "--config-file", str(conf)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_an_invalid_rules_file_stops_it(tmp_path):
    (tmp_path / "rules.yaml").write_text("rules:\n- name: r\n  key: {alertname: X}\n")
    proc = run(tmp_path, {})
    assert proc.returncode == 1
    assert (f"alarm-relay-watcher: error: rules not loaded: {tmp_path / 'rules.yaml'}:2: "
            "rule 1: missing 'audit_template'") in proc.stderr


def test_noauth_needs_an_endpoint(tmp_path):
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    proc = run(tmp_path, {"watcher_client": {"endpoint_override": None}})
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "alarm-relay-watcher: error: [watcher_client] endpoint_override: required when "
        "auth_mode is noauth (there is no catalog to look in)")


def test_an_unreadable_rules_path_is_named(tmp_path):
    proc = run(tmp_path, {})
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"alarm-relay-watcher: error: [watcher_bridge] rules_path: {tmp_path / 'rules.yaml'} "
        "is not readable")
