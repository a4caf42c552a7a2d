"""Several relays on one shared database and one tooz group (issue 15).

``relays(n, ...)`` starts ``n`` daemons from their console script
(tools/harness/relay.py RelayProcess) on the database and coordination URL given, with
short coordination timings so a takeover happens within seconds; all are killed at the
end of the test. Helpers read /readyz's coordination details and the bus.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from daemon.store import migration
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "etc" / "alarm-relay" / "demo"
TO_RESOLVE = ("AvgCPUTimeOnIdleMode", "HighInodeUsage")
TO_SILENCE = "HighTrafficOnBridge"
#: Coordination timings of the tests: a dead member leaves the group within LEASE.
LEASE = 3.0
CHECK_INTERVAL = 0.5
POLL_INTERVAL = 1.0
#: The documented bound with these timings: lease + check_interval + a poll.
TAKEOVER_BOUND = LEASE + CHECK_INTERVAL + POLL_INTERVAL


def seed_alerts() -> list[dict[str, Any]]:
    """The seed's four alerts (etc/alarm-relay/demo/alerts.json), firing since a minute."""
    alerts = json.loads((DEMO / "alerts.json").read_text())
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    for alert in alerts:
        alert["startsAt"] = started.isoformat().replace("+00:00", "Z")
        alert.pop("endsAt", None)
    return alerts


def resolved(alerts: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Copies of the alerts named, ending now (Alertmanager resolves them)."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    done = []
    for alert in alerts:
        if alert["labels"]["alertname"] in names:
            alert = copy.deepcopy(alert)
            alert["endsAt"] = now
            done.append(alert)
    return done


@pytest.fixture
def seed_mapping(tmp_path: Path) -> Path:
    """The seed's four mapping rules (the demo file's first four, which need no datasource)."""
    rules = yaml.safe_load((DEMO / "mappings.yaml").read_text())["alerts"][:4]
    path = tmp_path / "mappings.yaml"
    path.write_text(yaml.safe_dump({"alerts": rules}))
    return path


def sync_schema(url: str) -> None:
    """``alarm-relay-manage db sync`` for a fresh shared database."""
    engine = sa.create_engine(url)
    try:
        migration.upgrade(engine)
    finally:
        engine.dispose()


def coordination(relay: RelayProcess) -> dict[str, Any]:
    """The ``coordination`` object of a relay's /readyz ({} when it does not answer)."""
    try:
        status, body = relay.get("/readyz", timeout=1.0)
    except OSError:
        return {}
    if status not in (200, 503):
        return {}
    return json.loads(body).get("coordination", {})


def owned(relay: RelayProcess) -> dict[str, int]:
    """unit -> epoch this relay owns, from /readyz."""
    return coordination(relay).get("owned", {})


def owners(group: list[RelayProcess]) -> dict[str, list[int]]:
    """unit -> the indexes of the relays claiming it (a healthy group: one each)."""
    found: dict[str, list[int]] = {}
    for index, relay in enumerate(group):
        if relay.proc is None or relay.proc.poll() is not None:
            continue
        for unit in owned(relay):
            found.setdefault(unit, []).append(index)
    return found


def wait_owned(group: list[RelayProcess], units: list[str], *, timeout: float,
               members: int | None = None) -> dict[str, list[int]]:
    """Wait until each unit has exactly one owner among the live relays."""
    def settled() -> dict[str, list[int]] | None:
        found = owners(group)
        if sorted(found) != sorted(units) or any(len(v) != 1 for v in found.values()):
            return None
        if members is not None and any(
                len(coordination(r).get("members", [])) != members for r in group
                if r.proc is not None and r.proc.poll() is None):
            return None
        return found
    return wait_until(settled, timeout=timeout, interval=0.1, what=f"one owner for {units}",
                      describe=lambda: str(owners(group)))


def owner_and_other(group: list[RelayProcess], unit: str, *, timeout: float = 30,
                    ) -> tuple[RelayProcess, RelayProcess]:
    """Of two relays, once both are members: the one that owns ``unit``, and the other."""
    first = wait_owned(group, [unit], timeout=timeout, members=2)[unit][0]
    return group[first], group[1 - first]


def worker_pids(relay: RelayProcess) -> list[int]:
    """The master and its worker (the whole process group), for SIGSTOP and SIGCONT."""
    assert relay.proc is not None
    pgid = relay.proc.pid
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
    return pids


def signal_group(relay: RelayProcess, signum: int) -> None:
    assert relay.proc is not None
    os.killpg(relay.proc.pid, signum)


def strip(payload: dict[str, Any]) -> dict[str, Any]:
    """An event's payload without what differs between two relays playing one scenario."""
    return {k: v for k, v in payload.items() if k not in ("event_id", "observed_at")}


@pytest.fixture
def relays(tmp_path: Path, seed_mapping: Path, rabbit_url: str,
           ) -> Iterator[Callable[..., list[RelayProcess]]]:
    """``make(n, *, database, backend_url, alertmanager_urls, exchange, topic, sections=None,
    start=True)`` -> n relays (started, unless ``start=False``); all killed at the end."""
    made: list[RelayProcess] = []

    def make(n: int, *, database: str, backend_url: str, alertmanager_urls: list[str],
             exchange: str, topic: str, sections: dict[str, dict[str, Any]] | None = None,
             transport_url: str | None = None, start: bool = True) -> list[RelayProcess]:
        group = []
        for _ in range(n):
            config: dict[str, dict[str, Any]] = {
                "DEFAULT": {"control_exchange": exchange},
                "oslo_messaging_notifications": {"topics": topic},
                "alertmanager": {"poll_interval": POLL_INTERVAL},
                "database": {"connection": database},
                "coordination": {"backend_url": backend_url, "lease": LEASE,
                                 "check_interval": CHECK_INTERVAL},
            }
            for section, values in (sections or {}).items():
                config.setdefault(section, {}).update(values)
            relay = RelayProcess(mapping_path=seed_mapping,
                                 transport_url=transport_url or rabbit_url,
                                 alertmanager_urls=alertmanager_urls,
                                 workdir=tmp_path / f"relay-{len(made)}", sections=config)
            made.append(relay)
            group.append(relay)
        if start:
            for relay in group:
                relay.start(wait_ready=False)
            for relay in group:
                relay.wait_for_log("alarm-relay ready", timeout=60)
        return group

    yield make
    for relay in made:
        if relay.proc is not None and relay.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(relay.proc.pid, signal.SIGCONT)
            relay.kill()
