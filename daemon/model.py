"""The neutral model: what sources produce and the core consumes.

An :class:`Alert` is one observation of one Alertmanager alert, parsed and
validated; :class:`ReplicaPoll` and :class:`PollResult` are what one poll
cycle of a cluster's replicas answered.  None of them carries state: the
lifecycle tracker decides what an observation means.  This module imports
neither the sources nor the publishing side, so both (and the pure core) can
depend on it.

``parse_alert`` reads both shapes Alertmanager 0.25 produces: the objects of
``GET /api/v2/alerts`` (``status`` is an object) and the alerts of a webhook
v4 delivery (``status`` is ``firing`` or ``resolved``).  Times are returned
tz-aware in UTC; ``startsAt`` is truncated to the millisecond because the API
prints milliseconds while the webhook prints microseconds, and the occurrence
identity (fingerprint + startsAt) must be the same on both paths.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping

from daemon.exception import InvalidAlert

__all__ = ["Alert", "ParseCache", "ParseProblem", "ParsedAlerts", "PollResult", "ReplicaPoll",
           "fingerprint", "parse_alert", "parse_alerts"]

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = b"\xff"


def fingerprint(labels: Mapping[str, str], drop: Iterable[str] = ()) -> str:
    """Alertmanager's fingerprint of a label set, as 16 hex digits.

    FNV-1a 64 over the sorted label pairs, each name and value followed by
    0xff (prometheus/common model.LabelsToSignature).  Labels named in
    ``drop`` (replica labels) are left out first.

    :param labels: the alert's labels
    :param drop: label names to ignore
    """
    dropped = drop if isinstance(drop, frozenset) else frozenset(drop)
    data = _SEPARATOR.join([part.encode() for name in sorted(labels) if name not in dropped
                            for part in (name, labels[name])])
    value = _FNV64_OFFSET
    if data:
        for byte in data + _SEPARATOR:
            value = ((value ^ byte) * _FNV64_PRIME) & _MASK64
    return f"{value:016x}"


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    """One observation of an alert, from the API or from a webhook delivery.

    :ivar fingerprint: computed locally from ``labels`` minus replica labels
    :ivar status: ``firing``, or ``resolved`` (only webhook deliveries say so)
    :ivar state: Alertmanager's ``active``, ``suppressed`` or ``unprocessed``
    :ivar ends_at: None when Alertmanager gave none (webhook ``0001-01-01``)
    """

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime.datetime
    ends_at: datetime.datetime | None
    status: str = "firing"
    state: str = "active"
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    generator_url: str = ""
    updated_at: datetime.datetime | None = None

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def suppressed(self) -> bool:
        return self.state == "suppressed"


_UTC = datetime.UTC
_ZERO_TIME = "0001-01-01T00:00:00"
#: The canonical state names: an Alert holds these, not the decoded copies.
_STATES = {name: name for name in ("active", "suppressed", "unprocessed")}
_WEBHOOK_STATUSES = {name: name for name in ("firing", "resolved")}
#: Parsed times by their text (startsAt to the millisecond apart): alerts sent together
#: share their endsAt and updatedAt.  Each is two bounded generations, like _STRINGS:
#: a long-running relay keeps the recent times, not every time it ever parsed.
_TIME_CACHE: dict[str, datetime.datetime | None] = {}
_MS_TIME_CACHE: dict[str, datetime.datetime | None] = {}
_OLD_TIMES: dict[int, dict[str, datetime.datetime | None]] = {
    id(_TIME_CACHE): {}, id(_MS_TIME_CACHE): {}}
_TIME_CACHE_MAX = 2048
_EMPTY: Mapping[str, str] = {}
_MISSING = object()

#: Shared copies of the strings alerts repeat (label names, common values, generator
#: URLs, silence ids): a decoded body holds one copy per alert.  Two bounded
#: generations: when the current one is full it becomes the previous one, and a string
#: found there moves back, so values that keep coming stay shared while unique ones
#: (ids, descriptions) pass through; the table holds at most twice _STRINGS_MAX.
_STRINGS: dict[str, str] = {}
_STRINGS_OLD: dict[str, str] = {}
_STRINGS_MAX = 16384
#: Longer strings are not shared (the table must not pin large dead text).
_STRINGS_MAX_LEN = 512


def share(value: str) -> str:
    """The shared copy of a string equal to ``value`` (``value`` itself if new or long).

    :param value: any string
    :returns: an equal string; the same object for equal values seen recently
    """
    global _STRINGS, _STRINGS_OLD
    found = _STRINGS.get(value)
    if found is not None:
        return found
    if len(value) > _STRINGS_MAX_LEN:
        return value
    found = _STRINGS_OLD.get(value)
    if found is not None:
        value = found
    if len(_STRINGS) >= _STRINGS_MAX:
        _STRINGS_OLD = _STRINGS
        _STRINGS = {}
    _STRINGS[value] = value
    return value


def _shared_strings(values: dict[str, str]) -> dict[str, str]:
    """A copy of a validated string dict with shared names and values."""
    get = _STRINGS.get
    out = {}
    for name, value in values.items():
        out[get(name) or share(name)] = get(value) or share(value)
    return out


class _Problem(Exception):
    """A field that does not parse; ``parse_alert`` adds where it was."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem


