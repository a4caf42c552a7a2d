"""The shipped alert rules for alarm-relay itself are valid and use real metric names."""

import pathlib
import re
import shutil
import subprocess

import yaml

from daemon import telemetry

ETC = pathlib.Path(__file__).resolve().parents[2] / "etc" / "alarm-relay"
RULES = ETC / "prometheus-rules.yaml"


def test_promtool_accepts_the_rules():
    # promtool comes with Debian's prometheus package, which `make test` installs.
    assert shutil.which("promtool"), "promtool missing: run `make services`"
    result = subprocess.run(["promtool", "check", "rules", str(RULES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_only_use_metrics_the_relay_exports():
    exported = set()
    for metric in telemetry.REGISTRY.collect():
        exported.add(metric.name)
        if metric.type == "counter":
            exported.add(metric.name + "_total")
        exported.update(sample.name for sample in metric.samples)
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    for rule in rules:
        for name in re.findall(r"alarm_relay_[a-z_]+", rule["expr"]):
            assert name in exported, f"{rule['alert']} uses unknown metric {name}"
