"""The bridge's rules file: the mapping's matching language, templated parameters, errors."""

from __future__ import annotations

import textwrap

import pytest

from daemon.exception import WatcherRulesError
from daemon.watcher.rules import ParameterError, load_rules, parse_rules

RULES = """\
rules:
- name: host-load
  key:
    alertname: HighHostLoad
    job: {"!=": test}
  severity: {"=~": "critical|major"}
  resource_type: host
  audit_template: host-load-audit
  parameters:
    host: "{resource.id}"
    alarm: "{name} on {labels.instance}"
    nested: {list: ["{resource.properties.host_fqdn}", 3], flag: true}
  cooldown: 120
- name: anything
  key: {alertname: {present: true}}
  audit_template: 6f2b1c9e-0d4a-4e7b-9a51-3c2e8f1d7a10
"""


def event(**overrides):
    payload = {
        "event_id": "e1", "alarm_id": "a1", "sequence": 1, "name": "HighHostLoad",
        "severity": "critical", "fingerprint": "0123456789abcdef",
        "labels": {"alertname": "HighHostLoad", "job": "node", "instance": "10.0.0.5:9100"},
        "resource": {"type": "host", "id": "compute-1.example.org",
                     "properties": {"host_fqdn": "compute-1.example.org"}, "mapped": True},
    }
    payload.update(overrides)
    return payload


def error_of(text: str) -> str:
    with pytest.raises(WatcherRulesError) as info:
        parse_rules(textwrap.dedent(text), source="rules.yaml")
    return str(info.value)


def test_a_rule_has_every_part():
    first, second = parse_rules(RULES, source="rules.yaml")
    assert (first.index, first.line, first.name) == (1, 2, "host-load")
    assert first.audit_template == "host-load-audit" and first.cooldown == 120.0
    assert (second.name, second.cooldown, second.parameters) == ("anything", None, {})


def test_matching_on_labels_severity_and_resource_type():
    rule = parse_rules(RULES)[0]
    assert rule.matches(event())
    assert rule.matches(event(severity="major"))
    assert not rule.matches(event(severity="warning"))
    assert not rule.matches(event(labels={"alertname": "HighHostLoad", "job": "test"}))
    assert not rule.matches(event(labels={"alertname": "Other"}))
    assert not rule.matches(event(resource={"type": "instance", "id": "x"}))
    assert not rule.matches(event(resource={"type": None, "mapped": False}))


def test_an_unmapped_alarm_has_the_empty_resource_type():
    [rule] = parse_rules("rules:\n- name: r\n  key: {alertname: X}\n  resource_type: ''\n"
                         "  audit_template: t\n")
    assert rule.matches(event(labels={"alertname": "X"}, resource={"mapped": False}))
    assert not rule.matches(event(labels={"alertname": "X"}))


def test_parameters_are_templated_from_labels_and_resource():
    rule = parse_rules(RULES)[0]
    assert rule.render_parameters(event()) == {
        "host": "compute-1.example.org",
        "alarm": "HighHostLoad on 10.0.0.5:9100",
        "nested": {"list": ["compute-1.example.org", 3], "flag": True},
    }


def test_a_placeholder_without_a_value_is_a_parameter_error():
    rule = parse_rules(RULES)[0]
    with pytest.raises(ParameterError, match=r"\{resource.id\} has no value for alarm a1"):
        rule.render_parameters(event(resource={"type": "host", "id": None, "properties": {}}))


def test_any_utf8_label_name_in_a_placeholder():
    [rule] = parse_rules("rules:\n- name: r\n  key: {service.name: checkout}\n"
                         "  audit_template: t\n  parameters: {svc: '{labels.service.name}',"
                         " ns: '{labels.k8s.namespace.name}/x'}\n")
    labels = {"service.name": "checkout", "k8s.namespace.name": "shop"}
    assert rule.matches(event(labels=labels))
    assert rule.render_parameters(event(labels=labels)) == {"svc": "checkout", "ns": "shop/x"}
    assert error_of("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n"
                    "  parameters: {a: '{labels. job}'}\n").endswith(
        "parameters.a: {labels. job}: blanks around the label name")


def test_literal_braces_stay():
    [rule] = parse_rules("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n"
                         "  parameters: {expr: 'up{job=\"node\"} == 0', text: '{ not one }'}\n")
    assert rule.render_parameters(event()) == {"expr": 'up{job="node"} == 0',
                                               "text": "{ not one }"}


def test_load_rules_reads_a_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    assert [r.name for r in load_rules(path)] == ["host-load", "anything"]
    assert load_rules(_write(tmp_path, "rules: []\n")) == ()


def _write(tmp_path, text):
    path = tmp_path / "other.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("", "rules.yaml: file is empty; it must contain 'rules:'"),
    ("alerts: []\n", "rules.yaml:1: unknown key 'alerts' in the file (allowed: rules)"),
    ("rules: {}\n", "rules.yaml:1: 'rules' must be a list of rules"),
    ("rules:\n- key: {alertname: X}\n  audit_template: t\n",
     "rules.yaml:2: rule 1: missing 'name'"),
    ("rules:\n- name: r\n  audit_template: t\n", "rules.yaml:2: rule 1: missing 'key'"),
    ("rules:\n- name: r\n  key: {alertname: X}\n",
     "rules.yaml:2: rule 1: missing 'audit_template'"),
    ("rules:\n- name: r\n  key: {}\n  audit_template: t\n",
     "rules.yaml:3: rule 1: 'key' must name at least one label"),
    ("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n  cooldwn: 3\n",
     "rules.yaml:5: rule 1: unknown key 'cooldwn' in a rule"),
    ("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n  cooldown: -1\n",
     "rules.yaml:5: rule 1: 'cooldown' must be 0 or more seconds"),
    ("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n  cooldown: soon\n",
     "rules.yaml:5: rule 1: 'cooldown' must be a number of seconds"),
    ("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n"
     "  severity: {'=~': '(crit'}\n",
     "rules.yaml:5: rule 1: severity.=~: invalid regular expression '(crit'"),
    ("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n"
     "  parameters: {host: '{resource.uuid}'}\n",
     "rules.yaml:5: rule 1: parameters.host: {resource.uuid}: unknown placeholder"),
    ("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: t\n"
     "- name: r\n  key: {alertname: Y}\n  audit_template: t\n",
     "rules.yaml:5: rule 2: duplicate rule name 'r' (also rule 1)"),
    ("rules:\n- name: 'has space'\n  key: {alertname: X}\n  audit_template: t\n",
     "rules.yaml:2: rule 1: 'name' 'has space' must be 1 to 40 letters"),
    ("rules:\n- name: r\n  name: s\n  key: {alertname: X}\n  audit_template: t\n",
     "rules.yaml:3: rule 1: duplicate key 'name' in a rule (first on line 2)"),
    ("rules:\n- name: r\n  key: {alertname: X}\n  audit_template: '  '\n",
     "rules.yaml:4: rule 1: 'audit_template' must not be empty"),
    ("rules: [\n", "rules.yaml:2: invalid YAML"),
])
def test_errors_name_file_line_and_rule(text, message):
    assert error_of(text).startswith(message)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(WatcherRulesError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")


def test_a_file_over_the_limit_is_refused_unread(tmp_path):
    path = _write(tmp_path, "rules: []\n" + "#" * 2000)
    with pytest.raises(WatcherRulesError, match="larger than the limit of 1000 bytes"):
        load_rules(path, max_size=1000)
