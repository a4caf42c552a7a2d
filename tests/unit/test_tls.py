"""The listener's TLS context from [webhook] cert_file, key_file, client_ca_file.

Real certificates (made by tools/harness/tls.py) and real handshakes over loopback.
"""

from __future__ import annotations

import asyncio
import pathlib
import ssl

import pytest
from oslo_config import cfg

from daemon import conf as relay_conf
from daemon import exception, tls
from tools.harness.tls import CertificateAuthority

MAPPING = pathlib.Path(__file__).resolve().parents[2] / "etc" / "alarm-relay" / "mappings.yaml"


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority(tmp_path / "ca", "relay CA")


@pytest.fixture
def server(ca):
    return ca.issue("relay", ips=["127.0.0.1"])


def _conf(tmp_path, **webhook: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    lines = "".join(f"{key} = {value}\n" for key, value in webhook.items())
    path = tmp_path / "alarm-relay.conf"
    path.write_text(f"[DEFAULT]\nstate_dir = {tmp_path / 'state'}\n[mapping]\npath = {MAPPING}\n"
                    f"[alertmanager]\nurls = http://127.0.0.1:9093\n[webhook]\n{lines}")
    conf(["--config-file", str(path)], project="alarm-relay", default_config_files=[])
    relay_conf.set_defaults(conf)
    return conf


def _error(tmp_path, **webhook: str) -> str:
    """The one line validate() stops start-up with."""
    with pytest.raises(exception.ConfigError) as err:
        relay_conf.validate(_conf(tmp_path, **webhook))
    return str(err.value)


async def _handshake(context: ssl.SSLContext, ca_file, cert=None) -> bytes:
    """Serve one line over TLS with ``context``; connect as a client trusting ``ca_file``."""

    async def answer(reader, writer):
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        client.load_cert_chain(*cert.pair)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        try:
            # With TLS 1.3 a refused client certificate shows on the first read.
            return await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_off_when_no_certificate_is_set(tmp_path):
    conf = _conf(tmp_path)
    assert tls.mode(conf) == "off"
    assert tls.webhook_context(conf) is None


async def test_tls_serves_the_certificate(tmp_path, ca, server):
    conf = _conf(tmp_path, cert_file=server.cert_file, key_file=server.key_file)
    assert tls.mode(conf) == "tls"
    context = tls.webhook_context(conf)
    assert context.verify_mode == ssl.CERT_NONE
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert await _handshake(context, ca.cert_file) == b"hello\n"
    # A client that trusts another CA refuses the listener.
    other = CertificateAuthority(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(context, other.cert_file)


async def test_cert_file_holding_the_key_too(tmp_path, ca, server):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(server.cert_file.read_bytes() + server.key_file.read_bytes())
    context = tls.webhook_context(_conf(tmp_path, cert_file=bundle))
    assert await _handshake(context, ca.cert_file) == b"hello\n"


async def test_mutual_tls_requires_a_client_certificate_of_the_client_ca(tmp_path, ca, server):
    clients = CertificateAuthority(tmp_path / "clients", "client CA")
    conf = _conf(tmp_path, cert_file=server.cert_file, key_file=server.key_file,
                 client_ca_file=clients.cert_file)
    assert tls.mode(conf) == "mtls"
    context = tls.webhook_context(conf)
    assert context.verify_mode == ssl.CERT_REQUIRED
    # Only the client CA is trusted, not the system's CAs.
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "alarm-relay tests"),), (("commonName", "client CA"),))]

    assert await _handshake(context, ca.cert_file, clients.issue("am", client=True)) == b"hello\n"
    assert await _refused(context, ca.cert_file)  # no client certificate
    stranger = ca.issue("stranger", client=True)  # signed by the server's CA, not the clients'
    assert await _refused(context, ca.cert_file, stranger)


async def _refused(context, ca_file, cert=None) -> bool:
    # TLS 1.3: the client finishes its side of the handshake first; the server's refusal
    # arrives as an alert (an error) or a closed connection (EOF) where the line would be.
    try:
        line = await _handshake(context, ca_file, cert)
    except (ssl.SSLError, ConnectionError):
        return True
    return line == b""


def test_key_without_cert(tmp_path, server):
    assert _error(tmp_path, key_file=server.key_file) == (
        "[webhook] key_file: set without cert_file; set both to serve TLS")


def test_client_ca_without_cert(tmp_path, ca):
    assert _error(tmp_path, client_ca_file=ca.cert_file).startswith(
        "[webhook] client_ca_file: needs cert_file and key_file")


