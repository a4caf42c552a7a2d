"""The transformer: the seed's resources from real fixtures, Vitrage's defects, resolvers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import textwrap
import uuid

import pytest

from daemon import telemetry
from daemon.exception import MappingError
from daemon.pipeline.mapping import load_mapping, parse_mapping
from daemon.pipeline.resolution import Resolution, ResolveRequest
from daemon.pipeline.resource import RESOURCE_KEYS
from daemon.pipeline.severity import DEFAULT_SEVERITY_MAP
from daemon.pipeline.transformer import Transformer, _event_ids
from tests.unit.pipeline.conftest import (
    NOW,
    SEED_MAPPING,
    api_alerts,
    assert_valid,
    make_alert,
    make_transition,
    webhook_alerts,
)

#: The seed spec's resources for its four alerts, exactly as it describes them.
SEED_RESOURCES = {
    "HighCpuOnVmAlert": {"instance_name": "instance-00000004", "host_id": "135.248.18.109:9177"},
    "HighTrafficOnBridge": {"instance_name": "instance-00000004",
                            "host_id": "135.248.18.109:9177"},
    "AvgCPUTimeOnIdleMode": {"id": "135.248.18.109:9100"},
    "HighInodeUsage": {"id": "135.248.18.109:9100"},
}

LIBVIRT = {"alertname": "HighCpuOnVmAlert", "job": "libvirt", "domain": "instance-00000004",
           "instance": "135.248.18.109:9177", "severity": "critical"}


@pytest.fixture
def seed():
    return load_mapping(SEED_MAPPING)


def run(transformer, transition):
    return asyncio.run(transformer.transform(transition))


def unmatched_count(name):
    return telemetry.ALERTS_UNMATCHED.labels(name)._value.get()


# ------------------------------------------------------------------ must show 1

@pytest.mark.parametrize("source", ["api", "webhook"])
def test_seed_mapping_gives_the_seed_resources(seed, source):
    alerts = api_alerts() if source == "api" else webhook_alerts()
    transformer = Transformer(seed, host="relay-1")
    seen = set()
    for alert in alerts:
        kind = "resolved" if alert.status == "resolved" else "firing"
        event = run(transformer, make_transition(alert, kind))
        resource = event.payload["resource"]
        assert resource["properties"] == SEED_RESOURCES[alert.name], alert.name
        assert resource["mapped"] is True and resource["missing_labels"] == []
        assert event.payload["fingerprint"] == alert.fingerprint
        assert event.event_type == f"alarm.{kind}"
        assert_valid(event.payload)
        seen.add(alert.name)
    assert seen == set(SEED_RESOURCES)


def test_api_fixture_after_silence_keeps_silenced_by(seed):
    alerts = api_alerts("api_v2_alerts_after_resolve_and_silence.json")
    transformer = Transformer(seed)
    events = {a.name: run(transformer, make_transition(a)) for a in alerts}
    bridge = events["HighTrafficOnBridge"].payload
    assert bridge["silenced_by"] and bridge["resource"]["properties"] == SEED_RESOURCES[
        "HighTrafficOnBridge"]
    for event in events.values():
        assert_valid(event.payload)


def test_payload_fields(seed):
    alert = make_alert(LIBVIRT, annotations={"title": "High cpu"},
                       generator_url="http://prom/graph", silenced_by=("s1",))
    event = run(Transformer(seed, host="relay-1"), make_transition(alert))
    p = event.payload
    assert p["schema_version"] == "1.0"
    assert p["event_id"] == event.event_id and p["alarm_id"] == event.alarm_id
    assert p["sequence"] == event.sequence == 1
    assert p["name"] == "HighCpuOnVmAlert" and p["status"] == "firing" and p["reason"] is None
    assert p["severity"] == "critical" and p["severity_raw"] == "critical"
    assert p["starts_at"] == "2026-11-21T21:57:00Z" and p["ends_at"] is None
    assert p["observed_at"] == "2026-11-21T22:02:00Z"
    assert p["labels"] == LIBVIRT and p["annotations"] == {"title": "High cpu"}
    assert p["generator_url"] == "http://prom/graph"
    assert p["silenced_by"] == ["s1"] and p["inhibited_by"] == []
    assert p["source"] == {"type": "alertmanager", "cluster": "test",
                           "url": "http://127.0.0.1:9093", "relay": "relay-1"}
    assert p["resource"] == {
        "type": None, "id": None, "properties": SEED_RESOURCES["HighCpuOnVmAlert"],
        "rule": "rule 1", "mapped": True, "missing_labels": [], "resolved": False,
        "unresolved_reason": "no resolver configured", "resolve_errors": []}
    assert p["metrics"] == {}
    assert_valid(p)


def test_updated_is_firing_and_resolved_carries_reason_and_end(seed):
    transformer = Transformer(seed)
    alert = make_alert(LIBVIRT, ends_at=NOW + datetime.timedelta(minutes=4))
    updated = run(transformer, make_transition(alert, "updated"))
    assert updated.event_type == "alarm.updated" and updated.payload["status"] == "firing"
    assert updated.payload["ends_at"] is None
    resolved = run(transformer, make_transition(alert, "resolved", reason="disappeared"))
    assert resolved.event_type == "alarm.resolved"
    assert resolved.payload["status"] == "resolved"
    assert resolved.payload["reason"] == "disappeared"
    # The lifecycle tracker states the end, in Alertmanager's clock (which may
    # run ahead of the relay's observed_at): the event carries it as stated.
    assert resolved.payload["ends_at"] == "2026-11-21T22:06:00Z"
    # ... never before the start, and observed_at stands in for a missing end.
    early = make_alert(LIBVIRT, ends_at=NOW - datetime.timedelta(hours=1))
    assert run(transformer, make_transition(early, "resolved")).payload["ends_at"] == \
        "2026-11-21T21:57:00Z"
    unknown = make_alert(LIBVIRT, ends_at=None)
    assert run(transformer, make_transition(unknown, "resolved")).payload["ends_at"] == \
        "2026-11-21T22:02:00Z"
    ended = make_alert(LIBVIRT, ends_at=NOW - datetime.timedelta(seconds=30))
    payload = run(transformer, make_transition(ended, "resolved")).payload
    assert payload["ends_at"] == "2026-11-21T22:01:30Z" and payload["reason"] == "resolved"
    for event in (updated, resolved):
        assert_valid(event.payload)


def test_event_ids_are_unique_uuid4(seed):
    transformer = Transformer(seed)
    transition = make_transition(make_alert(LIBVIRT))
    ids = {run(transformer, transition).event_id for _ in range(3000)}
    assert len(ids) == 3000


def test_event_id_blocks_are_canonical_uuid4():
    ids = _event_ids(4096)
    assert len(ids) == len(set(ids)) == 4096
    for text in ids:
        value = uuid.UUID(text)
        assert str(value) == text and value.version == 4 and value.variant == uuid.RFC_4122
    # Every hex digit that is not fixed is random: all 16 values appear at each position.
    for position in (0, 7, 9, 15, 20, 24, 35):
        assert len({text[position] for text in ids}) == 16
    assert {text[19] for text in ids} == set("89ab") and {text[14] for text in ids} == {"4"}


def test_times_in_other_zones_and_naive_are_utc(seed):
    cet = datetime.timezone(datetime.timedelta(hours=1))
    alert = make_alert(LIBVIRT, starts_at=datetime.datetime(2026, 1, 1, 13, 0, 0, 250000,
                                                            tzinfo=cet))
    payload = run(Transformer(seed), make_transition(alert)).payload
    assert payload["starts_at"] == "2026-01-01T12:00:00.250000Z"
    naive = make_alert(LIBVIRT, starts_at=datetime.datetime(2026, 1, 1, 12, 0, 0))
    assert run(Transformer(seed), make_transition(naive)).payload["starts_at"] == (
        "2026-01-01T12:00:00Z")


# ------------------------------------------------------------------ Vitrage's defects

def test_missing_label_is_null_and_reported_never_the_string_none(seed):
    labels = dict(LIBVIRT)
    del labels["domain"]
    payload = run(Transformer(seed), make_transition(make_alert(labels))).payload
    resource = payload["resource"]
    assert resource["properties"] == {"instance_name": None, "host_id": "135.248.18.109:9177"}
    assert resource["missing_labels"] == ["domain"]
    assert "None" not in resource["properties"].values()
    assert "'None'" not in repr(payload)
    assert_valid(payload)


def test_empty_label_counts_as_missing(seed):
    labels = {**LIBVIRT, "domain": ""}
    resource = run(Transformer(seed), make_transition(make_alert(labels))).payload["resource"]
    assert resource["properties"]["instance_name"] is None
    assert resource["missing_labels"] == ["domain"]


def test_unmatched_alert_is_attached_to_nothing(seed, caplog):
    labels = {"alertname": "DiskFull", "job": "node", "instance": "135.248.18.109:9100"}
    before = unmatched_count("DiskFull")
    event = run(Transformer(seed), make_transition(make_alert(labels)))
    resource = event.payload["resource"]
    assert resource == {"type": None, "id": None, "properties": {}, "rule": None,
                        "mapped": False, "missing_labels": [], "resolved": False,
                        "unresolved_reason": "unmatched", "resolve_errors": []}
    assert unmatched_count("DiskFull") == before + 1
    assert_valid(event.payload)


def test_alert_with_a_key_label_differing_is_unmatched(seed):
    # HighCpuOnVmAlert from another job must not borrow the libvirt rule's resource.
    labels = {**LIBVIRT, "job": "node"}
    event = run(Transformer(seed), make_transition(make_alert(labels)))
    assert event.payload["resource"]["mapped"] is False
    assert event.payload["resource"]["properties"] == {}


def test_unmatched_drop_policy_drops_firing_but_publishes_resolved(seed):
    transformer = Transformer(seed, unmatched="drop")
    alert = make_alert({"alertname": "Nope"})
    before = unmatched_count("Nope")
    assert run(transformer, make_transition(alert)) is None
    assert run(transformer, make_transition(alert, "updated")) is None
    resolved = run(transformer, make_transition(alert, "resolved"))
    assert resolved is not None and resolved.payload["resource"]["mapped"] is False
    assert unmatched_count("Nope") == before + 3


def test_unmatched_is_logged_once_per_alertname(seed, caplog):
    transformer = Transformer(seed)
    with caplog.at_level(logging.WARNING, logger="daemon.pipeline.transformer"):
        for _ in range(5):
            run(transformer, make_transition(make_alert({"alertname": "Once"})))
        run(transformer, make_transition(make_alert({"alertname": "Twice"})))
    messages = [r.getMessage() for r in caplog.records if "No mapping rule" in r.getMessage()]
    assert len(messages) == 2
    assert "'Once'" in messages[0] and "'Twice'" in messages[1]


def test_two_mount_points_stay_two_alarms():
    mapping = load_mapping(SEED_MAPPING)
    base = {"alertname": "HighInodeUsage", "job": "node", "instance": "135.248.18.109:9100",
            "device": "/dev/vda1", "fstype": "ext4", "severity": "critical"}
    root = make_alert({**base, "mountpoint": "/"})
    var = make_alert({**base, "mountpoint": "/var", "device": "/dev/vda2"})
    transformer = Transformer(mapping)
    first = run(transformer, make_transition(root))
    second = run(transformer, make_transition(var))
    # Same resource ...
    assert first.payload["resource"] == second.payload["resource"]
    # ... but two alarms: identity comes from the full label set, never from the resource.
    assert first.alarm_id != second.alarm_id
    assert first.payload["fingerprint"] != second.payload["fingerprint"]
    assert first.payload["labels"]["mountpoint"] == "/"
    assert second.payload["labels"]["mountpoint"] == "/var"
    assert first.event_id != second.event_id


def test_identity_is_the_transitions_even_when_resolved(seed):
    class Renamer:
        NAME = "renamer"

        async def resolve(self, request):
            return Resolution(resource_id="uuid-1", properties={"alarm_id": "x"})
    transition = make_transition(make_alert(LIBVIRT), alarm_id="alarm-42")
    event = run(Transformer(seed, resolvers=[Renamer()]), transition)
    assert event.alarm_id == event.payload["alarm_id"] == "alarm-42"
    assert event.payload["resource"]["id"] == "uuid-1"


def test_broken_file_raises_instead_of_disabling_mapping(write_mapping):
    path = write_mapping(textwrap.dedent("""\
        alerts:
        - alert:
            key: {alertname: A}
            resource: {id: instance}
        - alert:
            key: {alertname: B}
            resourse: {id: instance}
        """))
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(info.value).startswith(f"{path}:7: rule 2: unknown key 'resourse'")


def test_replace_mapping_applies_without_restart_and_invalid_keeps_old(seed, write_mapping):
    transformer = Transformer(seed)
    labels = {"alertname": "DiskFull", "instance": "h:9100"}
    assert run(transformer, make_transition(make_alert(labels))).payload["resource"][
        "mapped"] is False
    good = write_mapping("alerts:\n- key: {alertname: DiskFull}\n  resource: {id: instance}\n",
                         "good.yaml")
    old = transformer.replace_mapping(load_mapping(good))
    assert old is seed
    resource = run(transformer, make_transition(make_alert(labels))).payload["resource"]
    assert resource["mapped"] is True and resource["properties"] == {"id": "h:9100"}
    # An invalid new file raises before anything is swapped: the running mapping stays.
    bad = write_mapping("alerts:\n- key: {alertname: DiskFull}\n  resource: [x]\n", "bad.yaml")
    current = transformer.mapping
    with pytest.raises(MappingError):
        transformer.replace_mapping(load_mapping(bad))
    assert transformer.mapping is current
    assert run(transformer, make_transition(make_alert(labels))).payload["resource"][
        "mapped"] is True


def test_transform_in_flight_keeps_its_mapping(seed):
    """A swap during a resolver await does not mix two mappings in one event."""
    other = parse_mapping("alerts:\n- key: {alertname: HighCpuOnVmAlert}\n"
                          "  resource: {other: instance}\n")

    class Slow:
        async def resolve(self, request):
            transformer.replace_mapping(other)
            return Resolution()
    transformer = Transformer(seed, resolvers=[Slow()])
    event = run(transformer, make_transition(make_alert(LIBVIRT)))
    assert set(event.payload["resource"]["properties"]) == {"instance_name", "host_id"}
    assert transformer.mapping is other


# ------------------------------------------------------------------ severity

@pytest.mark.parametrize(("raw", "expected"), [
    ("critical", "critical"), ("CRITICAL", "critical"), (" Warning ", "warning"),
    ("error", "major"), ("high", "major"), ("medium", "minor"), ("low", "warning"),
    ("info", "info"), ("page", "unknown"), ("", "unknown"), (None, "unknown"),
])
def test_severity_is_normalised_and_raw_kept(seed, raw, expected):
    labels = dict(LIBVIRT)
    if raw is None:
        del labels["severity"]
    else:
        labels["severity"] = raw
    payload = run(Transformer(seed), make_transition(make_alert(labels))).payload
    assert payload["severity"] == expected and payload["severity_raw"] == raw
    assert_valid(payload)


def test_custom_severity_map_and_label(seed):
    transformer = Transformer(seed, severity_map={"P1": "critical", "p2": "major"},
                              severity_label="priority")
    payload = run(transformer, make_transition(make_alert({**LIBVIRT, "priority": "p1"})))
    assert payload.payload["severity"] == "critical"
    assert payload.payload["severity_raw"] == "p1"
    with pytest.raises(ValueError, match="not one of"):
        Transformer(seed, severity_map={"x": "fatal"})


def test_constructor_rejects_bad_policy_and_timeout(seed):
    with pytest.raises(ValueError, match="unmatched"):
        Transformer(seed, unmatched="ignore")
    with pytest.raises(ValueError, match="resolve_timeout"):
        Transformer(seed, resolve_timeout=0)


# ------------------------------------------------------------------ resolvers

TYPED = """
alerts:
- name: vm-cpu
  key: {alertname: HighCpuOnVmAlert, job: libvirt}
  type: instance
  resource: {instance_name: domain, host_id: instance}
  metrics:
    cpu: 'rate(libvirt_domain_info_cpu_time_seconds_total{domain="{domain}"}[5m])'
