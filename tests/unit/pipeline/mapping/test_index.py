"""CompiledMapping.match: the first matching rule in file order, the index, the properties."""

from __future__ import annotations

import pytest

from daemon.pipeline.mapping import load_mapping, parse_mapping
from tests.unit.pipeline.conftest import SEED_MAPPING
from tests.unit.pipeline.mapping.conftest import parse


def properties_of(mapping, labels):
    """The properties ``mapping.match(labels)`` gives (the labels must match a rule)."""
    _, properties, _ = mapping.match(labels)
    return properties


def index_of(mapping, labels):
    """The 1-based position of the rule ``labels`` match."""
    rule, _, _ = mapping.match(labels)
    return rule.index


def test_seed_key_requires_every_label():
    mapping = load_mapping(SEED_MAPPING)
    assert mapping.match({"alertname": "HighCpuOnVmAlert", "domain": "d"}) is None
    assert mapping.match({"alertname": "HighCpuOnVmAlert", "job": "node"}) is None
    assert mapping.match({"alertname": "HighCpuOnVmAlert", "job": "libvirt"}) is not None


EXTENDED = """
    alerts:
    - name: inode-on-data
      key:
        alertname: HighInodeUsage
        mountpoint: {"=~": "/(data|srv)/.*", "!=": "/data/tmp"}
        fstype: {"!~": "tmpfs|overlay"}
        device: {present: true}
        ignore: {present: false}
      type: filesystem
      resource:
        host: {label: instance, transform: [strip_port, short_host, lower]}
        mountpoint: mountpoint
        kind: {value: data-volume}
        zone: {label: zone, default: nova}
    - key: {alertname: {"=~": "High.*"}}
      resource: {id: instance}
    """


def test_regex_negation_and_presence_operators():
    mapping = parse(EXTENDED)
    labels = {"alertname": "HighInodeUsage", "mountpoint": "/data/db", "fstype": "ext4",
              "device": "/dev/vdb", "instance": "Compute-1.Example.org:9100"}
    rule, properties, missing_labels = mapping.match(labels)
    assert rule.ref == "inode-on-data" and rule.type == "filesystem"
    assert properties == {"host": "compute-1", "mountpoint": "/data/db",
                          "kind": "data-volume", "zone": "nova"}
    assert missing_labels == ()
    # Each condition, broken on its own, makes rule 1 fail and rule 2 (generic) win.
    for change in ({"mountpoint": "/data/tmp"}, {"mountpoint": "/var/x"},
                   {"mountpoint": "x/data/y"},  # regex is anchored
                   {"fstype": "tmpfs"}, {"device": ""}, {"ignore": "1"}):
        assert index_of(mapping, {**labels, **change}) == 2, change
    without_device = dict(labels)
    del without_device["device"]
    assert index_of(mapping, without_device) == 2


def test_absent_label_is_empty_for_negation_and_regex():
    mapping = parse("""
        alerts:
        - key: {alertname: A, env: {"!=": prod}}
          resource: {id: instance}
        - key: {alertname: A, env: {"=~": ".*"}}
          resource: {id: instance}
        """)
    assert index_of(mapping, {"alertname": "A"}) == 1
    assert index_of(mapping, {"alertname": "A", "env": "prod"}) == 2


def test_empty_equality_matches_absent_label():
    mapping = parse("""
        alerts:
        - key: {alertname: A, job: ""}
          resource: {id: instance}
        """)
    assert mapping.match({"alertname": "A"}) is not None
    assert mapping.match({"alertname": "A", "job": "x"}) is None


def test_first_matching_rule_in_file_order_wins_across_index_groups():
    mapping = parse("""
        alerts:
        - key: {alertname: B}
          resource: {r: {value: "1"}}
        - key: {job: node}
          resource: {r: {value: "2"}}
        - key: {alertname: A}
          resource: {r: {value: "3"}}
        - key: {alertname: A, job: node}
          resource: {r: {value: "4"}}
        """)
    assert properties_of(mapping, {"alertname": "A", "job": "node"}) == {"r": "2"}
    assert properties_of(mapping, {"alertname": "A", "job": "x"}) == {"r": "3"}
    assert properties_of(mapping, {"alertname": "B", "job": "node"}) == {"r": "1"}
    assert properties_of(mapping, {"alertname": "C", "job": "node"}) == {"r": "2"}
    assert mapping.match({"alertname": "C"}) is None


