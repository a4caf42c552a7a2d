"""The daemon as operators run it: a real process, real signals, real services.

Issue 2: start-up logs readiness, SIGHUP reloads and keeps running, SIGTERM
drains and exits 0, bad configuration stops start-up with one clear line.
"""

from __future__ import annotations

import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from tools.harness.ports import free_port, wait_until
from tools.harness.relay import RelayProcess, relay_script, write_config
from tools.harness.services import make_alert

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED_MAPPING = ROOT.parent / "shared" / "fixtures" / "mapping" / "seed-mapping.yaml"
SAMPLE = ROOT / "etc" / "alarm-relay" / "alarm-relay.conf.sample"


@pytest.fixture
def mapping_file(tmp_path):
    path = tmp_path / "mappings.yaml"
    shutil.copy(SEED_MAPPING, path)
    return path


@pytest.fixture
def relay(tmp_path, mapping_file, alertmanager, rabbit_url):
    process = RelayProcess(mapping_path=mapping_file, transport_url=rabbit_url,
                           alertmanager_urls=[alertmanager.url], workdir=tmp_path / "relay",
                           sections={"oslo_messaging_notifications": {
                               "topics": f"alarms-{tmp_path.name}"}})
    yield process
    if process.proc is not None and process.proc.poll() is None:
        process.kill()


def test_starts_reloads_on_sighup_and_drains_on_sigterm(relay, mapping_file):
    relay.start()
    assert relay.get("/healthz")[0] == 200

    relay.signal(signal.SIGHUP)
    relay.wait_for_log("SIGHUP: configuration reloaded")
    relay.wait_for_log("alarm-relay ready", count=2)
    assert relay.proc.poll() is None
    assert relay.get("/healthz")[0] == 200

    assert relay.stop() == 0
    log = relay.log()
    assert "Stopping: no new alerts taken, draining the outbox" in log
    assert "Drained" in log
    assert "Traceback" not in log


def test_invalid_mapping_on_sighup_keeps_the_previous_one(relay, mapping_file):
    relay.start()
    mapping_file.write_text("alerts:\n- alert:\n    key: [not, a, mapping]\n")
    relay.signal(signal.SIGHUP)
    relay.wait_for_log("new mapping rejected")
    relay.wait_for_log("alarm-relay ready", count=2)
    assert "Mapping reload rejected, keeping the previous mapping" in relay.log()
    assert relay.get("/healthz")[0] == 200
    assert relay.stop() == 0


