"""The mapping loader and compiler: the seed's format, the extensions, precise errors."""

from __future__ import annotations

import os
import textwrap

import pytest

from daemon.exception import MappingError
from daemon.pipeline import mapping as mapping_mod
from daemon.pipeline.mapping import load_mapping, parse_mapping
from tests.unit.pipeline.conftest import SEED_MAPPING


def parse(text: str):
    return parse_mapping(textwrap.dedent(text), source="mappings.yaml")


def error_of(text: str | bytes) -> str:
    if isinstance(text, str):
        text = textwrap.dedent(text)
    with pytest.raises(MappingError) as info:
        parse_mapping(text, source="mappings.yaml")
    return str(info.value)


# ------------------------------------------------------------------ the seed's format

def test_seed_file_loads_as_written():
    mapping = load_mapping(SEED_MAPPING)
    assert len(mapping) == 4
    first = mapping.rules[0]
    assert first.index == 1 and first.line == 3 and first.ref == "rule 1"
    assert [(c.label, c.op, c.value) for c in first.key] == [
        ("alertname", "=", "HighCpuOnVmAlert"), ("job", "=", "libvirt")]
    assert [(p.name, p.label) for p in first.properties] == [
        ("instance_name", "domain"), ("host_id", "instance")]
    assert mapping.digest and mapping.source == str(SEED_MAPPING)


def test_short_form_without_alert_level_is_the_same():
    long = parse("""
        alerts:
        - alert:
            key: {alertname: A, job: node}
            resource: {id: instance}
        """)
    short = parse("""
        alerts:
        - key: {alertname: A, job: node}
          resource: {id: instance}
        """)
    labels = {"alertname": "A", "job": "node", "instance": "h:9100"}
    assert long.match(labels).properties == short.match(labels).properties == {"id": "h:9100"}


def test_seed_key_requires_every_label():
    mapping = load_mapping(SEED_MAPPING)
    assert mapping.match({"alertname": "HighCpuOnVmAlert", "domain": "d"}) is None
    assert mapping.match({"alertname": "HighCpuOnVmAlert", "job": "node"}) is None
    assert mapping.match({"alertname": "HighCpuOnVmAlert", "job": "libvirt"}) is not None


def test_empty_alerts_list_is_a_valid_mapping_that_matches_nothing():
    mapping = parse("alerts: []\n")
    assert len(mapping) == 0
    assert mapping.match({"alertname": "X"}) is None


# ------------------------------------------------------------------ extensions

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
    match = mapping.match(labels)
    assert match.rule.ref == "inode-on-data" and match.rule.type == "filesystem"
    assert match.properties == {"host": "compute-1", "mountpoint": "/data/db",
                                "kind": "data-volume", "zone": "nova"}
    assert match.missing_labels == ()
    # Each condition, broken on its own, makes rule 1 fail and rule 2 (generic) win.
    for change in ({"mountpoint": "/data/tmp"}, {"mountpoint": "/var/x"},
                   {"mountpoint": "x/data/y"},  # regex is anchored
                   {"fstype": "tmpfs"}, {"device": ""}, {"ignore": "1"}):
        assert mapping.match({**labels, **change}).rule.index == 2, change
    without_device = dict(labels)
    del without_device["device"]
    assert mapping.match(without_device).rule.index == 2


def test_absent_label_is_empty_for_negation_and_regex():
    mapping = parse("""
        alerts:
        - key: {alertname: A, env: {"!=": prod}}
          resource: {id: instance}
        - key: {alertname: A, env: {"=~": ".*"}}
          resource: {id: instance}
        """)
    assert mapping.match({"alertname": "A"}).rule.index == 1
    assert mapping.match({"alertname": "A", "env": "prod"}).rule.index == 2


