"""The listener across hosts: TLS and mutual TLS (issue 15).

A real Alertmanager 0.25, given ``http_config`` with ``tls_config`` (a CA made in the test)
and basic auth, delivers to the daemon started from its console script and listening with
TLS; the delivery reaches the bus. Clients that do not trust the test CA, that bring wrong
credentials or, with mutual TLS, no client certificate of the client CA, are refused, real
Alertmanagers among them. The relay polls nothing that answers (its Alertmanager URL is a
closed port), so whatever reaches the bus came through the webhook.
"""

from __future__ import annotations

import configparser
import re
import shutil
import signal
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tools.harness.bus import Consumer
from tools.harness.ports import free_port, wait_until
from tools.harness.relay import RelayProcess, metric_sum, relay_script, write_config
from tools.harness.services import Alertmanager, make_alert
from tools.harness.tls import CertificateAuthority, Issued

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhook-tls.md"
USER = "alertmanager"
PASSWORD = "tls-test-s3cret"  # noqa: S105 - a test credential; checked absent from the log
MAPPING = """\
alerts:
- alert:
    key: {alertname: TlsDelivered}
    resource: {host_id: instance}
"""


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CertificateAuthority, Issued]:
    """A test CA and the relay's server certificate for 127.0.0.1 (and localhost)."""
    ca = CertificateAuthority(tmp_path / "pki", "relay test CA")
    return ca, ca.issue("relay", ips=["127.0.0.1"], dns=["localhost"])


def _relay(tmp_path: Path, rabbit_url: str, name: str, webhook: dict[str, Any]) -> RelayProcess:
    mapping = tmp_path / "mappings.yaml"
    mapping.write_text(MAPPING)
    # Nothing listens there: polls fail, so only the webhook can bring alerts.
    return RelayProcess(
        mapping_path=mapping, transport_url=rabbit_url,
        alertmanager_urls=[f"http://127.0.0.1:{free_port()}"], workdir=tmp_path / "relay",
        sections={"DEFAULT": {"control_exchange": name},
                  "oslo_messaging_notifications": {"topics": name},
                  "webhook": {"username": USER, "password": PASSWORD, **webhook}})


def _https(relay: RelayProcess) -> str:
    return f"https://127.0.0.1:{relay.port}"


def _receiver_config(url: str, http_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {"receiver": "relay", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "4h"},
        "receivers": [{"name": "relay", "webhook_configs": [
            {"url": url, "send_resolved": True, "http_config": http_config}]}],
    }


def _doc_block(info: str) -> str:
    """The one fenced block of docs/webhook-tls.md with this info string."""
    [block] = re.findall(rf"^```{info}\n(.*?)^```$", DOC.read_text(), re.M | re.S)
    return block