def _start_with(tmp_path, sections):
    base = {
        "DEFAULT": {"transport_url": "rabbit://guest:guest@127.0.0.1:5672/",
                    "state_dir": tmp_path / "state"},
        "mapping": {"path": SEED_MAPPING},
        "webhook": {"port": 0},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    config = write_config(tmp_path / "bad.conf", base)
    return subprocess.run([relay_script(), "--config-file", str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("sections", "expected"), [
    ({"lifecycle": {"suppressed_policy": "sometimes"}},
     "[lifecycle] suppressed_policy: invalid value"),
    ({"alertmanager": {"poll_interval": "often"}},
     "[alertmanager] poll_interval: invalid value"),
    ({"mapping": {"path": "/nonexistent/mappings.yaml"}},
     "[mapping] path: /nonexistent/mappings.yaml is not readable"),
    ({"alertmanager": {"urls": "am.example.org:9093"}},
     "[alertmanager] urls: 'am.example.org:9093' is not an http(s) URL with a host"),
    ({"DEFAULT": {"transport_url": "nonsense://"}},
     "[DEFAULT] transport_url"),
    ({"datasources": {"metrics": "prometheus", "resolve_timeout": 9},
      "mapping": {"resolve_timeout": 5}},
     "[datasources] resolve_timeout: 9.0s must be less than [mapping] resolve_timeout"),
    ({"webhook": {"host": "0.0.0.0"}},
     "[webhook] host: listening on 0.0.0.0 needs username/password"),
    # A misspelt [alertmanager:NAME] section leaves the named cluster without urls.
    ({"alertmanager": {"clusters": "east"}, "alertmanager:eats": {"urls": "http://a:9093"}},
     "[alertmanager:east] urls: at least one Alertmanager URL is needed"),
    ({"alertmanager": {"clusters": "east"},
      "alertmanager:east": {"urls": "http://a:9093", "timeout": "soon"}},
     "[alertmanager:east] timeout: invalid value"),
])
def test_bad_configuration_stops_start_up_with_one_line(tmp_path, sections, expected):
    result = _start_with(tmp_path, sections)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_secret_never_printed_on_bad_transport_url(tmp_path):
    result = _start_with(tmp_path, {"DEFAULT": {
        "transport_url": "rabbit://guest:s3cr3t-pw@127.0.0.1:notaport/"}})
    assert result.returncode != 0
    assert "s3cr3t-pw" not in result.stderr + result.stdout


def test_sample_derived_config_starts(tmp_path, mapping_file, alertmanager, rabbit_url):
    """The shipped sample, with only site values filled in, runs the daemon."""
    sample_lines = SAMPLE.read_text().splitlines()
    assert any(line.startswith("[alertmanager]") for line in sample_lines)
    process = RelayProcess(mapping_path=mapping_file, transport_url=rabbit_url,
                           alertmanager_urls=[alertmanager.url], workdir=tmp_path / "r")
    # Start from the sample itself and append the site values.
    site = process.config_path.read_text()
    process.config_path.write_text(SAMPLE.read_text() + "\n" + site)
    try:
        process.start()
        assert process.get("/healthz")[0] == 200
    finally:
        assert process.stop() == 0


def test_systemd_ready_means_serving(tmp_path, mapping_file, alertmanager, rabbit_url):
    """Type=notify: READY=1 comes from the worker once it serves, not from the master at once."""
    import socket as socket_module

    notify_path = tmp_path / "notify.sock"
    sock = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    process = RelayProcess(mapping_path=mapping_file, transport_url=rabbit_url,
                           alertmanager_urls=[alertmanager.url], workdir=tmp_path / "r",
                           env={"NOTIFY_SOCKET": str(notify_path)})
    try:
        process.start(wait_ready=False)
        message = sock.recv(4096).decode()
        assert message == "READY=1"
        # By the time systemd hears READY=1 the listener answers and the ready line is logged.
        assert process.get("/healthz")[0] == 200
        assert "alarm-relay ready" in process.log()
        process.signal(signal.SIGTERM)
        assert sock.recv(4096).decode() == "STOPPING=1"
        assert process.proc.wait(timeout=40) == 0
    finally:
        sock.close()
        if process.proc is not None and process.proc.poll() is None:
            process.kill()


def test_valid_mapping_change_takes_effect_on_sighup(relay, mapping_file):
    """Vitrage needed a restart for mapping changes; a reload is enough here."""
    relay.start()
    relay.wait_for_log("with 4 rules")
    mapping_file.write_text(mapping_file.read_text() + (
        "- alert:\n    key:\n      alertname: DiskFull\n    resource:\n      id: instance\n"))
    relay.signal(signal.SIGHUP)
    relay.wait_for_log("alarm-relay ready", count=2)
    relay.wait_for_log("with 5 rules")
    assert "Mapping reload rejected" not in relay.log()
    assert relay.stop() == 0


def test_polls_wait_while_the_outbox_has_a_backlog(tmp_path, mapping_file, alertmanager):
    """A backlog the broker cannot take slows polling down, to one poll per pause_polls_max."""
    alertmanager.post_alerts([make_alert(f"Backlog{i}", {"instance": f"host{i}"})
                              for i in range(3)])
    # Nothing listens on the broker's port: the 3 events stay in the outbox.
    broker_down = f"rabbit://guest:guest@127.0.0.1:{free_port()}/"
    with RelayProcess(mapping_path=mapping_file, transport_url=broker_down,
                      alertmanager_urls=[alertmanager.url], workdir=tmp_path / "relay",
                      sections={"alertmanager": {"poll_interval": 0.5, "min_poll_gap": 0.5},
                                "publisher": {"pause_polls_above": 1,
                                              "pause_polls_max": 8}}) as relay:
        relay.wait_for_log("Polls of Alertmanager cluster default wait while 3 events "
                           "wait in the outbox ([publisher] pause_polls_above 1)")
        polls = relay.metric("alarm_relay_polls_total", outcome="success")
        # Without the wait this is 4-5 polls.
        time.sleep(2.5)
        assert relay.metric("alarm_relay_polls_total", outcome="success") == polls
        # Bounded: once pause_polls_max passed, the poll is made anyway.
        wait_until(lambda: relay.metric("alarm_relay_polls_total", outcome="success") > polls,
                   timeout=15, what="a poll after pause_polls_max")
        assert relay.metric("alarm_relay_poll_wait_seconds_total", cluster="default") >= 7
        assert relay.metric("alarm_relay_outbox_depth") == 3
        assert relay.get("/readyz")[0] == 200
        assert relay.log().count("wait while") == 1
