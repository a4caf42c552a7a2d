"""Must-show 4: Watcher's API behind a real Keystone; the bridge finds it through the catalog.

Keystone 30 (its own venv) is bootstrapped on SQLite; Watcher's API validates tokens with
keystonemiddleware (``[keystone_authtoken]``) and enforces its policies (admin for audits,
admin or service for the webhook). Watcher is registered in the catalog as ``infra-optim``
(public and internal). The bridge has no endpoint_override: it authenticates with
``[service_credentials]`` and looks Watcher up by service type, interface and region.
With a wrong password it stops at start-up with an error naming the options to fix, and
without the password in its output.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from daemon import conf as relay_conf
from daemon.publish import Notifier
from tests.functional.publish.helpers import alarm_event
from tools.harness.bus import delete_entities
from tools.harness.keystone import REGION, Keystone
from tools.harness.relay import write_config
from tools.harness.services import shared_transport_url
from tools.harness.watcher import BridgeProcess, Watcher

# Long: Keystone's venv (about 100 s fresh) and bootstrap, then a Watcher behind it.
pytestmark = pytest.mark.timeout(600)

BRIDGE_USER, BRIDGE_PASSWORD = "alarm-relay-watcher", "bridge-secret-8f2c"
WRONG_PASSWORD = "not-the-password-71d0"

RULES = """\
rules:
- name: ks-cpu
  key: {alertname: HighCpuOnVmAlert}
  audit_template: ks-template
  parameters: {host: "{labels.instance}", alarm: "{name}"}
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Keystone, Watcher]]:
    began = time.monotonic()
    keystone = Keystone(workdir=tmp_path_factory.mktemp("keystone"))
    watcher = None
    try:
        keystone.start()
        keystone.user(BRIDGE_USER, BRIDGE_PASSWORD, project="service", roles=["admin"])
        name = f"relaytest-{uuid.uuid4().hex[:12]}"
        watcher = Watcher(name, workdir=tmp_path_factory.mktemp("watcher-ks"),
                          transport_url=shared_transport_url(), keystone=keystone)
        watcher.start()
        keystone.register_service("infra-optim", watcher.url, name="watcher",
                                  interfaces=("public", "internal"))
        watcher.create_audit_template("ks-template")
        print(f"timings: keystone {keystone.started_in:.1f}s (bootstrap "
              f"{keystone.bootstrapped_in or 0:.1f}s), watcher {watcher.timings}, "
              f"all {time.monotonic() - began:.1f}s")
        yield keystone, watcher
    finally:
        if watcher is not None:
            watcher.close()
            exchanges, queues = watcher.broker_entities()
            delete_entities(shared_transport_url(), exchanges=exchanges, queues=queues)
        keystone.close()


@pytest.fixture
def names(unique_name: str) -> Iterator[tuple[str, str]]:
    pool = f"{unique_name}-bridge"
    yield unique_name, pool
    delete_entities(shared_transport_url(), exchanges=[unique_name],
                    queues=[pool, f"{unique_name}.info"])


def _bridge(tmp_path, keystone: Keystone, exchange: str, pool: str,
            password: str) -> BridgeProcess:
    return BridgeProcess(
        transport_url=shared_transport_url(), exchange=exchange, topic=exchange, pool=pool,
        rules=RULES, watcher=None, workdir=tmp_path / "bridge",
        sections={"service_credentials": keystone.service_credentials(
                      BRIDGE_USER, password, project="service"),
                  "watcher_client": {"interface": "internal", "region_name": REGION}})


def test_bridge_finds_watcher_in_the_catalog_and_authenticates(tmp_path, secured, names):
    keystone, watcher = secured
    exchange, pool = names
    # The API really wants a token.
    anonymous = requests.get(f"{watcher.url}/v1/audits", timeout=10)
    assert anonymous.status_code == 401, anonymous.text

    with _bridge(tmp_path, keystone, exchange, pool, BRIDGE_PASSWORD) as bridge:
        assert f"Watcher at {watcher.url}" in bridge.log()
        path = write_config(tmp_path / "publisher.conf", {
            "DEFAULT": {"transport_url": shared_transport_url(), "control_exchange": exchange,
                        "state_dir": tmp_path},
            "oslo_messaging_notifications": {"topics": exchange}})
        with Notifier(relay_conf.prepare(["--config-file", str(path)])) as notifier:
            notifier.publish(alarm_event(alarm_no=41, sequence=1, kind="firing"))
        deadline = time.monotonic() + 60
        while bridge.metric("alarm_relay_watcher_triggers_total") < 1:
            assert time.monotonic() < deadline, bridge.log()[-3000:]
            time.sleep(0.25)
        audits = [a for a in watcher.audits() if a["name"].endswith("-ks-cpu")]
        assert len(audits) == 1, audits
        done = watcher.wait_audit_state(audits[0]["uuid"], ("SUCCEEDED", "FAILED"))
        assert done["state"] == "SUCCEEDED", watcher.log_tail()
        assert done["parameters"] == {"host": "compute-2", "alarm": "HighCpuOnVmAlert"}
        assert BRIDGE_PASSWORD not in bridge.log()
    assert bridge.proc.returncode == 0


def test_wrong_credentials_stop_the_bridge_with_the_option_to_fix(tmp_path, secured, names):
    keystone, _ = secured
    exchange, pool = names
    bridge = _bridge(tmp_path, keystone, exchange, pool, WRONG_PASSWORD)
    bridge.start(wait_ready=False)
    try:
        assert bridge.wait_exit(timeout=60) == 1
    finally:
        bridge.kill()
    log = bridge.log()
    assert "alarm-relay-watcher: error: cannot use Watcher:" in log, log
    assert f"Keystone at {keystone.auth_url} answered 401 Unauthorized" in log, log
    assert "check [service_credentials] (auth_url, username, password" in log, log
    assert WRONG_PASSWORD not in log
    assert "Traceback" not in log
