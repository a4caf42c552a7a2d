"""Tests of daemon/metrics/promql.py: escaping and templating."""

import pytest

from daemon.exception import MetricsError
from daemon.metrics import promql


@pytest.mark.parametrize("raw,escaped", [
    ("plain", "plain"),
    ('a"b', 'a\\"b'),
    ("a\\b", "a\\\\b"),
    ("a\nb", "a\\nb"),
    ('"} or vector(1) or {a="', '\\"} or vector(1) or {a=\\"'),
    ("", ""),
])
def test_escape_label_value(raw, escaped):
    assert promql.escape_label_value(raw) == escaped


def test_selector_escapes_and_orders():
    assert (promql.selector("up", instance='x"y', fqdn=("!=", "")) ==
            'up{instance="x\\"y",fqdn!=""}')
    assert promql.selector(domain="d") == '{domain="d"}'


@pytest.mark.parametrize("kwargs", [
    {"metric": "bad-name", "a": "b"},
    {"metric": None},
    {"metric": "up", "a": ("==", "b")},
])
def test_selector_rejects(kwargs):
    metric = kwargs.pop("metric")
    with pytest.raises(ValueError):
        promql.selector(metric, **kwargs)


def test_selector_rejects_bad_label_name():
    with pytest.raises(ValueError):
        promql.selector("up", **{"1abc": "x"})


def test_render_substitutes_escaped_values():
    template = 'node_load1{instance="{instance}"} + on() count(up{fqdn="{host_fqdn}"})'
    assert promql.placeholders(template) == ["instance", "host_fqdn"]
    out = promql.render(template, {"instance": 'a"\n', "host_fqdn": "h.example"})
    assert out == ('node_load1{instance="a\\"\\n"} + on() '
                   'count(up{fqdn="h.example"})')


def test_render_leaves_promql_braces_alone():
    template = 'rate(x{job="a",mode!~"idle"}[5m])'
    assert promql.render(template, {}) == template


def test_render_names_missing_placeholders():
    with pytest.raises(MetricsError) as err:
        promql.render('up{instance="{instance}",x="{fqdn}"}', {"instance": None},
                      name="load")
    assert "'load'" in str(err.value)
    assert "fqdn, instance" in str(err.value)
