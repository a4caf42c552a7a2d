"""The rule model: conditions and their regex memo, a rule's reference, shared hot-path data."""

from __future__ import annotations

from daemon.pipeline.mapping import Condition, Rule
from daemon.pipeline.mapping.rules import PropertySpec
from tests.unit.pipeline.mapping.conftest import parse


def test_regex_results_are_remembered_and_stay_right(monkeypatch):
    monkeypatch.setattr("daemon.pipeline.mapping.rules._REGEX_CACHE_LIMIT", 3)
    mapping = parse("""\
        alerts:
        - key: {job: {"=~": "node|ceph"}, instance: {"!~": "db-.*"}}
          resource: {id: instance}
        """)
    match, differ = mapping.rules[0].key
    values = ["node", "ceph", "nodes", "", "db-1", "web-1", "node", "db-1", "ceph"] * 3
    for value in values:  # more values than the cache holds: it starts over, still right
        labels = {"job": value, "instance": value}
        assert match.test(labels) is (value in ("node", "ceph"))
        assert differ.test(labels) is (not value.startswith("db-"))
        assert (mapping.match(labels) is not None) is (value in ("node", "ceph"))
    assert 0 < len(match.results) <= 3 and 0 < len(differ.results) <= 3
    assert match == Condition("job", "=~", "node|ceph")  # the cache is no part of it


def test_conditions_on_absent_and_present_labels():
    assert Condition("env", "!=", "prod").test({})
    assert Condition("env", "=", "").test({"env": ""})
    assert not Condition("env", "=", "").test({"env": "x"})
    assert Condition("device", "present", "true").test({"device": "/dev/vda"})
    assert not Condition("device", "present", "true").test({"device": ""})
    assert Condition("device", "present", "false").test({})


def test_rules_share_what_the_hot_path_reads():
    mapping = parse("""\
        alerts:
        - key: {alertname: A, job: libvirt}
          type: instance
          resource: {instance_name: domain, host_id: instance}
        - key: {alertname: B, job: libvirt}
          type: instance
          resource: {instance_name: domain, host_id: instance}
        - key: {alertname: C, job: node}
          resource: {host: {label: instance, transform: strip_port}}
        """)
    a, b, c = mapping.rules
    assert a.rest is b.rest and a.pairs is b.pairs and a.type is b.type
    assert a.rest == (("job", "libvirt"),) and c.rest == (("job", "node"),)
    assert c.steps[0][1] is a.pairs[1][1]  # "instance", interned
    _, properties, _ = mapping.match({"alertname": "B", "job": "libvirt", "domain": "d",
                                      "instance": "h:1"})
    assert properties == {"instance_name": "d", "host_id": "h:1"}


def test_a_rule_is_named_by_its_name_or_its_position():
    key = (Condition("alertname", "=", "A"), Condition("job", "=~", "n.*"))
    properties = (PropertySpec("id", label="instance"),)
    named = Rule(index=3, line=9, name="vm-cpu", type=None, key=key, properties=properties,
                 queries={})
    unnamed = Rule(index=3, line=9, name=None, type=None, key=key, properties=properties,
                   queries={})
    assert (named.ref, unnamed.ref) == ("vm-cpu", "rule 3")
    assert named.alertname == "A" and named.rest == () and len(named.others) == 1
    assert Rule(index=1, line=1, name=None, type=None, key=key[1:], properties=properties,
                queries={}).alertname is None


def test_only_the_seeds_form_takes_the_fast_case():
    mapping = parse("""\
        alerts:
        - key: {alertname: A}
          resource: {id: instance}
        - key: {alertname: A}
          resource: {id: instance, kind: {value: host}}
        """)
    seed, extended = mapping.rules
    assert seed.pairs == (("id", "instance"),)
    assert extended.pairs == () and len(extended.steps) == 2