@pytest.mark.parametrize("option", ["cert_file", "key_file", "client_ca_file"])
def test_unreadable_file_names_its_option(tmp_path, server, ca, option):
    files = {"cert_file": server.cert_file, "key_file": server.key_file,
             "client_ca_file": ca.cert_file}
    files[option] = tmp_path / "missing.pem"
    assert _error(tmp_path, **files) == (
        f"[webhook] {option}: {tmp_path / 'missing.pem'} is not readable")


def test_directory_is_not_readable_as_a_file(tmp_path, server):
    assert _error(tmp_path, cert_file=tmp_path, key_file=server.key_file) == (
        f"[webhook] cert_file: {tmp_path} is not readable")


def test_cert_file_without_a_certificate(tmp_path, server):
    assert _error(tmp_path, cert_file=server.key_file, key_file=server.key_file) == (
        f"[webhook] cert_file: {server.key_file} holds no PEM certificate")


def test_key_of_another_certificate(tmp_path, ca, server):
    other = ca.issue("other", ips=["127.0.0.1"])
    assert _error(tmp_path, cert_file=server.cert_file, key_file=other.key_file).startswith(
        f"[webhook] key_file: {other.key_file} is not the private key of the certificate in "
        "cert_file (")


def test_cert_file_alone_without_its_key(tmp_path, server):
    assert _error(tmp_path, cert_file=server.cert_file).startswith(
        f"[webhook] cert_file: {server.cert_file} holds no private key of its certificate; "
        "set key_file")


def test_encrypted_key_is_refused_without_prompting(tmp_path, server):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(server.key_file.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    assert _error(tmp_path, cert_file=server.cert_file, key_file=encrypted) == (
        f"[webhook] key_file: {encrypted}: the private key is encrypted; give it unencrypted")


def test_client_ca_file_without_a_certificate(tmp_path, server):
    assert _error(tmp_path, cert_file=server.cert_file, key_file=server.key_file,
                  client_ca_file=server.key_file).startswith(
        f"[webhook] client_ca_file: {server.key_file} holds no PEM CA certificate")


def test_tls_does_not_replace_credentials_beyond_loopback(tmp_path, ca, server):
    clients = CertificateAuthority(tmp_path / "clients")
    assert _error(tmp_path, host="0.0.0.0", cert_file=server.cert_file,
                  key_file=server.key_file, client_ca_file=clients.cert_file).startswith(
        "[webhook] host: listening on 0.0.0.0 needs username/password or bearer_token_file")


def test_disabled_listener_ignores_tls_options(tmp_path, server):
    conf = _conf(tmp_path, enabled="false", key_file=server.key_file)
    relay_conf.validate(conf)


@pytest.mark.parametrize(("mode", "host", "auth", "level", "expected"), [
    ("off", "127.0.0.1", {}, "INFO", "Listener TLS off: plain HTTP (webhook: no credentials)"),
    # 127.0.0.2 is loopback for the kernel but not for the relay's rule: as a remote address.
    ("off", "127.0.0.2", {"username": "am", "password": "pw-secret"}, "WARNING",
     "Listener TLS off on 127.0.0.2: the webhook's basic auth crosses the network in clear "
     "text; set [webhook] cert_file and key_file"),
    ("tls", "127.0.0.1", {"bearer_token_file": "TOKEN"}, "INFO",
     "Listener TLS on: HTTPS with the certificate in CERT, client certificates not requested "
     "(webhook: bearer token)"),
    ("mtls", "127.0.0.2", {"username": "am", "password": "pw-secret"}, "INFO",
     "Listener TLS on with mutual TLS: HTTPS with the certificate in CERT, client certificates "
     "required and verified against CA (webhook: basic auth)"),
])
def test_listener_logs_whether_tls_is_on(tmp_path, ca, server, caplog, mode, host, auth, level,
                                         expected):
    token = tmp_path / "token"
    token.write_text("t0ken-secret")
    webhook = {"host": host, **{k: (token if v == "TOKEN" else v) for k, v in auth.items()}}
    if mode != "off":
        webhook.update(cert_file=server.cert_file, key_file=server.key_file)
    if mode == "mtls":
        webhook["client_ca_file"] = ca.cert_file
    conf = _conf(tmp_path, **webhook)
    relay_conf.validate(conf)
    with caplog.at_level("INFO", logger="daemon.tls"):
        context = tls.listener_context(conf)
    assert (context is None) == (mode == "off")
    [record] = [r for r in caplog.records if r.name == "daemon.tls"]
    assert record.levelname == level
    assert record.getMessage() == expected.replace("CERT", str(server.cert_file)).replace(
        "CA", str(ca.cert_file))
    assert "secret" not in caplog.text
