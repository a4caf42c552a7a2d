"""docs/watcher.md's configuration and rules examples are valid as written."""

from __future__ import annotations

import re
from pathlib import Path

from daemon import conf as relay_conf
from daemon.watcher.rules import load_rules, parse_rules

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "watcher.md"
SAMPLE = REPO / "etc" / "alarm-relay" / "watcher-rules.yaml"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.M | re.S)


def test_the_configuration_example_loads_and_validates(tmp_path):
    [ini] = blocks("ini")
    text = (ini.replace("/var/lib/alarm-relay", str(tmp_path / "state"))
               .replace("/etc/alarm-relay/watcher-rules.yaml", str(SAMPLE)))
    path = tmp_path / "alarm-relay.conf"
    path.write_text(text)
    conf = relay_conf.prepare(["--config-file", str(path)])
    relay_conf.validate_watcher_bridge(conf)
    assert conf.watcher_bridge.pool == "watcher-bridge"
    assert conf.watcher_bridge.default_cooldown == 600
    assert conf.watcher_client.interface == "internal"
    assert conf.watcher_client.api_version == "1.4"
    assert conf.service_credentials.auth_type == "password"


def test_the_rules_example_is_the_sample_file():
    [rules] = [block for block in blocks("yaml") if block.startswith("rules:")]
    documented = parse_rules(rules, source="docs/watcher.md")
    shipped = load_rules(SAMPLE)
    assert [(r.name, r.audit_template, dict(r.parameters), r.cooldown) for r in documented] \
        == [(r.name, r.audit_template, dict(r.parameters), r.cooldown) for r in shipped]
