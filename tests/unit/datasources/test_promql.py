"""Tests of daemon/datasources/promql.py: escaping and templating."""

import pytest

from daemon.datasources import promql
from daemon.exception import DatasourceError


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
    {"metric": ""},
    {"metric": None},
    {"metric": "up", "a": ("==", "b")},
    {"metric": "up", "": "x"},
])
def test_selector_rejects(kwargs):
    metric = kwargs.pop("metric")
    with pytest.raises(ValueError):
        promql.selector(metric, **kwargs)


def test_selector_quotes_utf8_label_names_as_prometheus_3():
    # Issue 13, case utf8-label-names: a name outside [A-Za-z_][A-Za-z0-9_]* is quoted.
    assert (promql.selector("up", instance="a", **{"host.name": ("!=", "")}) ==
            'up{instance="a","host.name"!=""}')
    assert promql.selector(**{"service.name": "checkout"}) == '{"service.name"="checkout"}'
    assert promql.selector(**{"1abc": "x", 'a"b': "y"}) == '{"1abc"="x","a\\"b"="y"}'


def test_selector_puts_a_utf8_metric_name_quoted_inside_the_braces():
    assert (promql.selector("http.server.errors", **{"service.name": "checkout"}) ==
            '{"http.server.errors","service.name"="checkout"}')
    assert promql.selector("bad-name") == '{"bad-name"}'
    assert promql.selector("node:load1:avg") == "node:load1:avg{}"


@pytest.mark.parametrize("name,text", [
    ("instance", "instance"), ("_x9", "_x9"), ("service.name", '"service.name"'),
    ("k8s.namespace.name", '"k8s.namespace.name"'), ("9a", '"9a"'), ("é", '"é"'),
    ("a:b", '"a:b"'),
])
def test_quote_name(name, text):
    assert promql.quote_name(name) == text


def test_render_substitutes_utf8_placeholders():
    # The case's query: {service.name} is a placeholder, the quoted name is PromQL.
    template = 'rate(http_server_errors_total{"service.name"="{service.name}"}[5m])'
    assert promql.placeholders(template) == ["service.name"]
    assert (promql.render(template, {"service.name": "check\"out"}) ==
            'rate(http_server_errors_total{"service.name"="check\\"out"}[5m])')
    assert promql.render("x{a=\"{host-id}\",b=\"{k8s.pod name}\"}",
                         {"host-id": "h", "k8s.pod name": "p"}) == 'x{a="h",b="p"}'


@pytest.mark.parametrize("template", [
    'x{job=~"a{2,3}b{2}c{,3}d{4,}"}',
    'x{name=~"\\\\p{Greek}+",other=~`\\P{L}`}',
    '{"http.server.duration","service.name"="a"}',
    'rate(x{job="a",mode!~"idle"}[5m:1m])',
])
def test_promql_braces_are_not_placeholders(template):
    assert promql.placeholders(template) == []
    assert promql.render(template, {}) == template


def test_render_names_a_placeholder_that_names_nothing_missing():
    with pytest.raises(DatasourceError) as err:
        promql.render('up{a="{ }"}', {" ": "x", "": "y"}, name="m")
    assert "'m'" in str(err.value)


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
    with pytest.raises(DatasourceError) as err:
        promql.render('up{instance="{instance}",x="{fqdn}"}', {"instance": None},
                      name="load")
    assert "'load'" in str(err.value)
    assert "fqdn, instance" in str(err.value)
