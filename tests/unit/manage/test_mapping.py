"""``alarm-relay-manage mapping validate|test``, run as the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.pipeline.conftest import ALERTMANAGER, SEED_MAPPING, schema_errors

SCRIPT = Path(sys.executable).with_name("alarm-relay-manage")

SEED_RESOURCES = {
    "HighCpuOnVmAlert": {"instance_name": "instance-00000004", "host_id": "135.248.18.109:9177"},
    "HighTrafficOnBridge": {"instance_name": "instance-00000004",
                            "host_id": "135.248.18.109:9177"},
    "AvgCPUTimeOnIdleMode": {"id": "135.248.18.109:9100"},
    "HighInodeUsage": {"id": "135.248.18.109:9100"},
}


def manage(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)]
    if config is not None:
        command += ["--config-file", str(config)]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=60,
                          check=False)


def test_validate_seed_file_exits_0():
    result = manage("mapping", "validate", str(SEED_MAPPING))
    assert result.returncode == 0, result.stderr
    assert "valid, 4 rules (4 indexed by alertname)" in result.stdout


def test_validate_invalid_file_exits_1_with_file_line_and_rule(tmp_path):
    path = tmp_path / "mappings.yaml"
    path.write_text("alerts:\n- alert:\n    key: {alertname: A}\n    resource:\n"
                    "      host_id: [instance]\n")
    result = manage("mapping", "validate", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{path}:5: rule 1: resource.host_id: resource value must be a label name" in (
        result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"alerts: [\n"])
def test_validate_junk_exits_1(tmp_path, content):
    path = tmp_path / "mappings.yaml"
    path.write_bytes(content)
    result = manage("mapping", "validate", str(path))
    assert result.returncode == 1 and result.stderr.startswith(f"invalid: {path}")
    assert "Traceback" not in result.stderr


def test_validate_defaults_to_the_configured_path(tmp_path):
    config = tmp_path / "alarm-relay.conf"
    config.write_text(f"[mapping]\npath = {SEED_MAPPING}\n")
    result = manage("mapping", "validate", config=config)
    assert result.returncode == 0, result.stderr
    assert str(SEED_MAPPING) in result.stdout


@pytest.mark.parametrize("alerts", ["api_v2_alerts_firing.json", "webhook_v4_deliveries.jsonl",
                                    "posted_firing.json"])
def test_test_json_gives_rule_resource_and_event(alerts):
    result = manage("mapping", "test", str(SEED_MAPPING), str(ALERTMANAGER / alerts), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines
    names = set()
    for line in lines:
        assert set(line) == {"rule", "resource", "event"}
        payload = line["event"]["payload"]
        assert not schema_errors(payload)
        assert line["resource"] == payload["resource"]
        assert line["resource"]["properties"] == SEED_RESOURCES[payload["name"]]
        assert line["rule"]["ref"] == payload["resource"]["rule"]
        assert line["event"]["event_type"] == f"alarm.{payload['status']}"
        names.add(payload["name"])
    assert names == set(SEED_RESOURCES)


def test_test_text_output_and_unmatched(tmp_path):
    mapping = tmp_path / "mappings.yaml"
    mapping.write_text("alerts:\n- name: cpu\n  key: {alertname: HighCpuOnVmAlert}\n"
                       "  type: instance\n  resource: {instance_name: domain}\n")
    result = manage("mapping", "test", str(mapping),
                    str(ALERTMANAGER / "api_v2_alerts_firing.json"))
    assert result.returncode == 0, result.stderr
    assert "HighCpuOnVmAlert {alertname=HighCpuOnVmAlert," in result.stdout
    assert "rule:     cpu (line 2)" in result.stdout
    assert "rule:     (none matched)" in result.stdout
    assert '"mapped": false' in result.stdout
    assert "event:    alarm.firing" in result.stdout


def test_test_with_drop_policy_shows_null_event(tmp_path):
    config = tmp_path / "alarm-relay.conf"
    config.write_text("[mapping]\nunmatched = drop\n")
    mapping = tmp_path / "mappings.yaml"
    mapping.write_text("alerts:\n- key: {alertname: HighCpuOnVmAlert}\n  resource: {id: domain}\n")
    result = manage("mapping", "test", str(mapping),
                    str(ALERTMANAGER / "api_v2_alerts_firing.json"), "--json", config=config)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event"] is None for line in lines].count(True) == len(lines) - 1
    assert all(line["rule"] is None for line in lines if line["event"] is None)


def test_test_bad_inputs_exit_1(tmp_path):
    bad_mapping = tmp_path / "bad.yaml"
    bad_mapping.write_text("alerts: 3\n")
    result = manage("mapping", "test", str(bad_mapping), str(ALERTMANAGER / "posted_firing.json"))
    assert result.returncode == 1 and "'alerts' must be a list" in result.stderr
    junk = tmp_path / "alerts.json"
    junk.write_text("{not json\n")
    result = manage("mapping", "test", str(SEED_MAPPING), str(junk))
    assert result.returncode == 1 and "line 1: not JSON" in result.stderr
    invalid = tmp_path / "invalid.json"
    good = json.loads((ALERTMANAGER / "api_v2_alerts_firing.json").read_text())
    invalid.write_text(json.dumps([{"labels": "nope"}, good[0]]))
    result = manage("mapping", "test", str(SEED_MAPPING), str(invalid), "--json")
    assert result.returncode == 1
    assert "invalid alert" in result.stderr and "[0]" in result.stderr
    assert len(result.stdout.splitlines()) == 1
    missing = manage("mapping", "test", str(SEED_MAPPING), str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "No such file" in missing.stderr
