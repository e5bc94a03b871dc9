"""TLS test helpers: a gateway configured with a throwaway CA; HTTPS requests with or without a client certificate."""

from __future__ import annotations

import dataclasses
import http.client
import json
import ssl
from pathlib import Path
from typing import Any

from examples.demo.pki import Pki, make_pki
from gateway.config import Config


def with_tls(config: Config, pki: Pki, require: tuple[str, ...] = ("verify", "api")) -> Config:
    return dataclasses.replace(
        config,
        tls_cert_file=str(pki.cert("gateway")),
        tls_key_file=str(pki.key("gateway")),
        tls_client_ca_file=str(pki.ca),
        tls_require_client_cert=require,
    )


def pki_in(directory: Path) -> Pki:
    return make_pki(directory / "pki")


def client_context(pki: Pki, certificate: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca)
    if certificate:
        context.load_cert_chain(pki.cert(certificate), pki.key(certificate))
    return context


def https(
    port: int,
    context: ssl.SSLContext,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request on a new connection; the status and the JSON body (``{}`` if none)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        connection.close()


def served_serial(connection: http.client.HTTPSConnection) -> int:
    """The serial number of the certificate the server presented on this connection."""
    assert isinstance(connection.sock, ssl.SSLSocket)
    peer = connection.sock.getpeercert()
    assert peer is not None
    return int(str(peer["serialNumber"]), 16)  # hex in byte pairs: a leading zero now and then
