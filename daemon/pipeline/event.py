"""``AlarmEvent``: what is stored in the outbox and published on the bus.

The payload's JSON Schema ships as ``daemon/pipeline/schema.json``;
:func:`load_schema` returns it (tests and ``alarm-relay-manage`` validate
against it).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
from typing import Any

__all__ = ["AlarmEvent", "SCHEMA_VERSION", "load_schema", "new_event"]

SCHEMA_VERSION = "1.0"


@functools.cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the event payload, schema_version 1.0.

    Treat the returned dict as read-only: it is cached.
    """
    text = importlib.resources.files("daemon.pipeline").joinpath("schema.json").read_text(
        encoding="utf-8")
    return json.loads(text)


@dataclasses.dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One notification to publish.

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


_NEW = object.__new__
_SET_EVENT_ID = AlarmEvent.event_id.__set__  # type: ignore[attr-defined]
_SET_EVENT_TYPE = AlarmEvent.event_type.__set__  # type: ignore[attr-defined]
_SET_ALARM_ID = AlarmEvent.alarm_id.__set__  # type: ignore[attr-defined]
_SET_SEQUENCE = AlarmEvent.sequence.__set__  # type: ignore[attr-defined]
_SET_PAYLOAD = AlarmEvent.payload.__set__  # type: ignore[attr-defined]


def new_event(event_id: str, event_type: str, alarm_id: str, sequence: int,
              payload: dict[str, Any]) -> AlarmEvent:
    """``AlarmEvent(...)`` at half the cost of the frozen dataclass's ``__init__``.

    The transformer builds one per alert; the result is an ordinary (frozen)
    ``AlarmEvent``.
    """
    event = _NEW(AlarmEvent)
    _SET_EVENT_ID(event, event_id)
    _SET_EVENT_TYPE(event, event_type)
    _SET_ALARM_ID(event, alarm_id)
    _SET_SEQUENCE(event, sequence)
    _SET_PAYLOAD(event, payload)
    return event