def test_index_only_tries_the_alerts_own_rules():
    # A regex condition remembers each value it was tested on: which rules have
    # results shows which rules the lookup tried.
    rules = "\n".join(f"- key: {{alertname: A{i}, job: {{'=~': 'j.*'}}}}\n"
                      "  resource: {id: instance}" for i in range(1000))
    mapping = parse_mapping("alerts:\n" + rules + "\n")

    def tried():
        return [rule.index for rule in mapping if rule.key[1].results]

    assert mapping.match({"alertname": "A500", "job": "x"}) is None
    assert tried() == [501]
    assert index_of(mapping, {"alertname": "A999", "job": "j", "instance": "x"}) == 1000
    assert mapping.match({"alertname": "nope", "job": "j"}) is None
    assert tried() == [501, 1000]


def test_missing_labels_give_none_and_are_reported_once():
    mapping = parse("""
        alerts:
        - key: {alertname: A}
          resource: {a: instance, b: instance, c: domain, d: {label: zone, default: z}}
        """)
    _, properties, missing_labels = mapping.match({"alertname": "A"})
    assert properties == {"a": None, "b": None, "c": None, "d": "z"}
    assert missing_labels == ("instance", "domain")
    assert "None" not in properties.values()


@pytest.mark.parametrize("resource", ["{a: instance, b: domain}",  # the seed's form
                                      "{a: instance, b: domain, c: {value: x}}"])
def test_both_forms_of_resource_report_missing_labels_alike(resource):
    mapping = parse_mapping(f"alerts:\n- key: {{alertname: A}}\n  resource: {resource}\n")
    _, properties, missing_labels = mapping.match({"alertname": "A", "domain": "d"})
    assert (properties["a"], properties["b"]) == (None, "d")
    assert missing_labels == ("instance",)
    _, _, missing_labels = mapping.match({"alertname": "A", "instance": "", "domain": ""})
    assert missing_labels == ("instance", "domain")


def test_transformed_values_are_remembered_and_stay_right(monkeypatch):
    monkeypatch.setattr("daemon.pipeline.mapping.index.TRANSFORM_CACHE_LIMIT", 2)
    mapping = parse("""
        alerts:
        - key: {alertname: A}
          resource: {host: {label: instance, transform: [strip_port, short_host]}}
        """)
    for value in ["a.example.org:1", "b.example.org:2", "c:3", "a.example.org:1"] * 3:
        expected = value.split(":")[0].split(".")[0]
        assert properties_of(mapping, {"alertname": "A", "instance": value}) == {
            "host": expected}
    (_, _, _, _, _, cache), = mapping.rules[0].steps
    assert 0 < len(cache) <= 2


# ------------------------------------------------------------------ UTF-8 label names
# Issue 13, case utf8-label-names: Prometheus 3 and recent Alertmanager accept any UTF-8
# label name (OpenTelemetry's service.name); the mapping names them wherever it names a label.

OTEL_LABELS = {"alertname": "HighErrorRate", "service.name": "checkout",
               "k8s.namespace.name": "shop", "host.name": "worker-3.example.org",
               "instance": "192.0.2.80:8080"}


def test_utf8_label_names_in_key_and_resource():
    mapping = parse("""
        alerts:
        - name: otel-service
          key:
            alertname: HighErrorRate
            k8s.namespace.name: shop
          type: service
          resource:
            service: service.name
            host: {label: host.name, transform: short_host}
        """)
    match = mapping.match(OTEL_LABELS)
    assert match is not None
    rule, properties, _ = match
    assert rule.ref == "otel-service"
    assert properties == {"service": "checkout", "host": "worker-3"}
    assert mapping.match({**OTEL_LABELS, "k8s.namespace.name": "other"}) is None
