"""A real Watcher (decision engine + API, noauth) shared by this folder's tests, and the
pipeline each test builds around it: Alertmanager -> alarm-relay -> RabbitMQ -> the bridge.

Watcher takes about 11 s to start here (plus 65 s to install its venv the first time), so one
instance serves the folder (package scope); each test uses audit templates, rules, an
exchange, a topic and a pool of its own, and tells its audits apart by name. The Keystone
test starts its own Watcher behind Keystone.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.publish.notifier import PRIORITIES
from tools.harness import services
from tools.harness.bus import delete_entities
from tools.harness.ports import wait_until
from tools.harness.relay import RelayProcess
from tools.harness.services import Alertmanager, shared_transport_url
from tools.harness.watcher import BridgeProcess, Watcher

#: The relay's mapping in these tests: every alert is about the host in its `instance` label.
MAPPING = """\
alerts:
- name: any-host
  key: {alertname: {present: true}}
  type: host
  resource: {id: instance}
"""


@pytest.fixture(scope="package")
def watcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watcher]:
    """Watcher 17 with the test strategy plugin, noauth, on the shared RabbitMQ."""
    name = f"relaytest-{uuid.uuid4().hex[:12]}"
    server = Watcher(name, workdir=tmp_path_factory.mktemp("watcher"),
                     transport_url=shared_transport_url())
    try:
        server.start()
        yield server
    finally:
        server.close()
        exchanges, queues = server.broker_entities()
        try:
            delete_entities(shared_transport_url(), exchanges=exchanges, queues=queues)
        except Exception:  # noqa: BLE001 - best effort
            pass


@dataclasses.dataclass
class Pipeline:
    """Alertmanager, the relay and the bridge of one test, on one exchange and topic."""

    alertmanager: Alertmanager
    relay: RelayProcess
    bridge: BridgeProcess
    watcher: Watcher
    name: str
    timings: dict[str, float]

    def audits(self) -> list[dict[str, Any]]:
        """This test's audits: their names end with one of its rule names."""
        return [a for a in self.watcher.audits() if self.name in (a.get("name") or "")]

    def wait_metric(self, name: str, value: float, *, timeout: float = 60.0,
                    **labels: str) -> float:
        return wait_until(lambda: (v := self.bridge.metric(name, **labels)) >= value and v,
                          timeout=timeout, interval=0.25,
                          what=f"{name}{labels or ''} >= {value} on the bridge",
                          describe=lambda: self.bridge.log()[-3000:])


@pytest.fixture
def pipeline(tmp_path: Path, watcher: Watcher, unique_name: str
             ) -> Iterator[Callable[..., Pipeline]]:
    """``make(rules=TEXT, **bridge_sections) -> Pipeline``, all started; stopped at the end.

    ``rules`` may use ``@TEMPLATE@`` for the name of an audit template of the test strategy
    created for this test, and ``@NAME@`` for a name unique to the test (rule names embed it
    so :meth:`Pipeline.audits` finds the test's audits).
    """
    if not Path(services.ALERTMANAGER_BIN).exists():
        pytest.fail(f"{services.ALERTMANAGER_BIN} is missing: run `make services`")
    exchange = topic = unique_name
    pool = f"{unique_name}-bridge"
    short = unique_name.rsplit("-", 1)[-1][:8]
    made: list[Any] = []

    def make(*, rules: str, sections: dict[str, dict[str, Any]] | None = None) -> Pipeline:
        timings: dict[str, float] = {}
        began = time.monotonic()
        template = f"tpl-{short}"
        watcher.create_audit_template(template)
        mapping = tmp_path / "mappings.yaml"
        mapping.write_text(MAPPING)
        relay = RelayProcess(
            mapping_path=mapping, transport_url=shared_transport_url(),
            alertmanager_urls=[], workdir=tmp_path / "relay",
            sections={"DEFAULT": {"control_exchange": exchange},
                      "oslo_messaging_notifications": {"topics": topic}})
        alertmanager = Alertmanager(webhook_url=f"{relay.url}/v1/alerts")
        made.append(alertmanager)
        alertmanager.start()
        relay.rewrite_config({"alertmanager": {"urls": [alertmanager.url]}})
        bridge = BridgeProcess(
            transport_url=shared_transport_url(), exchange=exchange, topic=topic, pool=pool,
            rules=rules.replace("@TEMPLATE@", template).replace("@NAME@", short), watcher=watcher,
            workdir=tmp_path / "bridge", sections=sections or {})
        made.append(bridge)
        # The bridge first: its pool queue exists before the relay publishes anything.
        bridge.start()
        made.append(relay)
        relay.start()
        timings["setup"] = time.monotonic() - began
        return Pipeline(alertmanager, relay, bridge, watcher, short, timings)

    yield make
    for part in reversed(made):
        try:
            if isinstance(part, Alertmanager):
                part.close()
            else:
                part.stop()
        except Exception:  # noqa: BLE001 - kill then
            part.kill()
    try:
        delete_entities(shared_transport_url(), exchanges=[exchange],
                        queues=[pool, *(f"{topic}.{p}" for p in PRIORITIES)])
    except Exception:  # noqa: BLE001 - best effort
        pass