class ParseCache:
    """Memory of alerts already parsed, keyed by Alertmanager's fingerprint.

    Alertmanager returns the same alerts poll after poll.  When an object says
    what the :class:`Alert` parsed last time for its fingerprint holds (every
    field the Alert is made of compared, in the Alert's own terms), that same
    Alert is returned without validating, hashing or allocating again; when
    only some fields changed, the labels (and their fingerprint) and
    annotations are reused if equal.  Only the Alerts are kept, not the decoded
    objects: an entry costs a dictionary slot, the Alert being the one the
    tracker keeps anyway.  A wrong or colliding key only costs a miss.  Not
    alert state: it only speeds up parsing and may be cleared at any time.

    Entries live for two generations: :meth:`rotate` after each complete poll
    forgets what the poll before did not list, so memory follows the alerts
    Alertmanager holds.

    :param replica_labels: label names left out of the fingerprint
    :param max_size: entries per generation before it starts over
    """

    __slots__ = ("_current", "_max_size", "_previous", "drop")

    def __init__(self, replica_labels: Iterable[str] = (), *, max_size: int = 200_000) -> None:
        self.drop = frozenset(replica_labels)
        self._max_size = max_size
        self._current: dict[str, Alert] = {}
        self._previous: dict[str, Alert] = {}

    def __len__(self) -> int:
        return len(self._current.keys() | self._previous.keys())

    def rotate(self) -> None:
        """Start a new generation (entries not used since the last rotation go)."""
        self._previous = self._current
        self._current = {}

    def clear(self) -> None:
        """Forget every entry (the next parse of each object starts cold)."""
        self._current = {}
        self._previous = {}

    def _get(self, key: str, obj: dict) -> tuple[Alert | None, Alert | None]:
        """The cached Alert when ``obj`` still says it, else the Alert to reuse parts of."""
        alert = self._current.get(key)
        if alert is None:
            alert = self._previous.get(key)
            if alert is not None and _says(obj, alert):
                self._current[key] = alert
                return alert, alert
        elif _says(obj, alert):
            return alert, alert
        return None, alert

    def _put(self, key: str, alert: Alert) -> None:
        if len(self._current) >= self._max_size:
            self._current = {}
        self._current[key] = alert


def _same_time(raw: object, value: datetime.datetime | None, cache: dict) -> bool:
    """Whether a raw time field parses to ``value`` (False when it would not parse)."""
    if raw is None:
        return value is None
    if type(raw) is not str:
        return False
    found = cache.get(raw, _MISSING)
    if found is _MISSING:
        try:
            found = _parse_time(raw, "", millis=cache is _MS_TIME_CACHE)
        except _Problem:
            return False
    return found == value if value is not None else found is None


def _same_ids(raw: object, ids: tuple[str, ...]) -> bool:
    if type(raw) is not list:
        return False
    if not raw:
        return not ids
    return len(raw) == len(ids) and all(a == b for a, b in zip(raw, ids, strict=True))


def _says(obj: dict, alert: Alert) -> bool:
    """Whether parsing ``obj`` would give an Alert equal to ``alert`` (same fingerprint key).

    Compares, field by field, what :func:`_build` reads; a value that is not
    valid never equals the (valid) Alert's, so a True here needs no validation.
    """
    status = obj.get("status")
    if type(status) is dict:  # GET /api/v2/alerts
        if (alert.status != "firing" or status.get("state") != alert.state
                or not _same_ids(status.get("silencedBy"), alert.silenced_by)
                or not _same_ids(status.get("inhibitedBy"), alert.inhibited_by)
                or not _same_time(obj.get("updatedAt"), alert.updated_at, _TIME_CACHE)):
            return False
    elif (status != alert.status or type(status) is not str or alert.state != "active"
          or alert.silenced_by or alert.inhibited_by or alert.updated_at is not None):
        return False  # webhook v4: what it cannot say must be the defaults
    return (obj.get("labels") == alert.labels
            and obj.get("annotations", _EMPTY) == alert.annotations
            and obj.get("generatorURL", "") == alert.generator_url
            and obj.get("startsAt") is not None
            and _same_time(obj.get("startsAt"), alert.starts_at, _MS_TIME_CACHE)
            and _same_time(obj.get("endsAt"), alert.ends_at, _TIME_CACHE))


