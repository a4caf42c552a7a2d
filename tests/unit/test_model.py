"""parse_alert and fingerprint against what Alertmanager 0.25 really produced."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon import model
from daemon.exception import InvalidAlert
from daemon.model import ParseCache, fingerprint, parse_alert

UTC = dt.UTC
WHERE = "GET http://am:9093/api/v2/alerts [12]"


def test_api_fixture_parses_with_alertmanagers_fingerprint(api_firing):
    for obj in api_firing:
        alert = parse_alert(obj, where=WHERE)
        assert alert.fingerprint == obj["fingerprint"]
        assert alert.status == "firing"
        assert alert.state == "active"
        assert alert.starts_at == dt.datetime(2026, 11, 21, 22, 0, 11, 706000, tzinfo=UTC)
        assert alert.ends_at == dt.datetime(2026, 11, 21, 22, 5, 11, 706000, tzinfo=UTC)
        assert alert.updated_at == dt.datetime(2026, 11, 21, 22, 1, 11, 708000, tzinfo=UTC)
        assert alert.labels == obj["labels"]
        assert alert.annotations == obj["annotations"]
        assert alert.generator_url == obj["generatorURL"]
        assert alert.starts_at.tzinfo is UTC


def test_api_fixture_suppressed(api_after):
    by_name = {a.name: a for a in (parse_alert(o, where=WHERE) for o in api_after)}
    bridge = by_name["HighTrafficOnBridge"]
    assert bridge.suppressed
    assert bridge.silenced_by == ("8ab61ebb-bb5f-46bb-99a4-448ccb2cb200",)
    assert bridge.inhibited_by == ()
    assert not by_name["HighCpuOnVmAlert"].suppressed


def test_webhook_fixture(webhook_deliveries, api_firing):
    api = {o["fingerprint"]: parse_alert(o, where=WHERE) for o in api_firing}
    seen = 0
    for delivery in webhook_deliveries:
        for index, obj in enumerate(delivery["alerts"]):
            alert = parse_alert(obj, where=f"alerts[{index}]")
            assert alert.fingerprint == obj["fingerprint"]
            assert alert.status == obj["status"]
            # Same occurrence identity on both paths although the API prints
            # milliseconds and the webhook microseconds.
            assert alert.starts_at == api[alert.fingerprint].starts_at
            if alert.status == "firing":
                assert alert.ends_at is None  # 0001-01-01T00:00:00Z
            else:
                assert alert.ends_at == dt.datetime(2026, 11, 21, 22, 1, 18, 620533, tzinfo=UTC)
            seen += 1
    assert seen == 6


def test_posted_objects_parse_as_webhook_like(api_firing):
    obj = dict(api_firing[0])
    obj["status"] = "firing"
    assert parse_alert(obj, where="x").status == "firing"


def test_replica_labels_are_dropped_from_fingerprint(api_firing):
    obj = copy.deepcopy(api_firing[0])
    obj["labels"]["replica"] = "b"
    alert = parse_alert(obj, where=WHERE, replica_labels=("replica",))
    assert alert.fingerprint == api_firing[0]["fingerprint"]
    assert alert.labels["replica"] == "b"
    # Alertmanager would give this label set its own fingerprint; without one
    # given, the local hash over every label (replica included) differs.
    del obj["fingerprint"]
    assert parse_alert(obj, where=WHERE).fingerprint != api_firing[0]["fingerprint"]


def test_alertmanagers_fingerprint_is_reused_only_when_it_can_be_trusted(api_firing):
    obj = copy.deepcopy(api_firing[0])
    local = fingerprint(obj["labels"])
    assert parse_alert(obj, where=WHERE).fingerprint == obj["fingerprint"] == local
    # A malformed one is never taken: the label set is hashed locally.
    obj["fingerprint"] = "not-a-fingerprint"
    assert parse_alert(obj, where=WHERE).fingerprint == local
    # With a replica label to drop, Alertmanager's (over all labels) is not ours.
    obj = copy.deepcopy(api_firing[0])
    obj["labels"]["replica"] = "a"
    obj["fingerprint"] = fingerprint(obj["labels"])
    dropped = parse_alert(obj, where=WHERE, replica_labels=("replica",))
    assert dropped.fingerprint == api_firing[0]["fingerprint"]


@pytest.mark.parametrize("mutate, message", [
    (lambda o: o["labels"].__setitem__("alertname", 3), "labels.alertname must be a string"),
    (lambda o: o.__setitem__("labels", []), "labels must be an object"),
    (lambda o: o.__setitem__("labels", {}), "labels must not be empty"),
    (lambda o: o.pop("labels"), "labels is required"),
    (lambda o: o["annotations"].__setitem__("title", None), "annotations.title must be a string"),
    (lambda o: o.__setitem__("startsAt", "yesterday"), "startsAt is not an RFC 3339 time"),
    (lambda o: o.__setitem__("startsAt", "2026-11-21T22:00:11"), "startsAt has no time zone"),
    (lambda o: o.__setitem__("startsAt", 17), "startsAt must be a string"),
    (lambda o: o.pop("startsAt"), "startsAt is required"),
    (lambda o: o.__setitem__("endsAt", []), "endsAt must be a string"),
    (lambda o: o["status"].__setitem__("state", "asleep"), "status.state must be one of"),
    (lambda o: o["status"].__setitem__("silencedBy", "x"), "status.silencedBy must be a list"),
    (lambda o: o["status"].__setitem__("inhibitedBy", [1]), "status.inhibitedBy must be a list"),
    (lambda o: o.__setitem__("status", 5), "status must be an object"),
    (lambda o: o.pop("status"), "status is required"),
    (lambda o: o.__setitem__("generatorURL", 5), "generatorURL must be a string"),
    (lambda o: o.__setitem__("fingerprint", 5), "fingerprint must be a string"),
])
def test_invalid_api_alert_names_field_and_where(api_firing, mutate, message):
    obj = copy.deepcopy(api_firing[0])
    mutate(obj)
    with pytest.raises(InvalidAlert) as info:
        parse_alert(obj, where=WHERE)
    assert str(info.value).startswith(f"invalid alert at {WHERE}: {message}")


def test_invalid_webhook_alerts(webhook_deliveries):
    obj = copy.deepcopy(webhook_deliveries[0]["alerts"][0])
    obj["status"] = "pending"
    with pytest.raises(InvalidAlert, match=r"alerts\[3\]: status must be firing or resolved"):
        parse_alert(obj, where="alerts[3]")
    obj["status"] = "resolved"  # endsAt is 0001-01-01
    with pytest.raises(InvalidAlert, match="endsAt must be set on a resolved alert"):
        parse_alert(obj, where="alerts[3]")


def test_not_an_object():
    with pytest.raises(InvalidAlert, match="alert must be an object"):
        parse_alert([1, 2], where="alerts[0]")


def test_times_normalised_to_utc_and_millis(api_firing):
    obj = copy.deepcopy(api_firing[0])
    obj["startsAt"] = "2026-11-21T23:00:11.706081999+01:00"
    obj["endsAt"] = "2026-11-21T23:05:11.5+01:00"
    alert = parse_alert(obj, where="x")
    assert alert.starts_at == dt.datetime(2026, 11, 21, 22, 0, 11, 706000, tzinfo=UTC)
    assert alert.ends_at == dt.datetime(2026, 11, 21, 22, 5, 11, 500000, tzinfo=UTC)
    assert alert.starts_at.tzinfo is UTC and alert.ends_at.tzinfo is UTC


def test_cache_gives_same_results_and_catches_changes(api_firing):
    cache = ParseCache()
    first = [parse_alert(o, where="x", cache=cache) for o in api_firing]
    second = [parse_alert(o, where="x", cache=cache) for o in api_firing]
    assert first == second
    assert second[0] is first[0]  # the same object: nothing parsed again
    cache.rotate()
    moved = copy.deepcopy(api_firing[0])
    moved["endsAt"] = "2026-11-21T22:09:11.706Z"
    third = parse_alert(moved, where="x", cache=cache)
    assert third.labels is first[0].labels and third.annotations is first[0].annotations
    assert third.ends_at.minute == 9
    cache.rotate()
    cache.rotate()
    assert len(cache) == 0
    changed = copy.deepcopy(api_firing[0])
    changed["labels"]["severity"] = 7  # same AM fingerprint, bad labels: still caught
    with pytest.raises(InvalidAlert, match="labels.severity must be a string"):
        parse_alert(changed, where="x", cache=cache)
    changed["labels"]["severity"] = "minor"  # other labels: re-read, not taken from the cache
    changed["fingerprint"] = fingerprint(changed["labels"])  # as Alertmanager gives it
    reparsed = parse_alert(changed, where="x", cache=cache)
    assert reparsed.labels["severity"] == "minor"
    assert reparsed.fingerprint == fingerprint(changed["labels"])
    changed = copy.deepcopy(changed)  # parsed objects must not be mutated (cached)
    changed["annotations"] = {"title": 1}
    with pytest.raises(InvalidAlert, match="annotations.title"):
        parse_alert(changed, where="x", cache=cache)


def _reference_fingerprint(labels):
    # prometheus/common model.labelSetToFingerprint, written out plainly.
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for b in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return f"{h:016x}"


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20),
                       min_size=1, max_size=8))
def test_fingerprint_matches_reference(labels):
    assert fingerprint(labels) == _reference_fingerprint(labels)


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=6),
       st.text(max_size=8))
def test_parse_never_crashes_on_odd_labels(labels, starts):
    obj = {"labels": labels, "annotations": {}, "startsAt": starts, "endsAt": starts,
           "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}
    try:
        alert = parse_alert(obj, where="x")
    except InvalidAlert:
        return
    assert alert.fingerprint == fingerprint(labels)


# -- the parse cache keeps Alerts, not decoded objects -----------------------------

_BASE = {
    "labels": {"alertname": "HighCpu", "severity": "critical", "instance": "vm-1"},
    "annotations": {"title": "High cpu"}, "generatorURL": "http://prom/graph?g0.expr=up",
    "startsAt": "2026-11-21T22:00:11.706Z", "endsAt": "2026-11-21T22:05:11.706Z",
    "updatedAt": "2026-11-21T22:01:11.708Z", "fingerprint": "0123456789abcdef",
    "receivers": [{"name": "relay"}],
    "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"}}
_MISSING = object()
#: (path, value): one change of the object; _MISSING removes the field.
_CHANGES = [
    (("startsAt",), "2026-11-21T22:00:11.706999Z"),  # same millisecond: the same Alert
    (("startsAt",), "2026-11-21T22:00:12.706Z"), (("startsAt",), "0001-01-01T00:00:00Z"),
    (("startsAt",), 5), (("startsAt",), _MISSING), (("startsAt",), "yesterday"),
    (("endsAt",), "2026-11-21T22:09:11.706Z"), (("endsAt",), "0001-01-01T00:00:00Z"),
    (("endsAt",), _MISSING), (("endsAt",), None), (("endsAt",), []),
    (("endsAt",), "2026-11-21T23:05:11.706+01:00"),
    (("updatedAt",), "2026-11-21T22:02:11.708Z"), (("updatedAt",), _MISSING),
    (("updatedAt",), 7),
    (("status", "state"), "suppressed"), (("status", "state"), "bogus"),
    (("status", "state"), _MISSING), (("status", "state"), ["active"]),
    (("status", "silencedBy"), ["s-1"]), (("status", "silencedBy"), [1]),
    (("status", "silencedBy"), _MISSING), (("status", "inhibitedBy"), ["i-1"]),
    (("status", "inhibitedBy"), "i-1"),
    (("status",), "firing"), (("status",), "resolved"), (("status",), "pending"),
    (("status",), _MISSING), (("status",), 3),
    (("generatorURL",), "http://other"), (("generatorURL",), _MISSING),
    (("generatorURL",), 1),
    (("labels", "severity"), "minor"), (("labels", "severity"), 7),
    (("labels", "extra"), "x"), (("labels",), {}), (("labels",), _MISSING),
    (("annotations", "title"), "Other"), (("annotations", "title"), 1),
    (("annotations",), {}), (("annotations",), _MISSING), (("annotations",), []),
    (("receivers",), []), (("fingerprint",), 12),
]


def _changed(changes) -> dict:
    obj = copy.deepcopy(_BASE)
    for path, value in changes:
        target = obj
        for key in path[:-1]:
            if type(target.get(key)) is not dict:
                target[key] = {}
            target = target[key]
        if value is _MISSING:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = copy.deepcopy(value)
    return obj


def _outcome(obj, cache=None):
    try:
        return parse_alert(obj, where="x", cache=cache)
    except InvalidAlert as err:
        return str(err)


@given(st.lists(st.lists(st.sampled_from(_CHANGES), max_size=3), min_size=1, max_size=5),
       st.booleans())
def test_cached_parse_gives_what_a_fresh_parse_gives(objects, rotate):
    """Whatever changed since the cached Alert was parsed, the cache answers as a fresh parse."""
    cache = ParseCache()
    for changes in [[], *objects]:
        obj = _changed(changes)
        assert _outcome(obj, cache) == _outcome(copy.deepcopy(obj))
        if rotate:
            cache.rotate()


def test_cache_keeps_no_decoded_object(api_firing):
    import sys

    cache = ParseCache()
    obj = api_firing[0]
    held = (sys.getrefcount(obj), sys.getrefcount(obj["labels"]),
            sys.getrefcount(obj["status"]))
    alert = parse_alert(obj, where="x", cache=cache)
    assert parse_alert(copy.deepcopy(obj), where="x", cache=cache) is alert
    assert (sys.getrefcount(obj), sys.getrefcount(obj["labels"]),
            sys.getrefcount(obj["status"])) == held
    assert alert.labels == obj["labels"] and alert.labels is not obj["labels"]


def test_alerts_share_repeated_strings(api_firing):
    one, two = (parse_alert(copy.deepcopy(o), where="x") for o in api_firing[:2])
    for name in one.labels.keys() & two.labels.keys():
        if one.labels[name] == two.labels[name]:
            assert one.labels[name] is two.labels[name]
        assert next(k for k in one.labels if k == name) is next(
            k for k in two.labels if k == name)
    assert one.generator_url is two.generator_url or one.generator_url != two.generator_url
    assert one.state is two.state
    long = "x" * 10_000
    assert model.share("".join(["x"] * 10_000)) is not long  # long text is not pinned
    assert model.share("-".join(["a", "b"])) is model.share("-".join(["a", "b"]))


def test_time_and_string_tables_stay_bounded():
    """A relay running for days keeps the recent values, not every value it parsed."""
    base = dt.datetime(2026, 11, 21, tzinfo=UTC)
    for i in range(3 * model._TIME_CACHE_MAX):
        stamp = (base + dt.timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
        obj = {**_BASE, "startsAt": stamp, "endsAt": stamp, "fingerprint": f"{i:016x}"}
        assert parse_alert(obj, where="x").starts_at == base + dt.timedelta(milliseconds=i)
    for cache in (model._TIME_CACHE, model._MS_TIME_CACHE):
        assert len(cache) + len(model._OLD_TIMES[id(cache)]) <= 2 * model._TIME_CACHE_MAX
    for i in range(3 * model._STRINGS_MAX):
        model.share(f"value-{i}")
    assert len(model._STRINGS) + len(model._STRINGS_OLD) <= 2 * model._STRINGS_MAX
