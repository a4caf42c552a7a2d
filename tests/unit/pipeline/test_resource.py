"""build_resource: the event's resource object in each case an alert can be in."""

from __future__ import annotations

import pytest

from daemon.pipeline.resolution import Resolution
from daemon.pipeline.resource import RESOURCE_KEYS, build_resource
from tests.unit.pipeline.mapping.conftest import parse

MAPPING = parse("""
    alerts:
    - name: vm
      key: {alertname: A}
      type: instance
      resource: {id: instance, domain: domain}
    """)
LABELS = {"alertname": "A", "instance": "h:9177"}


def test_unmatched():
    assert build_resource(None) == {
        "type": None, "id": None, "properties": {}, "rule": None, "mapped": False,
        "missing_labels": [], "resolved": False, "unresolved_reason": "unmatched",
        "resolve_errors": []}


def test_matched_without_resolvers():
    match = MAPPING.match(LABELS)
    resource = build_resource(match)
    assert resource == {
        "type": "instance", "id": "h:9177", "properties": {"id": "h:9177", "domain": None},
        "rule": "vm", "mapped": True, "missing_labels": ["domain"], "resolved": False,
        "unresolved_reason": "no resolver configured", "resolve_errors": []}
    assert resource["properties"] is match[1]  # the match's own dict, not a copy


@pytest.mark.parametrize(("found", "expected"), [
    (Resolution(resource_id="uuid-1"),
     {"id": "uuid-1", "resolved": True, "unresolved_reason": None}),
    (Resolution(properties={"host_fqdn": "h.example.org"}, errors=("aetos: slow",)),
     {"id": "h:9177", "resolved": True, "unresolved_reason": None,
      "properties": {"id": "h:9177", "domain": None, "host_fqdn": "h.example.org"},
      "resolve_errors": ["aetos: slow"]}),
    (Resolution(errors=("aetos: timed out", "prometheus: failed")),
     {"id": "h:9177", "resolved": False,
      "unresolved_reason": "aetos: timed out; prometheus: failed",
      "resolve_errors": ["aetos: timed out", "prometheus: failed"]}),
    (Resolution(),
     {"id": "h:9177", "resolved": False, "unresolved_reason": "no resolver could resolve it"}),
])
def test_matched_and_resolved(found, expected):
    match = MAPPING.match(LABELS)
    resource = build_resource(match, found)
    assert list(resource) == list(RESOURCE_KEYS)
    assert resource == {
        "type": "instance", "properties": {"id": "h:9177", "domain": None}, "rule": "vm",
        "mapped": True, "missing_labels": ["domain"], "resolve_errors": [], **expected}
    assert resource["properties"] is not match[1]  # the match is left as it was
    assert match[1] == {"id": "h:9177", "domain": None}


def test_every_case_gives_new_lists():
    for make in (lambda: build_resource(None),
                 lambda: build_resource(MAPPING.match(LABELS)),
                 lambda: build_resource(MAPPING.match(LABELS), Resolution())):
        first, second = make(), make()
        assert list(first) == list(RESOURCE_KEYS)
        for key in ("missing_labels", "resolve_errors"):
            assert first[key] == second[key] and first[key] is not second[key]