def _check_strings(value: object, field: str) -> dict[str, str]:
    if type(value) is not dict:
        raise _Problem(field, "must be an object")
    # JSON object keys are always strings; the values must be too.
    if value and set(map(type, value.values())) != {str}:
        for name, item in value.items():
            if type(item) is not str:
                raise _Problem(f"{field}.{name}", "must be a string")
    return value


def _check_string_list(value: object, field: str) -> tuple[str, ...]:
    if type(value) is not list:
        raise _Problem(field, "must be a list")
    if value and set(map(type, value)) != {str}:
        raise _Problem(field, "must be a list of strings")
    return tuple(value)


def _parse_time(value: object, field: str, *, millis: bool = False) -> datetime.datetime | None:
    if type(value) is not str:
        raise _Problem(field, "must be a string")
    cache = _MS_TIME_CACHE if millis else _TIME_CACHE
    try:
        return cache[value]
    except KeyError:
        pass
    old = _OLD_TIMES[id(cache)]
    if value in old:
        parsed = old[value]
    elif value.startswith(_ZERO_TIME):
        parsed = None
    else:
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise _Problem(field, f"is not an RFC 3339 time: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            raise _Problem(field, f"has no time zone: {value[:40]!r}")
        if parsed.utcoffset():
            parsed = parsed.astimezone(_UTC)
        elif parsed.tzinfo is not _UTC:
            parsed = parsed.replace(tzinfo=_UTC)
        if millis and parsed.microsecond % 1000:
            parsed = parsed.replace(microsecond=parsed.microsecond - parsed.microsecond % 1000)
    if len(cache) >= _TIME_CACHE_MAX:
        # The current generation becomes the old one (the dicts swap contents, so the
        # module's names keep pointing at the current one).
        old.clear()
        old.update(cache)
        cache.clear()
    cache[value] = parsed
    return parsed


def _labels_and_fingerprint(obj: dict, drop: frozenset[str],
                            entry: Alert | None) -> tuple[Mapping[str, str], str]:
    labels = obj.get("labels")
    if entry is not None and entry.labels == labels:
        return entry.labels, entry.fingerprint
    if labels is None:
        raise _Problem("labels", "is required")
    labels = _check_strings(labels, "labels")
    if not labels:
        raise _Problem("labels", "must not be empty")
    given = obj.get("fingerprint")
    # Alertmanager's own fingerprint is the same FNV-1a over the same labels
    # when no replica label is to be dropped: reuse it (the pure-Python hash
    # dominates parsing a 50,000-alert storm).
    if (type(given) is str and _AM_FINGERPRINT.fullmatch(given)
            and drop.isdisjoint(labels)):
        return _shared_strings(labels), given
    return _shared_strings(labels), fingerprint(labels, drop)


_AM_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def _annotations(obj: dict, entry: Alert | None) -> Mapping[str, str]:
    annotations = obj.get("annotations", _EMPTY)
    if entry is not None and entry.annotations == annotations:
        return entry.annotations
    if annotations is _EMPTY or annotations == _EMPTY:
        return _EMPTY
    return _shared_strings(_check_strings(annotations, "annotations"))


def _string_ids(value: object, field: str) -> tuple[str, ...]:
    if type(value) is list and not value:
        return ()
    return tuple(map(share, _check_string_list(value, field)))


def _parse(obj: object, drop: frozenset[str], cache: ParseCache | None) -> Alert:
    if type(obj) is not dict:
        raise _Problem("alert", "must be an object")
    am_fp = obj.get("fingerprint")
    entry = None
    if am_fp is not None:
        if type(am_fp) is not str:
            raise _Problem("fingerprint", "must be a string")
        if cache is not None:
            hit, entry = cache._get(am_fp, obj)
            if hit is not None:
                return hit
    alert = _build(obj, drop, entry)
    if cache is not None and am_fp is not None:
        cache._put(am_fp, alert)
    return alert


def _build(obj: dict, drop: frozenset[str], entry: Alert | None) -> Alert:
    labels, fp = _labels_and_fingerprint(obj, drop, entry)
    annotations = _annotations(obj, entry)
    if "startsAt" not in obj:
        raise _Problem("startsAt", "is required")
    starts_at = _parse_time(obj["startsAt"], "startsAt", millis=True)
    if starts_at is None:
        raise _Problem("startsAt", "must be set")
    ends_at_raw = obj.get("endsAt")
    ends_at = None if ends_at_raw is None else _parse_time(ends_at_raw, "endsAt")
    generator_url = obj.get("generatorURL", "")
    if type(generator_url) is not str:
        raise _Problem("generatorURL", "must be a string")
    if generator_url:
        generator_url = share(generator_url)
    status = obj.get("status")
    if type(status) is dict:  # GET /api/v2/alerts
        state = _STATES.get(status.get("state")) if type(status.get("state")) is str else None
        if state is None:
            raise _Problem("status.state",
                           "must be one of active, suppressed, unprocessed")
        silenced = _string_ids(status.get("silencedBy"), "status.silencedBy")
        inhibited = _string_ids(status.get("inhibitedBy"), "status.inhibitedBy")
        updated_raw = obj.get("updatedAt")
        updated_at = None if updated_raw is None else _parse_time(updated_raw, "updatedAt")
        return Alert(fp, labels, annotations, starts_at, ends_at, "firing", state,
                     silenced, inhibited, generator_url, updated_at)
    if type(status) is str:  # webhook v4
        canonical = _WEBHOOK_STATUSES.get(status)
        if canonical is None:
            raise _Problem("status", "must be firing or resolved")
        if canonical == "resolved" and ends_at is None:
            raise _Problem("endsAt", "must be set on a resolved alert")
        return Alert(fp, labels, annotations, starts_at, ends_at, canonical, "active",
                     (), (), generator_url, None)
    if status is None:
        raise _Problem("status", "is required")
    raise _Problem("status", "must be an object (API v2) or a string (webhook v4)")


def parse_alert(obj: object, *, where: str, replica_labels: Iterable[str] = (),
                cache: ParseCache | None = None) -> Alert:
    """Validate one alert object of the API v2 or of a webhook v4 delivery.

    :param obj: the decoded JSON object
    :param where: where it came from, for the error message
        (``GET http://am:9093/api/v2/alerts [12]``, ``alerts[3]``)
    :param replica_labels: label names left out of the fingerprint
    :param cache: optional :class:`ParseCache` shared by successive polls; when
        given, its own ``replica_labels`` apply
    :raises InvalidAlert: naming the field and ``where``
    """
    drop = cache.drop if cache is not None else frozenset(replica_labels)
    try:
        return _parse(obj, drop, cache)
    except _Problem as problem:
        raise InvalidAlert(where=where,
                           problem=f"{problem.field} {problem.problem}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class ParseProblem:
    """One object of a batch that did not parse.

    :ivar index: its position in the batch
    :ivar field: the field at fault (``labels.job``, ``startsAt``)
    :ivar problem: what is wrong with it
    :ivar fingerprint: the fingerprint of its labels when they were readable
        (the alert is present, only unreadable), else None
    """

    index: int
    field: str
    problem: str
    fingerprint: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedAlerts:
    """A batch of alert objects, parsed: the valid alerts and the problems."""

    alerts: list[Alert]
    problems: list[ParseProblem]


def parse_alerts(objects: Iterable[object], *, cache: ParseCache) -> ParsedAlerts:
    """Validate a batch of alert objects (a poll's list, a delivery's ``alerts``).

    Never raises for a bad object: each one becomes a :class:`ParseProblem`.

    :param objects: the decoded JSON objects, API v2 or webhook v4 shape
    :param cache: the :class:`ParseCache` of the caller (its replica labels apply)
    """
    drop = cache.drop
    alerts: list[Alert] = []
    append = alerts.append
    problems: list[ParseProblem] = []
    for index, obj in enumerate(objects):
        try:
            append(_parse(obj, drop, cache))
        except _Problem as problem:
            labels = obj.get("labels") if type(obj) is dict else None
            readable = (type(labels) is dict
                        and all(type(value) is str for value in labels.values()))
            problems.append(ParseProblem(index, problem.field, problem.problem,
                                         fingerprint(labels, drop) if readable else None))
    return ParsedAlerts(alerts, problems)


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaPoll:
    """What one replica answered in one cycle.

    :ivar url: the replica's base URL, credentials removed
    :ivar alerts: the valid alerts; None when the poll failed (never resolves)
    :ivar error: why it failed, or None
    :ivar uptime: ``GET /api/v2/status`` uptime (its start time); None if unknown
    :ivar cluster_status: ``ready``, ``settling``, ``disabled`` or None
    :ivar invalid: fingerprints of alerts present but invalid (still present)
    :ivar clock_offset: the replica's clock minus the relay's, in seconds, from
        the ``Date`` header (about one second of resolution); None if unknown
    """

    url: str
    alerts: list[Alert] | None
    error: str | None = None
    uptime: str | None = None
    cluster_status: str | None = None
    invalid: frozenset[str] = frozenset()
    clock_offset: float | None = None

    @property
    def ok(self) -> bool:
        return self.alerts is not None


@dataclasses.dataclass(frozen=True, slots=True)
class PollResult:
    """One cycle over every replica of one cluster.

    :ivar started_at: wall-clock time the first request was sent (UTC)
    :ivar finished_at: wall-clock time the last answer arrived (UTC)
    """

    cluster: str
    replicas: tuple[ReplicaPoll, ...]
    started_at: datetime.datetime
    finished_at: datetime.datetime

    @property
    def complete(self) -> bool:
        """Every replica answered."""
        return all(r.alerts is not None for r in self.replicas)
