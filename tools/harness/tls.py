"""Test certificate authorities: a CA, server and client certificates as PEM files.

Made with the ``cryptography`` package in the test's own directory, ECDSA P-256 (fast to
make, and what Go's crypto/tls in Alertmanager and Python's ssl both take)::

    ca = CertificateAuthority(tmp_path / "ca", "relay test CA")
    server = ca.issue("relay", ips=["127.0.0.1"], dns=["localhost"])
    client = ca.issue("alertmanager", client=True)
    server.cert_file, server.key_file, ca.cert_file      # paths

A server certificate names its addresses in subjectAltName (Go ignores the common name),
a client certificate carries the clientAuth extended key usage.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "Issued"]


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its key, as PEM files."""

    name: str
    cert_file: Path
    key_file: Path

    @property
    def pair(self) -> tuple[str, str]:
        """``(cert, key)`` as requests' ``cert=`` takes it."""
        return str(self.cert_file), str(self.key_file)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "alarm-relay tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class CertificateAuthority:
    """A self-signed CA whose certificate and key live in ``directory``.

    :param directory: created if missing; holds ``ca.pem``, ``ca.key`` and every
        certificate issued (``NAME.pem``, ``NAME.key``)
    :param common_name: the CA's subject CN
    :param days: validity from one hour ago (clock skew), for the CA and what it issues
    """

    def __init__(self, directory: str | Path, common_name: str = "alarm-relay test CA", *,
                 days: int = 2) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.days = days
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(common_name)
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file = self.directory / "ca.pem"
        self.cert_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.key_file = self.directory / "ca.key"
        _write_key(self.key, self.key_file)

    def issue(self, name: str, *, ips: Sequence[str] = (), dns: Sequence[str] = (),
              client: bool = False, days: int | None = None) -> Issued:
        """Issue a certificate for ``name``; write ``NAME.pem`` and ``NAME.key``.

        :param ips: IP subjectAltNames (a server certificate for 127.0.0.1 needs it)
        :param dns: DNS subjectAltNames
        :param client: a client certificate (clientAuth) instead of a server one
        :param days: validity; negative makes a certificate that expired
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        days = self.days if days is None else days
        if days >= 0:
            not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=days)
        else:
            not_before, not_after = now + dt.timedelta(days=days - 1), now + dt.timedelta(
                days=days)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=False, crl_sign=False,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        alt_names: list[x509.GeneralName] = [
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips),
            *(x509.DNSName(d) for d in dns),
        ]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names),
                                            critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        cert_file = self.directory / f"{name}.pem"
        key_file = self.directory / f"{name}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
        return Issued(name, cert_file, key_file)
