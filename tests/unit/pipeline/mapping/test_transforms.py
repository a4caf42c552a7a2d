"""The value transforms a resource property may name, alone and in a mapping."""

from __future__ import annotations

import pytest

from daemon.pipeline.mapping import TRANSFORMS, parse_mapping
from daemon.pipeline.mapping.transforms import short_host, strip_port
from tests.unit.pipeline.mapping.conftest import parse


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
    _, properties, _ = mapping.match({"alertname": "A", "v": value})
    assert properties == {"p": expected}


def test_single_transform_may_be_a_string():
    mapping = parse("""
        alerts:
        - key: {alertname: A}
          resource: {p: {label: v, transform: strip_port}}
        """)
    _, properties, _ = mapping.match({"alertname": "A", "v": "h:1"})
    assert properties == {"p": "h"}


@pytest.mark.parametrize(("value", "expected"), [
    ("h:", "h"), (":9100", ":9100"), ("h:http", "h:http"), ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]x", "[2001:db8::1]x"), ("[", "["), ("", ""),
])
def test_strip_port_leaves_what_is_no_port(value, expected):
    assert strip_port(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("192.0.2.1", "192.0.2.1"), ("999.1.1.1", "999"), ("fe80::1", "fe80::1"),
    ("compute-1", "compute-1"), (".example", ""),
])
def test_short_host_keeps_addresses_whole(value, expected):
    assert short_host(value) == expected


def test_the_names_a_mapping_may_use():
    assert sorted(TRANSFORMS) == ["lower", "short_host", "strip_port", "trim", "upper"]
