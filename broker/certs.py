"""Development TLS material for the broker: a private CA and a server certificate it signs.

For tests, ``cctv up`` and trying TLS on one machine: clients trust ``ca.crt``
and connect to the broker's TLS listener as ``localhost``, ``127.0.0.1``,
``::1`` or any extra hostname given. Files written into one directory:

- ``ca.crt``, ``server.crt``: mode 0644 (public, clients need the CA);
- ``ca.key``, ``server.key``: mode 0600; the broker launcher copies the server
  key into its run dir with the broker user's ownership.

An existing CA in the directory is reused, so clients keep trusting the broker
across restarts; the server certificate is issued afresh each time.

This module must never be used for production certificates (they come from the
operator's PKI), never log key material, and never write a private key
readable by other users.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
_CA_DAYS = 3650
# Clients (Apple's in particular) refuse server certificates valid for longer.
_SERVER_DAYS = 825
# Tolerate a client clock a little behind the one that issued the certificate.
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the files a TLS listener needs: the CA to trust, the server's cert and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode so a key is never readable by others, even briefly.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san_entries(hostnames: Iterable[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for name in (*DEFAULT_HOSTNAMES, *hostnames):
        if name in seen:
            continue
        seen.add(name)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def _load_ca(ca_cert: Path, ca_key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca_key} is not an EC private key made by this module")
    return cert, key


def _create_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cctv development CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hostnames: Iterable[str],
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cctv broker")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=_SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san_entries(hostnames)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        # Python 3.13+ verifies strictly (VERIFY_X509_STRICT) and needs this.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def generate_dev_certs(directory: Path, hostnames: Iterable[str] = ()) -> TlsFiles:
    """Write a development CA (reused if present) and a fresh server certificate into ``directory``.

    The server certificate is valid for localhost, 127.0.0.1, ::1 and every
    name in ``hostnames`` (IP addresses become IP SANs, the rest DNS names).
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_cert_path, ca_key_path = directory / "ca.crt", directory / "ca.key"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert, ca_key = _load_ca(ca_cert_path, ca_key_path)
        reused = True
    else:
        ca_cert, ca_key = _create_ca(now)
        _write(ca_key_path, _key_pem(ca_key), 0o600)
        _write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        reused = False
    names = list(hostnames)
    cert, key = _issue_server_cert(ca_cert, ca_key, names, now)
    files = TlsFiles(
        ca_file=ca_cert_path,
        cert_file=directory / "server.crt",
        key_file=directory / "server.key",
    )
    _write(files.key_file, _key_pem(key), 0o600)
    _write(files.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    logger.info(
        "broker.dev_certs.written dir=%s ca_reused=%s extra_hostnames=%s",
        directory,
        reused,
        ",".join(names) or "-",
    )
    return files
