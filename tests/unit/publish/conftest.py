"""Helpers shared by the publish unit tests."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

import daemon  # noqa: F401 - selects the oslo.service backend before oslo.messaging
from daemon.pipeline.event import AlarmEvent

_counter = itertools.count()


def make_event(alarm_id: str = "alarm-1", sequence: int = 1, *,
               event_type: str = "alarm.firing", severity: str = "critical",
               **extra: Any) -> AlarmEvent:
    """A small but well-formed event (the full payload is the transformer's job)."""
    event_id = str(uuid.uuid4())
    payload = {
        "schema_version": "1.0",
        "event_id": event_id,
        "alarm_id": alarm_id,
        "sequence": sequence,
        "name": "HighCpuOnVmAlert",
        "status": "resolved" if event_type == "alarm.resolved" else "firing",
        "severity": severity,
        "n": next(_counter),
        **extra,
    }
    return AlarmEvent(event_id=event_id, event_type=event_type, alarm_id=alarm_id,
                      sequence=sequence, payload=payload)


@pytest.fixture
def event_factory():
    return make_event
