"""Property tests: random label sets and random mapping files never break the transformer."""

from __future__ import annotations

import asyncio
import datetime

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.exception import MappingError
from daemon.pipeline.mapping import TRANSFORMS, parse_mapping
from daemon.pipeline.resolution import Resolution
from daemon.pipeline.transformer import Transformer
from tests.unit.pipeline.conftest import SEED_MAPPING, assert_valid, make_alert, make_transition

NAMES = st.sampled_from(["alertname", "job", "instance", "domain", "mountpoint", "severity",
                         "device", "zone", "x"])
VALUES = st.one_of(
    st.sampled_from(["", "A", "B", "node", "libvirt", "critical", "h:9100", "[::1]:80", "None",
                     "Host.Example.org:9100", "10.0.0.1", "null", "true", ":9100"]),
    st.text(max_size=12),
)
LABELS = st.dictionaries(NAMES, VALUES, max_size=8)

REGEXES = st.sampled_from(["A|B", ".*", "", "h:.*", "(node|libvirt)", "[a-z]+", "\\d+"])
CONDITION = st.one_of(
    VALUES,
    st.dictionaries(st.sampled_from(["=", "!="]), VALUES, min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["=~", "!~"]), REGEXES, min_size=1, max_size=2),
    st.builds(lambda b: {"present": b}, st.booleans()),
)
PROPERTY = st.one_of(
    NAMES,
    st.builds(lambda v: {"value": v}, VALUES),
    st.builds(lambda label, t, d: {k: v for k, v in (
        ("label", label), ("transform", t), ("default", d)) if v is not None},
              NAMES, st.one_of(st.none(), st.lists(st.sampled_from(sorted(TRANSFORMS)),
                                                   min_size=1, max_size=3)),
              st.one_of(st.none(), VALUES)),
)
RULE = st.fixed_dictionaries(
    {"key": st.dictionaries(NAMES, CONDITION, min_size=1, max_size=4),
     "resource": st.dictionaries(st.sampled_from(["id", "host", "name", "type", "p.q"]),
                                 PROPERTY, min_size=1, max_size=4)},
    optional={"type": st.sampled_from(["host", "instance", "filesystem"]),
              "metrics": st.dictionaries(st.sampled_from(["cpu", "load"]), st.sampled_from(
                  ['up{instance="{instance}"}', "node_load1"]), min_size=1)})
MAPPING = st.lists(st.one_of(RULE, st.builds(lambda r: {"alert": r}, RULE)), max_size=12)
KINDS = st.sampled_from(["firing", "updated", "resolved"])


def build(rules):
    return parse_mapping(yaml.safe_dump({"alerts": rules}), source="random.yaml")


class Chaotic:
    """A resolver returning odd but allowed values, or failing."""

    NAME = "chaotic"

    def __init__(self, mode):
        self.mode = mode

    async def resolve(self, request):
        if self.mode == "raise":
            raise ValueError("boom")
        if self.mode == "odd":
            return Resolution(resource_id="", properties={"n": 3, "b": True, "o": object()},
                              metrics={"x": float("inf"), "y": [1, {"z": object()}]},
                              errors=("half",))
        return Resolution(resource_id="id-1", properties={"host_fqdn": "h.example"})


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rules=MAPPING, labels=LABELS, kind=KINDS,
       unmatched=st.sampled_from(["emit", "drop"]),
       mode=st.sampled_from([None, "raise", "odd", "ok"]))
def test_random_mappings_and_labels_always_give_a_valid_event(rules, labels, kind, unmatched,
                                                             mode):
    mapping = build(rules)
    resolvers = [] if mode is None else [Chaotic(mode)]
    transformer = Transformer(mapping, resolvers=resolvers, unmatched=unmatched, host="h")
    alert = make_alert(labels)
    event = asyncio.run(transformer.transform(make_transition(alert, kind)))
    match = mapping.match(labels)
    if event is None:
        assert match is None and unmatched == "drop" and kind != "resolved"
        return
    payload = event.payload
    assert_valid(payload)
    assert payload["labels"] == labels and payload["fingerprint"] == alert.fingerprint
    resource = payload["resource"]
    assert resource["mapped"] is (match is not None)
    if match is not None:
        rule, properties, _ = match
        assert resource["rule"] == rule.ref
        for name, value in properties.items():
            assert resource["properties"][name] == value
        for spec in rule.properties:
            if spec.label is not None and not labels.get(spec.label) and spec.default is None:
                # A missing label is null and reported, never the string 'None'.
                assert resource["properties"][spec.name] is None
                assert spec.label in resource["missing_labels"]
        for label in resource["missing_labels"]:
            assert not labels.get(label)


@SETTINGS
@given(rules=MAPPING, labels=LABELS)
def test_first_matching_rule_wins(rules, labels):
    mapping = build(rules)
    expected = next((r for r in mapping.rules if all(c.test(labels) for c in r.key)), None)
    match = mapping.match(labels)
    assert (match[0] if match else None) is expected  # (rule, properties, missing_labels)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.builds(lambda rules: yaml.safe_dump({"alerts": rules}), st.lists(
        st.dictionaries(st.sampled_from(["key", "resource", "alert", "type", "name", "x"]),
                        st.recursive(st.one_of(st.none(), st.booleans(), st.integers(),
                                               st.text(max_size=5)),
                                     lambda c: st.lists(c, max_size=3)
                                     | st.dictionaries(st.text(max_size=5), c, max_size=3),
                                     max_leaves=8)),
        max_size=4)),
))
def test_any_input_loads_or_raises_mapping_error(text):
    try:
        mapping = parse_mapping(text, source="fuzz.yaml")
    except MappingError as err:
        assert str(err).startswith("fuzz.yaml")
        return
    for rule in mapping.rules:
        mapping.match({"alertname": "x"})
        assert rule.key and rule.properties


def test_seed_file_round_trips_through_the_generator_format():
    # The generator writes what the seed file holds: same shape, same result.
    seed = yaml.safe_load(SEED_MAPPING.read_text())
    mapping = build(seed["alerts"])
    assert len(mapping) == 4
    labels = {"alertname": "HighInodeUsage", "job": "node", "instance": "i:1"}
    _, properties, _ = mapping.match(labels)
    assert properties == {"id": "i:1"}


def test_time_fields_are_valid_for_extreme_dates():
    mapping = build([{"key": {"alertname": "A"}, "resource": {"id": "instance"}}])
    for when in (datetime.datetime(1, 1, 1, tzinfo=datetime.UTC),
                 datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.UTC)):
        alert = make_alert({"alertname": "A"}, starts_at=when)
        event = asyncio.run(Transformer(mapping).transform(make_transition(alert)))
        assert_valid(event.payload)