def test_regex_results_are_remembered_and_stay_right(monkeypatch):
    monkeypatch.setattr(mapping_mod, "_REGEX_CACHE_LIMIT", 3)
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
        assert (mapping.find(labels) is not None) is (value in ("node", "ceph"))
    assert 0 < len(match.results) <= 3 and 0 < len(differ.results) <= 3
    assert match == mapping_mod.Condition("job", "=~", "node|ceph")  # the cache is no part of it


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
    assert mapping.match({"alertname": "B", "job": "libvirt", "domain": "d",
                          "instance": "h:1"}).properties == {"instance_name": "d",
                                                             "host_id": "h:1"}


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
    assert mapping.match({"alertname": "A", "job": "node"}).properties == {"r": "2"}
    assert mapping.match({"alertname": "A", "job": "x"}).properties == {"r": "3"}
    assert mapping.match({"alertname": "B", "job": "node"}).properties == {"r": "1"}
    assert mapping.match({"alertname": "C", "job": "node"}).properties == {"r": "2"}
    assert mapping.match({"alertname": "C"}) is None


def test_index_only_tries_the_alerts_own_rules():
    rules = "\n".join(f"- key: {{alertname: A{i}}}\n  resource: {{id: instance}}"
                      for i in range(1000))
    mapping = parse_mapping("alerts:\n" + rules + "\n")
    assert len(mapping.candidates({"alertname": "A500"})) == 1
    assert mapping.match({"alertname": "A999", "instance": "x"}).rule.index == 1000
    assert mapping.candidates({"alertname": "nope"}) == ()


@pytest.mark.parametrize(("value", "transforms", "expected"), [
    ("10.0.0.1:9100", ["strip_port"], "10.0.0.1"),
    ("[2001:db8::1]:9100", ["strip_port"], "2001:db8::1"),
    ("2001:db8::1", ["strip_port"], "2001:db8::1"),
    ("host", ["strip_port"], "host"),
    ("host.example.org:9100", ["strip_port", "short_host"], "host"),
    ("10.0.0.1:9100", ["strip_port", "short_host"], "10.0.0.1"),
    ("Host.Example.ORG", ["lower"], "host.example.org"),
    ("  x ", ["trim", "upper"], "X"),
])
def test_transforms(value, transforms, expected):
    mapping = parse_mapping(
        "alerts:\n- key: {alertname: A}\n  resource:\n"
        f"    p: {{label: v, transform: {transforms!r}}}\n")
    assert mapping.match({"alertname": "A", "v": value}).properties == {"p": expected}


def test_single_transform_may_be_a_string():
    mapping = parse("""
        alerts:
        - key: {alertname: A}
          resource: {p: {label: v, transform: strip_port}}
        """)
    assert mapping.match({"alertname": "A", "v": "h:1"}).properties == {"p": "h"}


def test_missing_labels_give_none_and_are_reported_once():
    mapping = parse("""
        alerts:
        - key: {alertname: A}
          resource: {a: instance, b: instance, c: domain, d: {label: zone, default: z}}
        """)
    match = mapping.match({"alertname": "A"})
    assert match.properties == {"a": None, "b": None, "c": None, "d": "z"}
    assert match.missing_labels == ("instance", "domain")
    assert "None" not in match.properties.values()


def test_metrics_templates_are_kept_for_the_resolver():
    mapping = parse("""
        alerts:
        - key: {alertname: A}
          resource: {host: {label: instance, transform: strip_port}}
          metrics:
            load1: 'node_load1{instance="{instance}"}'
            cpu: 'rate(node_cpu_seconds_total{instance="{instance}",mode!="idle"}[5m])'
        """)
    rule = mapping.rules[0]
    assert rule.queries["load1"] == 'node_load1{instance="{instance}"}'
    assert mapping_mod.placeholders(rule.queries["cpu"]) == ["instance"]


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
    assert match is not None and match.rule.ref == "otel-service"
    assert match.properties == {"service": "checkout", "host": "worker-3"}
    assert mapping.match({**OTEL_LABELS, "k8s.namespace.name": "other"}) is None


@pytest.mark.parametrize("name", ["service.name", "k8s.pod name", "é-label", "a:b", "9lives",
                                  "instance:port", 'q"uote'])
def test_any_non_empty_label_name_is_accepted(name):
    mapping = parse_mapping(
        "alerts:\n"
        f"- key: {{alertname: A, {name!r}: {{'=~': 'v.*'}}}}\n"
        f"  resource: {{id: {name!r}, other: {{label: {name!r}, default: d}}}}\n",
        source="mappings.yaml")
    match = mapping.match({"alertname": "A", name: "value"})
    assert match is not None
    assert match.properties == {"id": "value", "other": "value"}


