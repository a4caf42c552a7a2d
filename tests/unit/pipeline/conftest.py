"""Shared helpers of the pipeline tests: fixtures on disk, alerts, transitions, the schema."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from daemon.lifecycle import Transition
from daemon.model import Alert, fingerprint
from daemon.pipeline.event import load_schema

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / ".." / "shared" / "fixtures"
ALERTMANAGER = FIXTURES / "alertmanager"
SEED_MAPPING = FIXTURES / "mapping" / "seed-mapping.yaml"

NOW = datetime.datetime(2026, 11, 21, 22, 2, 0, tzinfo=datetime.UTC)

_VALIDATOR = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def fixture_path(*parts: str) -> Path:
    """A file under ../shared/fixtures (relative to the repository root)."""
    return FIXTURES.joinpath(*parts)


def _time(text: str | None) -> datetime.datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def alert_from_json(obj: Mapping[str, Any]) -> Alert:
    """An ``Alert`` from an API v2 alert object or a webhook v4 alert object.

    A test helper (the sources issue owns the real parser): enough to feed the
    transformer exactly what the fixtures hold.
    """
    status = obj.get("status")
    labels = dict(obj["labels"])
    if isinstance(status, dict):  # GET /api/v2/alerts
        state, alert_status = status.get("state", "active"), "firing"
        silenced, inhibited = tuple(status.get("silencedBy") or ()), tuple(
            status.get("inhibitedBy") or ())
    else:  # webhook v4
        state, alert_status, silenced, inhibited = "active", status or "firing", (), ()
    return Alert(
        fingerprint=fingerprint(labels), labels=labels,
        annotations=dict(obj.get("annotations") or {}),
        starts_at=_time(obj["startsAt"]), ends_at=_time(obj.get("endsAt")),
        status=alert_status, state=state, silenced_by=silenced, inhibited_by=inhibited,
        generator_url=obj.get("generatorURL", ""))


def api_alerts(name: str = "api_v2_alerts_firing.json") -> list[Alert]:
    """The alerts of an Alertmanager API fixture."""
    return [alert_from_json(o) for o in json.loads((ALERTMANAGER / name).read_text())]


def webhook_alerts() -> list[Alert]:
    """Every alert of every webhook delivery of the fixture, in order."""
    alerts = []
    for line in (ALERTMANAGER / "webhook_v4_deliveries.jsonl").read_text().splitlines():
        if line.strip():
            alerts.extend(alert_from_json(o) for o in json.loads(line)["alerts"])
    return alerts


def make_alert(labels: Mapping[str, str], **kwargs: Any) -> Alert:
    """An ``Alert`` with these labels and plausible everything else."""
    values: dict[str, Any] = {
        "fingerprint": fingerprint(labels), "labels": dict(labels), "annotations": {},
        "starts_at": NOW - datetime.timedelta(minutes=5), "ends_at": None}
    values.update(kwargs)
    return Alert(**values)


def make_transition(alert: Alert, kind: str = "firing", *, sequence: int | None = None,
                    reason: str | None = None, alarm_id: str | None = None) -> Transition:
    """A transition as the lifecycle tracker would make it (alarm id from the full label set)."""
    if kind == "resolved" and reason is None:
        reason = "resolved"
    return Transition(
        kind=kind,  # type: ignore[arg-type]
        alarm_id=alarm_id or f"test:{alert.fingerprint}:{alert.starts_at.isoformat()}",
        sequence=sequence or {"firing": 1, "updated": 2, "resolved": 3}[kind],
        alert=alert, observed_at=NOW, cluster="test", source_url="http://127.0.0.1:9093",
        reason=reason)


def schema_errors(payload: Mapping[str, Any]) -> list[str]:
    """Every way ``payload`` violates schema.json (empty when valid)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _VALIDATOR.iter_errors(payload)]


def assert_valid(payload: Mapping[str, Any]) -> None:
    errors = schema_errors(payload)
    assert not errors, errors
    # The payload must survive the JSON round trip unchanged (what the outbox stores).
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload


@pytest.fixture
def write_mapping(tmp_path: Path) -> Iterator[Any]:
    """Write text (or bytes) to a mappings.yaml in a temp dir and return its path."""
    def write(content: str | bytes, name: str = "mappings.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path
    yield write