def _doc_webhook_options(files: dict[str, Path]) -> dict[str, str]:
    """The documented [webhook] section, with the test's port, password and files."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(_doc_block("ini"))
    options = dict(parser["webhook"])
    assert options.pop("host") == "0.0.0.0" and options.pop("port") == "9097"
    assert options["username"] == USER
    options["password"] = PASSWORD
    for option, path in files.items():
        assert options[option].startswith("/etc/alarm-relay/tls/")
        options[option] = str(path)
    return options


def _doc_receiver(url: str, files: dict[str, Path]) -> dict[str, Any]:
    """The documented Alertmanager receiver, with the test's URL and files."""
    [receiver] = yaml.safe_load(_doc_block("yaml"))["receivers"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"] == "https://relay-1.example.org:9097/v1/alerts"
    webhook["url"] = url
    http_config = webhook["http_config"]
    http_config["basic_auth"]["password_file"] = str(files.pop("password_file"))
    for option, path in files.items():
        assert http_config["tls_config"][option].startswith("/etc/alertmanager/")
        http_config["tls_config"][option] = str(path)
    return _receiver_config(url, http_config)


def _refused_by(am: Alertmanager, alertname: str, error: str) -> None:
    """Post an alert to ``am``; wait until Alertmanager logs its delivery failed with ``error``.

    (Its ``alertmanager_notifications_failed_total`` counts only once the retries gave up,
    about ten seconds later for a TLS error; the log says it at the first attempt.)
    """
    am.post_alerts([make_alert(alertname, {"instance": "n9"})])
    wait_until(lambda: any("Notify" in line and "failed" in line and error in line
                           for line in am.log_tail(200).splitlines()),
               timeout=20, what=f"Alertmanager to fail delivering {alertname} ({error})",
               describe=am.log_tail)


def _alertnames(consumer: Consumer) -> set[str]:
    return {p["name"] for p in consumer.collector.payloads("alarm.firing")}


@pytest.mark.timeout(120)
def test_alertmanager_delivers_over_tls_with_basic_auth(
        tmp_path: Path, pki, rabbit_url: str, unique_name: str,
        alertmanager_factory: Callable[..., Alertmanager]) -> None:
    ca, server = pki
    relay = _relay(tmp_path, rabbit_url, unique_name,
                   {"cert_file": server.cert_file, "key_file": server.key_file})
    url = f"{_https(relay)}/v1/alerts"
    basic_auth = {"username": USER, "password": PASSWORD}
    with Consumer(rabbit_url, exchange=unique_name, topic=unique_name,
                  conf_dir=tmp_path) as consumer, relay:
        am = alertmanager_factory(config=_receiver_config(
            url, {"basic_auth": basic_auth, "tls_config": {"ca_file": str(ca.cert_file)}}))
        am.post_alerts([make_alert("TlsDelivered", {"instance": "n1"})])
        wait_until(lambda: "TlsDelivered" in _alertnames(consumer), timeout=30,
                   what="alarm.firing of the delivery over TLS", describe=relay.log)
        [event] = consumer.collector.payloads("alarm.firing")
        assert event["resource"]["properties"] == {"host_id": "n1"}
        assert event["source"]["url"] == am.url
        metrics = requests.get(f"{_https(relay)}/metrics", verify=ca.cert_file, timeout=5).text
        assert metric_sum(metrics, "alarm_relay_webhook_requests_total", code="200") >= 1

        # A client that trusts only the public CAs (requests' default) refuses the relay.
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            requests.get(f"{_https(relay)}/healthz", timeout=5)
        # Plain HTTP on the TLS port gets no HTTP answer.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{relay.port}/healthz", timeout=5)
        # Trusting the CA is not enough: wrong or missing credentials get 401.
        body = {"version": "4", "alerts": []}
        for auth in ((USER, "wrong"), ("someone", PASSWORD), None):
            answer = requests.post(url, json=body, auth=auth, verify=ca.cert_file, timeout=5)
            assert answer.status_code == 401, (auth, answer.text)
        assert requests.post(url, json=body, auth=(USER, PASSWORD), verify=ca.cert_file,
                             timeout=5).status_code == 200

        # Real Alertmanagers refused: one does not trust the CA, one has a wrong password.
        untrusting = alertmanager_factory(config=_receiver_config(url, {"basic_auth": basic_auth}))
        _refused_by(untrusting, "TlsUntrusted", "x509: certificate signed by unknown authority")
        wrong = alertmanager_factory(config=_receiver_config(url, {
            "basic_auth": {"username": USER, "password": "wrong"},
            "tls_config": {"ca_file": str(ca.cert_file)}}))
        _refused_by(wrong, "TlsWrongPassword", "unexpected status code 401")
        assert _alertnames(consumer) == {"TlsDelivered"}
        assert relay.stop() == 0

    log = relay.log()
    assert "Listener TLS on: HTTPS with the certificate in " + str(server.cert_file) in log
    assert "client certificates not requested (webhook: basic auth)" in log
    assert "refused: missing or wrong credentials" in log
    assert PASSWORD not in log
    assert "Traceback" not in log


@pytest.mark.timeout(120)
def test_mutual_tls_requires_a_client_certificate(
        tmp_path: Path, pki, rabbit_url: str, unique_name: str,
        alertmanager_factory: Callable[..., Alertmanager]) -> None:
    ca, server = pki
    clients = CertificateAuthority(tmp_path / "clients", "alertmanager client CA")
    am_cert = clients.issue("alertmanager", client=True)
    # The relay and Alertmanager are configured as docs/webhook-tls.md shows.
    relay = _relay(tmp_path, rabbit_url, unique_name, _doc_webhook_options({
        "cert_file": server.cert_file, "key_file": server.key_file,
        "client_ca_file": clients.cert_file}))
    url = f"{_https(relay)}/v1/alerts"
    basic_auth = {"username": USER, "password": PASSWORD}
    password_file = tmp_path / "alarm-relay.password"
    password_file.write_text(PASSWORD)
    with Consumer(rabbit_url, exchange=unique_name, topic=unique_name,
                  conf_dir=tmp_path) as consumer, relay:
        am = alertmanager_factory(config=_doc_receiver(url, {
            "password_file": password_file, "ca_file": ca.cert_file,
            "cert_file": am_cert.cert_file, "key_file": am_cert.key_file}))
        am.post_alerts([make_alert("TlsDelivered", {"instance": "n1"})])
        wait_until(lambda: "TlsDelivered" in _alertnames(consumer), timeout=30,
                   what="alarm.firing of the delivery over mutual TLS", describe=relay.log)

        # The right certificate: served (every path is behind mutual TLS).
        health = requests.get(f"{_https(relay)}/healthz", verify=ca.cert_file,
                              cert=am_cert.pair, timeout=5)
        assert health.status_code == 200
        # No client certificate, or one the client CA did not sign: refused in the handshake,
        # credentials or not.
        stranger = ca.issue("stranger", client=True)
        for cert in (None, stranger.pair):
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.post(url, json={"version": "4", "alerts": []}, auth=(USER, PASSWORD),
                              verify=ca.cert_file, cert=cert, timeout=5)
        # A real Alertmanager without a client certificate is refused too.
        no_cert = alertmanager_factory(config=_receiver_config(url, {
            "basic_auth": basic_auth, "tls_config": {"ca_file": str(ca.cert_file)}}))
        # Go sees TLS 1.3's refusal of its empty certificate as the connection closing.
        _refused_by(no_cert, "TlsNoClientCert", f'Post \\"{url}\\": EOF')
        assert _alertnames(consumer) == {"TlsDelivered"}
        assert relay.stop() == 0

    log = relay.log()
    assert ("Listener TLS on with mutual TLS: HTTPS with the certificate in "
            f"{server.cert_file}, client certificates required and verified against "
            f"{clients.cert_file} (webhook: basic auth)") in log
    assert PASSWORD not in log


@pytest.mark.timeout(120)
def test_reload_serves_a_renewed_certificate_and_keeps_it_when_a_file_breaks(
        tmp_path: Path, pki, rabbit_url: str, unique_name: str) -> None:
    ca, first = pki
    renewed = ca.issue("renewed", ips=["127.0.0.1"])
    elsewhere = ca.issue("elsewhere", ips=["127.0.0.1"])
    cert, key = tmp_path / "listener.pem", tmp_path / "listener.key"
    shutil.copy(first.cert_file, cert)
    shutil.copy(first.key_file, key)
    relay = _relay(tmp_path, rabbit_url, unique_name, {"cert_file": cert, "key_file": key})

    elsewhere_pem = elsewhere.cert_file.read_text().strip()

    def served() -> str:
        return ssl.get_server_certificate(("127.0.0.1", relay.port), timeout=5).strip()

    with relay:
        assert served() == first.cert_file.read_text().strip()
        # Renewal: new files at the same paths, then `systemctl reload` (SIGHUP).
        shutil.copy(renewed.cert_file, cert)
        shutil.copy(renewed.key_file, key)
        relay.signal(signal.SIGHUP)
        relay.wait_for_log("alarm-relay ready", count=2)
        assert served() == renewed.cert_file.read_text().strip()

        # The options are mutable: new paths take effect on reload too.
        relay.rewrite_config({"webhook": {"cert_file": elsewhere.cert_file,
                                          "key_file": elsewhere.key_file}})
        relay.signal(signal.SIGHUP)
        relay.wait_for_log("alarm-relay ready", count=3)
        assert served() == elsewhere.cert_file.read_text().strip()

        # A renewal gone wrong: the previous certificate stays, the relay keeps running.
        elsewhere.cert_file.write_text("not a certificate\n")
        relay.signal(signal.SIGHUP)
        relay.wait_for_log("alarm-relay ready", count=4)
        assert served() == elsewhere_pem
        assert requests.get(f"{_https(relay)}/healthz", verify=ca.cert_file,
                            timeout=5).status_code == 200
        assert relay.stop() == 0
    log = relay.log()
    assert "changed mutable options: [webhook] cert_file, [webhook] key_file" in log
    assert (f"ERROR daemon.tls [-] SIGHUP: [webhook] cert_file: {elsewhere.cert_file} holds "
            "no PEM certificate; the listener keeps its previous TLS settings\n") in log
    assert "exited with status 1" not in log
    assert "Traceback" not in log


def _start_with(tmp_path: Path, webhook: dict[str, Any]) -> subprocess.CompletedProcess:
    mapping = tmp_path / "mappings.yaml"
    mapping.write_text(MAPPING)
    config = write_config(tmp_path / "bad.conf", {
        "DEFAULT": {"transport_url": "rabbit://guest:guest@127.0.0.1:5672/",
                    "state_dir": tmp_path / "state"},
        "alertmanager": {"urls": "http://127.0.0.1:9093"},
        "mapping": {"path": mapping},
        "webhook": {"port": 0, **webhook},
    })
    return subprocess.run([relay_script(), "--config-file", str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("files", "expected"), [
    ({"cert_file": "missing.pem", "key_file": "relay.key"},
     "[webhook] cert_file: {tmp}/missing.pem is not readable"),
    ({"key_file": "relay.key"},
     "[webhook] key_file: set without cert_file; set both to serve TLS"),
    ({"client_ca_file": "ca.pem"},
     "[webhook] client_ca_file: needs cert_file and key_file"),
    ({"cert_file": "relay.pem", "key_file": "other.key"},
     "[webhook] key_file: {tmp}/other.key is not the private key of the certificate in "
     "cert_file"),
])
def test_bad_tls_files_stop_start_up_with_one_line(tmp_path: Path, files: dict[str, str],
                                                   expected: str) -> None:
    ca = CertificateAuthority(tmp_path, "relay test CA")
    ca.issue("relay", ips=["127.0.0.1"])
    ca.issue("other", ips=["127.0.0.1"])
    result = _start_with(tmp_path, {k: tmp_path / v for k, v in files.items()})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected.format(tmp=tmp_path) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
