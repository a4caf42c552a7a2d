"""``alarm-relay-manage check`` shows the members, the units, their owners and epochs."""

from __future__ import annotations

import subprocess

import pytest

from tests.functional.ha.conftest import sync_schema, wait_owned
from tools.harness.relay import relay_script


def _check(config_path) -> tuple[int, dict[str, str]]:
    run = subprocess.run([relay_script("alarm-relay-manage"), "--config-file", str(config_path),
                          "check"], capture_output=True, text=True, timeout=60)
    lines = {}
    for line in run.stdout.splitlines():
        status, _, rest = line.partition(" ")
        name, _, message = rest.partition(": ")
        if name in ("coordination", "ownership"):
            lines[name] = f"{status} {message}"
    return run.returncode, lines


@pytest.mark.timeout(120)
def test_check_shows_members_units_owners_and_epochs(
        relays, alertmanager, postgresql_url, coordination_url, unique_name):
    sync_schema(postgresql_url)
    group = relays(2, database=postgresql_url, backend_url=coordination_url,
                   alertmanager_urls=[alertmanager.url], exchange=unique_name,
                   topic=unique_name, sections={"coordination": {"partitions": 2}})
    found = wait_owned(group, ["default/0", "default/1"], timeout=30, members=2)
    _, lines = _check(group[0].config_path)
    assert lines["coordination"].startswith("OK 2 members in group alarm-relay: ")
    assert lines["ownership"].startswith("OK default/0 -> ")
    assert "default/1 -> " in lines["ownership"] and "(epoch " in lines["ownership"]
    assert found

    for relay in group:  # they leave the group: the units are recorded but without a member
        assert relay.stop() == 0
    code, lines = _check(group[0].config_path)
    assert code == 1
    assert lines["coordination"] == "OK 0 members in group alarm-relay: none"
    assert lines["ownership"].startswith("FAIL default/0 -> ")
    assert "not a member" in lines["ownership"]
