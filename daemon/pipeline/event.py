"""``AlarmEvent``: what is stored in the outbox and published on the bus."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["AlarmEvent", "SCHEMA_VERSION"]

SCHEMA_VERSION = "1.0"


@dataclasses.dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One notification to publish.

    :ivar event_type: ``alarm.firing``, ``alarm.updated`` or ``alarm.resolved``
    :ivar payload: the flat JSON object of docs/events.md (schema_version 1.0),
        whose event_id, alarm_id and sequence equal the fields here
    """

    event_id: str
    event_type: str
    alarm_id: str
    sequence: int
    payload: dict[str, Any]

    @property
    def severity(self) -> str:
        return self.payload.get("severity", "unknown")
