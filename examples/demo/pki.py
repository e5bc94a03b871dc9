"""A throwaway certificate authority for the local stack and the tests: made fresh, never shipped.

``make_pki(directory)`` writes, mode 0600 for keys:

- ``ca.crt``: the CA that signs everything below (ECDSA P-256, one day);
- ``gateway.crt/.key``: the gateway's server certificate (``gateway.internal``, 127.0.0.1, ::1);
- ``edge.crt/.key``: nginx's viewer-facing certificate (localhost, 127.0.0.1);
- ``proxy.crt/.key``: nginx's client certificate towards the gateway (``/v1/verify``, page URLs);
- ``backend.crt/.key``: the application backend's client certificate (``/v1/sign``).

A real deployment uses its own CA for the client certificates, dedicated to
the proxies and backends that may call the gateway: the gateway accepts any
certificate that CA signed.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GATEWAY_NAME = "gateway.internal"
_LOOPBACK = ("127.0.0.1", "::1")


class Authority:
    """A CA in memory: issue server and client certificates, write them as PEM files."""

    def __init__(self, common_name: str = "media-gateway throwaway CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.cert = (
            _builder(name, name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(*_usage(cert_sign=True)), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self, common_name: str, *, server_names: tuple[str, ...] = (), client: bool = False
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            _builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(*_usage()), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(server_names)), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def write(
        self, directory: Path, name: str, common_name: str, *, server_names: tuple[str, ...] = (), client: bool = False
    ) -> None:
        cert, key = self.issue(common_name, server_names=server_names, client=client)
        write_pair(directory, name, cert, key)


@dataclass(frozen=True)
class Pki:
    directory: Path
    authority: Authority  # kept in memory: a test issues a replacement certificate from it

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = Authority()
    (directory / "ca.crt").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    ca.write(directory, "gateway", GATEWAY_NAME, server_names=(GATEWAY_NAME, *_LOOPBACK))
    ca.write(directory, "edge", "localhost", server_names=("localhost", *_LOOPBACK))
    ca.write(directory, "proxy", "nginx", client=True)
    ca.write(directory, "backend", "backend", client=True)
    return Pki(directory, ca)


def write_pair(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """``NAME.crt`` and ``NAME.key`` (0600), each replaced in one rename: a reader never sees half a file."""
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _replace(directory / f"{name}.key", pem_key)
    _replace(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))


def _replace(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _usage(cert_sign: bool = False) -> tuple[bool, ...]:
    # digital_signature, content_commitment, key_encipherment, data_encipherment, key_agreement,
    # key_cert_sign, crl_sign, encipher_only, decipher_only
    return (not cert_sign, False, False, False, False, cert_sign, cert_sign, False, False)


def _alt_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result