def test_utf8_placeholders_are_placeholders():
    mapping = parse("""
        alerts:
        - key: {alertname: HighErrorRate}
          resource: {id: instance, host-id: instance}
          metrics:
            error_rate: 'rate(http_server_errors_total{"service.name"="{service.name}"}[5m])'
            by_host: 'up{instance="{host-id}",job=~"a{2,3}"}'
        """)
    queries = mapping.rules[0].queries
    assert mapping_mod.placeholders(queries["error_rate"]) == ["service.name"]
    assert mapping_mod.placeholders(queries["by_host"]) == ["host-id"]


@pytest.mark.parametrize("query,shown", [
    ("'up{}'", "{}"),
    ("'up{instance=\"{ instance }\"}'", "{ instance }"),
    ("'up{instance=\"{instance }\"}'", "{instance }"),
    ("'sum(x{a=\"{}\"})'", "{}"),
])
def test_a_placeholder_that_names_nothing_is_refused_with_its_line(query, shown):
    message = error_of(
        "alerts:\n- key: {alertname: A}\n  resource: {id: a}\n"
        f"  metrics:\n    ok: 'up'\n    bad: {query}\n")
    assert message.startswith(
        f"mappings.yaml:6: rule 1: metrics.bad: placeholder {shown} names nothing"), message


def test_yaml_anchors_and_merge_keys():
    mapping = parse("""
        alerts:
        - key: {alertname: A}
          resource: &libvirt {instance_name: domain, host_id: instance}
        - key: {alertname: B}
          resource:
            <<: *libvirt
            host_id: {value: fixed}
        """)
    labels = {"domain": "d", "instance": "i"}
    assert mapping.match({"alertname": "A", **labels}).properties == {
        "instance_name": "d", "host_id": "i"}
    assert mapping.match({"alertname": "B", **labels}).properties == {
        "instance_name": "d", "host_id": "fixed"}


# ------------------------------------------------------------------ precise errors

def test_error_names_file_line_and_rule_for_a_list_resource_value():
    message = error_of("""\
        alerts:
        - alert:
            key: {alertname: A}
            resource: {id: instance}
        - alert:
            key: {alertname: B}
            resource:
              host_id: [instance, domain]
        """)
    assert message.startswith("mappings.yaml:8: rule 2: resource.host_id: ")
    assert "resource value must be a label name or a literal" in message
    assert message.endswith("got a list")