"""


class Recording:
    NAME = "recording"

    def __init__(self, result=None, delay=0.0, error=None):
        self.result = result or Resolution()
        self.delay = delay
        self.error = error
        self.requests: list[ResolveRequest] = []

    async def resolve(self, request):
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return self.result


def test_resolver_gets_the_request_and_its_result_is_merged():
    mapping = parse_mapping(TYPED)
    first = Recording(Resolution(resource_id="b8f3-uuid",
                                 properties={"instance_uuid": "b8f3-uuid", "host_id": "no"},
                                 metrics={"cpu": 0.42}))
    second = Recording(Resolution(resource_id="other", properties={"host_fqdn": "cmp1.example"},
                                  metrics={"cpu": 9, "nan": float("nan")}))
    transformer = Transformer(mapping, resolvers=[first, second])
    event = run(transformer, make_transition(make_alert(LIBVIRT), alarm_id="a-1"))
    request = first.requests[0]
    assert request.resource_type == "instance"
    assert request.properties == SEED_RESOURCES["HighCpuOnVmAlert"]
    assert request.labels == LIBVIRT and request.alarm_id == "a-1"
    assert request.kind == "firing" and request.rule == "vm-cpu"
    assert request.queries == {
        "cpu": 'rate(libvirt_domain_info_cpu_time_seconds_total{domain="{domain}"}[5m])'}
    resource = event.payload["resource"]
    assert resource["id"] == "b8f3-uuid" and resource["type"] == "instance"
    assert resource["properties"] == {"instance_name": "instance-00000004",
                                      "host_id": "135.248.18.109:9177",
                                      "instance_uuid": "b8f3-uuid",
                                      "host_fqdn": "cmp1.example"}
    assert resource["resolved"] is True and resource["unresolved_reason"] is None
    assert event.payload["metrics"] == {"cpu": 0.42, "nan": None}
    assert_valid(event.payload)


def test_resolver_timeout_leaves_event_unresolved_with_reason():
    mapping = parse_mapping(TYPED)
    slow = Recording(Resolution(resource_id="late"), delay=5)
    transformer = Transformer(mapping, resolvers=[slow], resolve_timeout=0.05)
    event = run(transformer, make_transition(make_alert(LIBVIRT)))
    resource = event.payload["resource"]
    assert resource["resolved"] is False and resource["id"] is None
    assert resource["unresolved_reason"] == "recording: timed out after 0.05s"
    assert resource["properties"] == SEED_RESOURCES["HighCpuOnVmAlert"]
    assert_valid(event.payload)


def test_resolver_exception_never_drops_the_event(caplog):
    mapping = parse_mapping(TYPED)
    broken = Recording(error=RuntimeError("password=hunter2 leaked"))
    good = Recording(Resolution(properties={"host_fqdn": "cmp1"}))
    event = run(Transformer(mapping, resolvers=[broken, good]),
                make_transition(make_alert(LIBVIRT)))
    resource = event.payload["resource"]
    assert resource["resolved"] is True and resource["properties"]["host_fqdn"] == "cmp1"
    assert resource["resolve_errors"] == ["recording: failed: RuntimeError"]
    assert "hunter2" not in repr(event.payload)
    # Logged by the transformer (the resolver itself is the one writer of its
    # failure counter), and without the exception's text.
    warnings = [r.getMessage() for r in caplog.records if "Resolver recording failed" in
                r.getMessage()]
    assert len(warnings) == 1 and "hunter2" not in warnings[0]


def test_resolver_errors_without_result_give_the_reason():
    mapping = parse_mapping(TYPED)
    failing = Recording(Resolution(errors=("instance_uuid: no series for domain",)))
    event = run(Transformer(mapping, resolvers=[failing]), make_transition(make_alert(LIBVIRT)))
    resource = event.payload["resource"]
    assert resource["resolved"] is False
    assert resource["unresolved_reason"] == "recording: instance_uuid: no series for domain"


def test_resolvers_run_concurrently_within_the_timeout():
    mapping = parse_mapping(TYPED)
    resolvers = [Recording(Resolution(), delay=1.0) for _ in range(5)]
    transformer = Transformer(mapping, resolvers=resolvers, resolve_timeout=10)
    loop_time = []

    async def main():
        start = asyncio.get_running_loop().time()
        await transformer.transform(make_transition(make_alert(LIBVIRT)))
        loop_time.append(asyncio.get_running_loop().time() - start)
    asyncio.run(main())
    # One after another would take 5 s; together about 1 s (wide bound for CI load).
    assert loop_time[0] < 3.0


def test_resolvers_are_not_called_for_unmatched_alerts(seed):
    resolver = Recording()
    event = run(Transformer(seed, resolvers=[resolver]),
                make_transition(make_alert({"alertname": "X"})))
    assert resolver.requests == []
    assert event.payload["resource"]["unresolved_reason"] == "unmatched"


def test_from_conf(seed):
    from oslo_config import cfg

    from daemon import conf as relay_conf

    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    conf([], project="alarm-relay", default_config_files=[])
    conf.set_override("unmatched", "drop", group="mapping")
    conf.set_override("host", "relay-9")
    transformer = Transformer.from_conf(conf, seed)
    assert run(transformer, make_transition(make_alert({"alertname": "X"}))) is None
    payload = run(transformer, make_transition(make_alert(LIBVIRT))).payload
    assert payload["source"]["relay"] == "relay-9"


# ------------------------------------------------------------------ transform_sync

def _expected_payload(transition, resource, event_id, host):
    """The documented payload, built the plain way (the reference for the fast path)."""
    alert = transition.alert

    def iso(value):
        return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    resolved = transition.kind == "resolved"
    end = max(alert.ends_at or transition.observed_at, alert.starts_at)
    raw = alert.labels.get("severity")
    return {
        "schema_version": "1.0", "event_id": event_id, "alarm_id": transition.alarm_id,
        "fingerprint": alert.fingerprint, "sequence": transition.sequence,
        "name": alert.labels.get("alertname", ""),
        "status": "resolved" if resolved else "firing",
        "reason": (transition.reason or "resolved") if resolved else None,
        "severity": DEFAULT_SEVERITY_MAP.get(raw.strip().lower(), "unknown") if raw
        else "unknown",
        "severity_raw": raw, "starts_at": iso(alert.starts_at),
        "ends_at": iso(end) if resolved else None, "observed_at": iso(transition.observed_at),
        "labels": dict(alert.labels), "annotations": dict(alert.annotations),
        "generator_url": alert.generator_url or None, "silenced_by": list(alert.silenced_by),
        "inhibited_by": list(alert.inhibited_by),
        "source": {"type": "alertmanager", "cluster": transition.cluster,
                   "url": transition.source_url, "relay": host},
        "resource": resource, "metrics": {},
    }


def _variety(seed_alerts):
    """Transitions differing in every input the transformer caches by, interleaved."""
    later = NOW + datetime.timedelta(seconds=15)
    transitions = []
    for i, alert in enumerate(seed_alerts):
        for kind in ("firing", "updated", "resolved"):
            for observed_at, cluster, url in ((NOW, "test", "http://127.0.0.1:9093"),
                                              (later, "other", "http://127.0.0.2:9093"),
                                              (NOW, "test", "http://127.0.0.3:9093")):
                transitions.append(dataclasses.replace(
                    make_transition(alert, kind, reason="expired" if i % 2 else None),
                    observed_at=observed_at, cluster=cluster, source_url=url))
    return transitions


def test_transform_sync_gives_the_documented_payload_for_every_variety(seed):
    alerts = api_alerts() + webhook_alerts() + [
        make_alert({**LIBVIRT, "severity": "page"}, annotations={"a": "b"},
                   silenced_by=("s1",), inhibited_by=("i1", "i2"), generator_url="http://g"),
        make_alert({"alertname": "HighCpuOnVmAlert", "job": "libvirt"}),  # missing labels
        make_alert({"alertname": "Unknown", "severity": "warning"}),  # unmatched
        make_alert({**LIBVIRT, "severity": "Critical "}),
    ]
    transformer = Transformer(seed, host="relay-7")
    for transition in _variety(alerts):
        event = transformer.transform_sync(transition)
        resource = event.payload["resource"]
        found = seed.match(transition.alert.labels)
        if found is None:
            assert resource == {"type": None, "id": None, "properties": {}, "rule": None,
                                "mapped": False, "missing_labels": [], "resolved": False,
                                "unresolved_reason": "unmatched", "resolve_errors": []}
        else:
            rule, properties, missing_labels = found
            assert resource == {
                "type": rule.type, "id": properties.get("id"),
                "properties": properties, "rule": rule.ref, "mapped": True,
                "missing_labels": list(missing_labels), "resolved": False,
                "unresolved_reason": "no resolver configured", "resolve_errors": []}
        expected = _expected_payload(transition, resource, event.event_id, "relay-7")
        assert event.payload == expected
        assert list(event.payload) == list(expected)  # the documented key order
        assert list(resource) == list(RESOURCE_KEYS)
        assert event.event_type == f"alarm.{transition.kind}"
        assert (event.alarm_id, event.sequence) == (transition.alarm_id, transition.sequence)
        assert_valid(event.payload)


def test_payload_with_resolvers_is_built_the_same_way(seed):
    """transform_sync inlines what _event does for the resolver path: both stay alike."""
    transformer = Transformer(seed, host="relay-7", resolvers=[Recording()])
    alerts = api_alerts() + [make_alert({"alertname": "Unknown"}),
                             make_alert(LIBVIRT, silenced_by=("s",), inhibited_by=("i",))]
    for transition in _variety(alerts):
        event = asyncio.run(transformer.transform(transition))
        resource = event.payload["resource"]
        assert resource["resolved"] is False
        assert resource["unresolved_reason"] in ("unmatched", "no resolver could resolve it")
        expected = _expected_payload(transition, resource, event.event_id, "relay-7")
        assert event.payload == expected and list(event.payload) == list(expected)
        assert event.event_type == f"alarm.{transition.kind}"
        assert_valid(event.payload)


def test_transform_sync_is_what_transform_gives(seed):
    sync, coroutine = Transformer(seed, host="h"), Transformer(seed, host="h")
    for transition in _variety(api_alerts() + [make_alert({"alertname": "Unknown"})]):
        one = sync.transform_sync(transition)
        other = asyncio.run(coroutine.transform(transition))
        assert one.event_id != other.event_id
        assert (one.event_type, one.alarm_id, one.sequence) == (
            other.event_type, other.alarm_id, other.sequence)
        assert one.payload == {**other.payload, "event_id": one.event_id}


def test_transform_sync_drops_like_transform(seed):
    transformer = Transformer(seed, unmatched="drop")
    alert = make_alert({"alertname": "Nope"})
    assert transformer.transform_sync(make_transition(alert)) is None
    assert transformer.transform_sync(make_transition(alert, "updated")) is None
    assert transformer.transform_sync(make_transition(alert, "resolved")) is not None


def test_transform_sync_refuses_resolvers(seed):
    transformer = Transformer(seed, resolvers=[Recording()])
    with pytest.raises(RuntimeError, match="resolvers"):
        transformer.transform_sync(make_transition(make_alert(LIBVIRT)))


def test_events_of_one_template_share_nothing_mutable_they_do_not_own(seed):
    transformer = Transformer(seed)
    first = transformer.transform_sync(make_transition(make_alert(LIBVIRT)))
    second = transformer.transform_sync(make_transition(make_alert(LIBVIRT)))
    assert first.payload is not second.payload
    for key in ("resource", "metrics", "silenced_by", "inhibited_by"):
        assert first.payload[key] is not second.payload[key], key
    assert first.payload["resource"]["properties"] is not second.payload["resource"][
        "properties"]
