"""``bound_event``: one huge alert never makes an event the broker refuses (issue 13)."""

from __future__ import annotations

import json
import re

import pytest

from daemon.pipeline.event import TRUNCATED_MARKER, bound_event, encode_payload
from daemon.pipeline.mapping import parse_mapping
from daemon.pipeline.transformer import Transformer
from tests.unit.pipeline.conftest import make_alert, make_transition, schema_errors

LIMIT = 64 * 1024
MAPPING = parse_mapping("""
alerts:
- key: {alertname: HugeAlert}
  type: host
  resource: {id: instance, note: big}
""")
IDENTITY = ("schema_version", "event_id", "alarm_id", "fingerprint", "sequence", "name",
            "status", "reason", "starts_at", "ends_at", "observed_at", "severity",
            "severity_raw", "source", "silenced_by", "inhibited_by")


def event_of(labels=None, annotations=None, kind="firing", **alert):
    labels = {"alertname": "HugeAlert", "instance": "compute-1:9100", "severity": "critical",
              **(labels or {})}
    transition = make_transition(make_alert(labels, annotations=annotations or {}, **alert),
                                 kind)
    return Transformer(MAPPING).transform_sync(transition)


def bound(event, limit=LIMIT):
    return bound_event(event, encode_payload(event.payload), limit)


def cut_bytes(text: str) -> int:
    found = re.search(r"\u2026\[truncated (\d+) bytes\]\Z", text)
    assert found, text[-80:]
    return int(found.group(1))


def test_an_event_that_fits_is_the_same_object():
    event = event_of(annotations={"summary": "disk full"})
    text = encode_payload(event.payload)
    assert bound_event(event, text, LIMIT) == (event, text, ())
    assert bound_event(event, text, len(text))[0] is event


def test_a_huge_annotation_is_cut_to_the_limit_with_a_visible_marker():
    huge = "x" * 12_000_000
    event = event_of(annotations={"summary": "disk full", "description": huge})
    bounded, text, cut = bound(event)
    assert cut == ("annotations.description",)
    assert len(text) <= LIMIT and len(text) > LIMIT - 64  # the rest of the room is kept
    assert json.loads(text) == bounded.payload
    description = bounded.payload["annotations"]["description"]
    kept = description[:description.index("\u2026")]
    assert huge.startswith(kept) and len(kept) > LIMIT - 2048
    assert cut_bytes(description) == len(huge) - len(kept)
    # Small values, identity fields and the schema are intact; the event given is not changed.
    assert bounded.payload["annotations"]["summary"] == "disk full"
    assert bounded.payload["labels"] == event.payload["labels"]
    for key in IDENTITY:
        assert bounded.payload[key] == event.payload[key], key
    assert bounded[:4] == event[:4]
    assert schema_errors(bounded.payload) == []
    assert event.payload["annotations"]["description"] is huge


def test_the_largest_values_are_cut_to_the_same_size_small_ones_stay():
    event = event_of(labels={"big": "b" * 300_000},
                     annotations={"a": "a" * 500_000, "c": "c" * 200_000, "small": "s" * 5000},
                     generator_url="http://prometheus.example.org/graph?g0.expr=" + "u" * 90_000)
    bounded, text, cut = bound(event)
    assert len(text) <= LIMIT
    assert set(cut) == {"annotations.a", "annotations.c", "labels.big",
                        "resource.properties.note", "generator_url"}
    payload = bounded.payload
    sizes = {len(encode_payload(v)) for v in (
        payload["annotations"]["a"], payload["annotations"]["c"], payload["labels"]["big"],
        payload["resource"]["properties"]["note"], payload["generator_url"])}
    assert max(sizes) - min(sizes) <= 8  # one cap for all (the marker's digits differ)
    assert payload["annotations"]["small"] == "s" * 5000
    assert payload["resource"]["properties"]["note"].startswith("b" * 1000)
    assert schema_errors(payload) == []


def test_escaped_and_non_ascii_text_is_measured_as_sent():
    # JSON of non-ASCII text is \uXXXX (6 bytes a character), of quotes \" (2 bytes).
    event = event_of(annotations={"q": '"\\' * 400_000, "u": "\u00e9\U0001f525" * 100_000})
    bounded, text, _ = bound(event)
    assert len(text) <= LIMIT
    assert json.loads(text) == bounded.payload
    for key, original in (("q", '"\\' * 400_000), ("u", "\u00e9\U0001f525" * 100_000)):
        value = bounded.payload["annotations"][key]
        kept = value[:value.rindex("\u2026")]
        assert original.startswith(kept)
        assert cut_bytes(value) == len(original.encode()) - len(kept.encode())
    assert schema_errors(bounded.payload) == []


def test_a_huge_metric_value_becomes_the_marker():
    event = event_of()
    payload = dict(event.payload, metrics={"load": 1.5,
                                           "series": [{"labels": {"a": "b"}, "value": 1}] * 9000})
    big = event._replace(payload=payload)
    bounded, text, cut = bound(big)
    assert cut == ("metrics.series",)
    assert bounded.payload["metrics"]["load"] == 1.5
    series = bounded.payload["metrics"]["series"]
    assert series == TRUNCATED_MARKER.format(len(encode_payload(payload["metrics"]["series"])))
    assert len(text) <= LIMIT


def test_it_is_deterministic_and_a_resolved_event_is_cut_alike():
    annotations = {"description": "d" * 2_000_000, "runbook": "r" * 100_000}
    firing = event_of(annotations=annotations)
    resolved = event_of(annotations=annotations, kind="resolved")
    first, second = bound(firing), bound(firing)
    assert first[1] == second[1]
    bounded, text, cut = bound(resolved)
    assert len(text) <= LIMIT and cut == first[2]
    assert bounded.payload["status"] == "resolved" and bounded.payload["reason"] == "resolved"
    assert bounded.payload["ends_at"] == resolved.payload["ends_at"]
    assert schema_errors(bounded.payload) == []


@pytest.mark.parametrize("limit", [16 * 1024, 100_000, 1024 * 1024])
def test_many_large_values_fit_any_limit(limit):
    annotations = {f"a{i}": chr(0x41 + i % 26) * (10_000 * (i + 1)) for i in range(40)}
    event = event_of(labels={f"l{i}": "v" * 30_000 for i in range(20)}, annotations=annotations)
    bounded, text, cut = bound(event, limit)
    assert len(text) <= limit
    assert len(cut) >= 20
    assert schema_errors(bounded.payload) == []