@pytest.mark.parametrize(("text", "expected"), [
    ("alerts: [\n", "mappings.yaml:2: invalid YAML"),
    ("alerts:\n- key: {alertname: A\n  resource: x\n", "mappings.yaml:3: invalid YAML"),
    ("alerts:\n\t- key: x\n", "mappings.yaml:2: invalid YAML"),
    ("- key: {alertname: A}\n", "mappings.yaml:1: the file must be a mapping with 'alerts:', "
                                "got a list"),
    ("alert:\n- key: {}\n", "mappings.yaml:1: unknown key 'alert' in the file"),
    ("alerts: {key: x}\n", "mappings.yaml:1: 'alerts' must be a list of rules, got a mapping"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: instance}\n  resouce: {}\n",
     "mappings.yaml:4: rule 1: unknown key 'resouce' in a rule (allowed: name, key, type, "
     "resource, metrics)"),
    ("alerts:\n- alert: {key: {alertname: A}, resource: {id: instance}}\n  name: x\n",
     "mappings.yaml:3: rule 1: unknown key 'name' next to 'alert'"),
    ("alerts:\n- key: {alertname: A}\n", "mappings.yaml:2: rule 1: missing 'resource'"),
    ("alerts:\n- resource: {id: x}\n", "mappings.yaml:2: rule 1: missing 'key'"),
    ("alerts:\n- key: {}\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: 'key' must name at least one label"),
    ("alerts:\n- key: {alertname: A}\n  resource: {}\n",
     "mappings.yaml:3: rule 1: 'resource' must map at least one property"),
    ("alerts:\n- key: {port: 9100}\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: key.port must be a string, got an integer (quote it: '9100')"),
    ("alerts:\n- key: {enabled: yes}\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: key.enabled must be a string, got a boolean"),
    ("alerts:\n- key: [alertname]\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: 'key' must be a mapping, got a list"),
    ("alerts:\n- key: {alertname: {'~=': x}}\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: key.alertname: unknown operator '~='"),
    ("alerts:\n- key: {alertname: {'=~': '(unclosed'}}\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: key.alertname.=~: invalid regular expression '(unclosed'"),
    ("alerts:\n- key: {alertname: {present: maybe}}\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: key.alertname.present must be true or false, got a string"),
    ("alerts:\n- key: {alertname: A, alertname: B}\n  resource: {id: x}\n",
     "mappings.yaml:2: rule 1: duplicate key 'alertname' in 'key' (first on line 2)"),
    ("alerts:\n- key: {alertname: A}\n  key: {job: B}\n  resource: {id: x}\n",
     "mappings.yaml:3: rule 1: duplicate key 'key' in a rule (first on line 2)"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: ''}\n",
     "mappings.yaml:3: rule 1: resource.id: '' is not a valid label name "
     "(for a literal write {value: ''})"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: {label: ''}}\n",
     "mappings.yaml:3: rule 1: resource.id.label: '' is not a valid label name"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: null}\n",
     "mappings.yaml:3: rule 1: resource.id: resource value must be a label name or a literal "
     "({value: ...}), got null"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: {label: a, value: b}}\n",
     "rule 1: resource.id: give exactly one of 'label' and 'value'"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: {value: b, transform: lower}}\n",
     "rule 1: resource.id: a literal value takes no 'transform'"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: {label: a, transform: [nope]}}\n",
     "mappings.yaml:3: rule 1: resource.id.transform: unknown transform 'nope'"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: {label: a, defualt: x}}\n",
     "rule 1: unknown key 'defualt' in resource.id"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: a}\n  type: 3\n",
     "mappings.yaml:4: rule 1: 'type' must be a string, got an integer"),
    ("alerts:\n- {name: x, key: {alertname: A}, resource: {id: a}}\n"
     "- {name: x, key: {alertname: B}, resource: {id: a}}\n",
     "mappings.yaml:3: rule 2: duplicate rule name 'x' (also rule 1)"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: a}\n  metrics: {m: '{{ $labels.a }}'}\n",
     "mappings.yaml:4: rule 1: metrics.m: '{{' in the query"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: a}\n  metrics: {m-1: 'up'}\n",
     "rule 1: metrics: 'm-1' is not a valid metric name"),
    ("alerts:\n- key: {'': A}\n  resource: {id: a}\n",
     "mappings.yaml:2: rule 1: key: '' is not a valid label name"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: a}\n"
     "  metrics:\n    m: 'up{a=\"{ instance }\"}'\n",
     "mappings.yaml:5: rule 1: metrics.m: placeholder { instance } names nothing"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: a}\n"
     "  metrics:\n    m: 'up{}'\n",
     "mappings.yaml:5: rule 1: metrics.m: placeholder {} names nothing"),
    ("alerts:\n- key: {alertname: A}\n  resource: {id: a}\n- 42\n",
     "mappings.yaml:4: rule 2: a rule must be a mapping, got an integer"),
])
def test_invalid_files_give_precise_errors(text, expected):
    assert expected in error_of(text)


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n", "---\n"])
def test_empty_file_is_an_error(text):
    assert error_of(text).startswith("mappings.yaml: file is empty")


def test_binary_junk_is_an_error():
    junk = bytes(range(256)) * 4
    message = error_of(junk)
    assert message.startswith("mappings.yaml:2: not UTF-8 text (byte 0x80 at offset 128)")


def test_nul_bytes_are_an_error():
    assert error_of(b"alerts:\n\x00\x01\x02") == (
        "mappings.yaml:2: binary data (NUL character at offset 8)")


