"""The compiler: the seed's format, the extensions, precise errors naming file, line and rule."""

from __future__ import annotations

import os

import pytest
import yaml

from daemon.exception import MappingError
from daemon.pipeline.mapping import compile_conditions, load_mapping, parse_mapping
from daemon.pipeline.resolution import placeholders
from tests.unit.pipeline.conftest import SEED_MAPPING
from tests.unit.pipeline.mapping.conftest import error_of, parse

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
    _, long_properties, _ = long.match(labels)
    _, short_properties, _ = short.match(labels)
    assert long_properties == short_properties == {"id": "h:9100"}


def test_empty_alerts_list_is_a_valid_mapping_that_matches_nothing():
    mapping = parse("alerts: []\n")
    assert len(mapping) == 0
    assert mapping.match({"alertname": "X"}) is None


# ------------------------------------------------------------------ extensions

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
    assert placeholders(rule.queries["cpu"]) == ["instance"]


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
    _, properties_a, _ = mapping.match({"alertname": "A", **labels})
    _, properties_b, _ = mapping.match({"alertname": "B", **labels})
    assert properties_a == {"instance_name": "d", "host_id": "i"}
    assert properties_b == {"instance_name": "d", "host_id": "fixed"}


# ------------------------------------------------------------------ UTF-8 label names
# Issue 13, case utf8-label-names: Prometheus 3 and recent Alertmanager accept any UTF-8
# label name (OpenTelemetry's service.name); the mapping names them wherever it names a label.

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
    _, properties, _ = match
    assert properties == {"id": "value", "other": "value"}


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
    assert placeholders(queries["error_rate"]) == ["service.name"]
    assert placeholders(queries["by_host"]) == ["host-id"]


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
    node = yaml.compose("\n\nkey: {alertname: HighLoad, job: {'=~': 'node|libvirt'}}\n")
    key = node.value[0][1]
    conditions = compile_conditions(key, source="rules.yaml", rule=2)
    assert [(c.label, c.op, c.value) for c in conditions] == [
        ("alertname", "=", "HighLoad"), ("job", "=~", "node|libvirt")]
    assert all(c.test({"alertname": "HighLoad", "job": "libvirt"}) for c in conditions)
    assert not all(c.test({"alertname": "HighLoad", "job": "other"}) for c in conditions)


def test_compile_conditions_of_one_label_and_its_errors():
    [(_, value)] = yaml.compose("severity: {'!=': info, present: true}\n").value
    conditions = compile_conditions(value, source="rules.yaml", label="severity")
    assert [(c.label, c.op) for c in conditions] == [("severity", "!="), ("severity", "present")]
    [(_, bad)] = yaml.compose("\nseverity: {'=~': '(crit'}\n").value
    with pytest.raises(MappingError) as info:
        compile_conditions(bad, source="rules.yaml", rule=3, label="severity")
    assert str(info.value).startswith(
        "rules.yaml:2: rule 3: severity.=~: invalid regular expression '(crit'")
    [(_, empty)] = yaml.compose("key: {}\n").value
    with pytest.raises(MappingError, match="'key' must name at least one label"):
        compile_conditions(empty, source="rules.yaml")
