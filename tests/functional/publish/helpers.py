"""A scripted incident and relay configs for the publish tests (consumer: tools/harness/bus)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from oslo_config import cfg

from daemon import conf as relay_conf
from daemon.pipeline.event import SCHEMA_VERSION, AlarmEvent

_T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alarm_event(*, alarm_no: int, sequence: int, kind: str, minute: int = 0,
                name: str = "HighCpuOnVmAlert") -> AlarmEvent:
    """One event with the full payload of DESIGN.md ("Events")."""
    alarm_id = f"am-main-{alarm_no:04x}-{uuid.UUID(int=alarm_no).hex[:8]}"
    event_id = str(uuid.uuid4())
    resolved = kind == "resolved"
    starts = _T0 + dt.timedelta(minutes=alarm_no % 5)
    labels = {"alertname": name, "job": "libvirt", "domain": f"instance-{alarm_no:08x}",
              "instance": f"compute-{alarm_no % 3}", "severity": "critical"}
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "alarm_id": alarm_id,
        "fingerprint": f"{alarm_no:016x}",
        "sequence": sequence,
        "name": name,
        "status": "resolved" if resolved else "firing",
        "reason": "resolved" if resolved else None,
        "severity": "critical",
        "severity_raw": "critical",
        "starts_at": _iso(starts),
        "ends_at": _iso(starts + dt.timedelta(minutes=minute)) if resolved else None,
        "observed_at": _iso(starts + dt.timedelta(minutes=minute)),
        "labels": labels,
        "annotations": {"summary": f"CPU high on instance-{alarm_no:08x}"},
        "generator_url": "http://prometheus.example:9090/graph?g0.expr=cpu",
        "silenced_by": [],
        "inhibited_by": [],
        "source": {"type": "alertmanager", "cluster": "main",
                   "url": "http://127.0.0.1:9093"},
        "resource": {"type": "nova.instance", "id": None,
                     "properties": {"instance_name": labels["domain"],
                                    "host_id": labels["instance"]},
                     "rule": 0, "mapped": True},
        "metrics": {},
    }
    return AlarmEvent(event_id=event_id, event_type=f"alarm.{kind}", alarm_id=alarm_id,
                      sequence=sequence, payload=payload)


def incident(alarms: int = 4, updates: int = 2) -> list[AlarmEvent]:
    """Alarms fire, get updated, resolve; events interleaved as transitions happen."""
    events = []
    for step in range(updates + 2):
        kind = "firing" if step == 0 else ("resolved" if step == updates + 1 else "updated")
        for a in range(alarms):
            events.append(alarm_event(alarm_no=a, sequence=step + 1, kind=kind,
                                      minute=step))
    return events


def relay_config(tmp_path: Path, transport_url: str, *, exchange: str, topic: str,
                 **sections: dict[str, Any]) -> cfg.ConfigOpts:
    """The relay's ConfigOpts read from an INI file, as the daemon reads it."""
    values: dict[str, dict[str, Any]] = {
        "DEFAULT": {"transport_url": transport_url, "control_exchange": exchange,
                    "host": "relay-test", "state_dir": str(tmp_path)},
        "oslo_messaging_notifications": {"topics": topic},
        "oslo_messaging_rabbit": {"rabbit_retry_interval": 1, "rabbit_retry_backoff": 1,
                                  "rabbit_interval_max": 1, "kombu_reconnect_delay": 0.2},
        "publisher": {"send_retry": 1},
    }
    for name, options in sections.items():
        values.setdefault(name, {}).update(options)
    path = tmp_path / f"relay-{uuid.uuid4().hex[:6]}.conf"
    path.write_text("".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
        for name, options in values.items()))
    return relay_conf.prepare(["--config-file", str(path)])