def test_control_characters_are_an_error():
    assert error_of("alerts:\n- [\x07]\n") == (
        "mappings.yaml:2: invalid YAML: unacceptable character #x0007 at offset 11: "
        "control characters are not allowed")


def test_ten_megabyte_file_is_refused_without_reading_it(write_mapping, monkeypatch):
    path = write_mapping("alerts: []\n")
    with open(path, "ab") as stream:
        stream.truncate(10 * 1024 * 1024)
    read_sizes = []
    real_open = open

    class Spy:
        def __init__(self, *args, **kwargs):
            self.stream = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

        def fileno(self):
            return self.stream.fileno()

        def read(self, size=-1):
            data = self.stream.read(size)
            read_sizes.append(len(data))
            return data
    monkeypatch.setattr("builtins.open", Spy)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(info.value) == (
        f"{path}: file is 10485760 bytes, larger than the limit of 1048576 bytes")
    assert read_sizes == []


def test_size_limit_is_configurable(write_mapping):
    path = write_mapping("alerts: []\n" + "#" * 200 + "\n")
    with pytest.raises(MappingError, match="larger than the limit of 100 bytes"):
        load_mapping(path, max_size=100)


def test_unreadable_path_is_an_error(tmp_path):
    with pytest.raises(MappingError) as info:
        load_mapping(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"
    with pytest.raises(MappingError, match="Is a directory|not a regular file"):
        load_mapping(tmp_path)


def test_merge_key_bomb_hits_the_node_limit():
    lines = ["a0: &m0 {x: y}"]
    for i in range(1, 31):
        lines.append(f"a{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}")
    # Unknown top-level keys are reported before anything is expanded.
    assert "unknown key 'a0' in the file" in error_of("\n".join(lines) + "\nalerts: []\n")
    items = [f"    - &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}" for i in range(1, 31)]
    text = ("alerts:\n- key: {alertname: A}\n  resource:\n    <<:\n"
            "    - &m0 {x: y}\n" + "\n".join(items) + "\n")
    message = error_of(text)
    assert "YAML nodes (alias expansion?)" in message


def test_load_mapping_reads_a_file(write_mapping):
    path = write_mapping("alerts:\n- key: {alertname: A}\n  resource: {id: instance}\n")
    mapping = load_mapping(path)
    assert len(mapping) == 1 and mapping.source == os.fspath(path)
    path = write_mapping("alerts:\n- key: {alertname: A}\n  resource: {id: [instance]}\n")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(info.value).startswith(f"{path}:3: rule 1: resource.id: ")


# ------------------------------------------------------------------ compile_conditions

def test_compile_conditions_reads_a_key_of_another_file():
    import yaml

    node = yaml.compose("\n\nkey: {alertname: HighLoad, job: {'=~': 'node|libvirt'}}\n")
    key = node.value[0][1]
    conditions = mapping_mod.compile_conditions(key, source="rules.yaml", rule=2)
    assert [(c.label, c.op, c.value) for c in conditions] == [
        ("alertname", "=", "HighLoad"), ("job", "=~", "node|libvirt")]
    assert all(c.test({"alertname": "HighLoad", "job": "libvirt"}) for c in conditions)
    assert not all(c.test({"alertname": "HighLoad", "job": "other"}) for c in conditions)


def test_compile_conditions_of_one_label_and_its_errors():
    import yaml

    [(_, value)] = yaml.compose("severity: {'!=': info, present: true}\n").value
    conditions = mapping_mod.compile_conditions(value, source="rules.yaml", label="severity")
    assert [(c.label, c.op) for c in conditions] == [("severity", "!="), ("severity", "present")]
    [(_, bad)] = yaml.compose("\nseverity: {'=~': '(crit'}\n").value
    with pytest.raises(MappingError) as info:
        mapping_mod.compile_conditions(bad, source="rules.yaml", rule=3, label="severity")
    assert str(info.value).startswith(
        "rules.yaml:2: rule 3: severity.=~: invalid regular expression '(crit'")
    [(_, empty)] = yaml.compose("key: {}\n").value
    with pytest.raises(MappingError, match="'key' must name at least one label"):
        mapping_mod.compile_conditions(empty, source="rules.yaml")
