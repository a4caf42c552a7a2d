"""``AlarmEvent``: what is stored in the outbox and published on the bus.

The payload's JSON Schema ships as ``daemon/pipeline/schema.json``;
:func:`load_schema` returns it (tests and ``alarm-relay-manage`` validate
against it).  :func:`bound_event` cuts an event whose payload is too large
for the broker (``[publisher] max_event_bytes``).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Callable
from typing import Any, Final, NamedTuple

__all__ = ["AlarmEvent", "SCHEMA_VERSION", "TRUNCATED_MARKER", "bound_event",
           "encode_payload", "load_schema", "new_event"]

SCHEMA_VERSION = "1.0"

#: Ends a value :func:`bound_event` cut; ``{}`` is the number of UTF-8 bytes cut off
#: (of a metric value that is not a string: the bytes of its JSON, all of it).
TRUNCATED_MARKER: Final = "\u2026[truncated {} bytes]"

#: The payload as JSON, as the outbox stores it and :func:`bound_event` measures it:
#: compact, ASCII only (what is not ASCII is written ``\\uXXXX``, as oslo.messaging's
#: encoder writes it too).
encode_payload: Final[Callable[[Any], str]] = json.JSONEncoder(
    separators=(",", ":")).encode


@functools.cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the event payload, schema_version 1.0.

    Treat the returned dict as read-only: it is cached.
    """
    text = importlib.resources.files("daemon.pipeline").joinpath("schema.json").read_text(
        encoding="utf-8")
    return json.loads(text)


class AlarmEvent(NamedTuple):
    """One notification to publish (immutable).

    A named tuple rather than a frozen dataclass: the transformer builds one
    per alert, and a tuple is the cheapest immutable record Python makes
    (:func:`new_event`, about 115 ns against 290 ns for the dataclass).

    :ivar event_type: ``alarm.firing``, ``alarm.updated`` or ``alarm.resolved``
    :ivar payload: the flat JSON object of docs/events.md (schema_version 1.0),
        whose event_id, alarm_id and sequence equal the fields here; read-only
        (the transformer shares ``labels`` and ``annotations`` with the alert
        and ``source`` between events instead of copying them)
    """

    event_id: str
    event_type: str
    alarm_id: str
    sequence: int
    payload: dict[str, Any]

    @property
    def severity(self) -> str:
        return self.payload.get("severity", "unknown")


_NEW_TUPLE = tuple.__new__


def new_event(event_id: str, event_type: str, alarm_id: str, sequence: int,
              payload: dict[str, Any]) -> AlarmEvent:
    """``AlarmEvent(...)`` without the keyword handling of its constructor (hot path)."""
    return _NEW_TUPLE(AlarmEvent, (event_id, event_type, alarm_id, sequence, payload))


# --------------------------------------------------------------------------- size bound

def bound_event(event: AlarmEvent, text: str,
                max_bytes: int) -> tuple[AlarmEvent, str, tuple[str, ...]]:
    """``event`` with its payload cut to at most ``max_bytes`` of JSON, if it is larger.

    One huge alert (a 12 MB annotation) must not make an event the broker
    refuses, which would hold its alarm in the outbox forever.  The largest
    values are cut first, all to the same size (so one huge annotation is
    cut, and small values stay whole): label and annotation values, resource
    properties and id, ``generator_url`` and metric values.  A cut string
    keeps its beginning and ends with :data:`TRUNCATED_MARKER`; a cut metric
    value that is not a string becomes the marker alone.  Names (of labels,
    annotations, properties, metrics) are never cut, nor are the identity
    fields (``event_id``, ``alarm_id``, ``fingerprint``, ``sequence``, times),
    so the event stays valid against the schema.  The result depends only on
    the event and ``max_bytes``.

    An event that is only too large because of its many names (tens of
    thousands of labels) is cut as far as it goes and may stay larger.

    :param event: the event
    :param text: ``encode_payload(event.payload)``
    :param max_bytes: the most bytes of JSON its payload may take
    :returns: the event (the same object when it fits), its payload's JSON,
        and the paths of the values cut (``annotations.description``)
    """
    excess = len(text) - max_bytes
    if excess <= 0:
        return event, text, ()
    payload = dict(event.payload)
    # Copies of the containers whose values may be cut (the event is not changed).
    parts: dict[str, dict[str, Any]] = {
        name: dict(payload[name]) for name in ("labels", "annotations", "metrics")
        if isinstance(payload.get(name), dict)}
    resource = payload.get("resource")
    if isinstance(resource, dict):
        resource = dict(resource)
        if isinstance(resource.get("properties"), dict):
            parts["resource.properties"] = resource["properties"] = dict(
                resource["properties"])
        parts["resource"] = resource
    parts[""] = payload
    candidates: list[tuple[int, str, dict[str, Any], str]] = []
    for where, container in parts.items():
        keys: Any = container
        if where == "resource":
            keys = ("id",)
        elif where == "":
            keys = ("generator_url",)
        for key in keys:
            value = container.get(key)
            if isinstance(value, str) or (where == "metrics" and value is not None):
                path = f"{where}.{key}" if where else key
                candidates.append((len(encode_payload(value)), path, container, key))

    cap = _cap([c[0] for c in candidates], excess)
    cut: list[str] = []
    for size, path, container, key in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if size <= cap:
            break
        container[key] = _cut(container[key], cap)
        cut.append(path)
    for name in ("labels", "annotations", "metrics"):
        if name in parts:
            payload[name] = parts[name]
    if isinstance(resource, dict):
        payload["resource"] = resource
    bounded = new_event(event.event_id, event.event_type, event.alarm_id, event.sequence,
                        payload)
    return bounded, encode_payload(payload), tuple(cut)


#: Bytes of JSON a cut string takes at least: quotes, marker, up to 12 digits.
_MIN_CUT: Final = len(encode_payload(TRUNCATED_MARKER.format(10 ** 12)))


def _cap(sizes: list[int], excess: int) -> int:
    """The size every larger value is cut to so that ``excess`` bytes go (water filling)."""
    sizes = sorted(sizes, reverse=True)
    total = 0
    for count, size in enumerate(sizes, start=1):
        total += size
        cap = (total - excess) // count
        following = sizes[count] if count < len(sizes) else 0
        if cap >= following:
            return max(cap, _MIN_CUT)
    return _MIN_CUT


def _cut(value: Any, budget: int) -> str:
    """``value`` as a string of at most ``budget`` bytes of JSON, ending with the marker."""
    if not isinstance(value, str):
        return TRUNCATED_MARKER.format(len(encode_payload(value).encode()))
    whole = len(value.encode("utf-8", "surrogatepass"))
    room = budget - len(encode_payload(TRUNCATED_MARKER.format(whole)))
    keep = _prefix(value, room) if room > 0 else 0
    head = value[:keep]
    if head and "\ud800" <= head[-1] <= "\udbff":  # half a surrogate pair
        head = head[:-1]
    gone = whole - len(head.encode("utf-8", "surrogatepass"))
    return head + TRUNCATED_MARKER.format(gone)


def _prefix(value: str, room: int) -> int:
    """The most leading characters of ``value`` whose JSON (quotes aside) fits in ``room``."""
    if len(encode_payload(value[:room])) - 2 <= room:  # one byte each (plain ASCII)
        return min(room, len(value))
    low, high = 0, room  # value[:low] fits, value[:high] does not
    while high - low > 1:
        middle = (low + high) // 2
        if len(encode_payload(value[:middle])) - 2 <= room:
            low = middle
        else:
            high = middle
    return low
