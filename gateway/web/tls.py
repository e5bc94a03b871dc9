"""HTTPS on the gateway's own listener: the server's TLS context and its reload on SIGHUP.

One listener serves every route. With ``tls.client_ca_file`` it asks every
client for a certificate (``CERT_OPTIONAL``): a certificate that is presented
must chain to that CA or the handshake fails; a client that presents none
still completes the handshake, and ``gateway.web.clientcert`` refuses it on
the routes named in ``tls.require_client_cert`` with a JSON 403. So page URLs,
health checks and the key set stay reachable for browsers, which have no such
certificate, while ``/v1/verify`` and the API answer only the proxy and the
backends holding one.

Reload: ``load_cert_chain`` on the live context changes what the *next*
handshakes present; connections already open keep what they negotiated and
go on serving. The new files are first loaded into a scratch context, so a
pair that does not fit (a key for another certificate, a half-written file)
is refused before the live context is touched and the old certificate keeps
being served. A client CA can be added by a reload (``load_verify_locations``
adds to the trust store) but not removed: dropping a CA takes a restart.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from gateway.config import Config
from gateway.errors import ConfigError


def server_context(config: Config) -> ssl.SSLContext | None:
    """The listener's context from ``[tls]``, or None when the gateway serves plain HTTP."""
    if not config.tls_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, config)
    if config.tls_client_ca_file:
        context.verify_mode = ssl.CERT_OPTIONAL  # demanded per route, not per connection (module docstring)
    return context


def reload(context: ssl.SSLContext, config: Config) -> str:
    """Load the configured files again into the live ``context``; returns what is now served.

    Raises ``ConfigError`` and leaves ``context`` as it was when the files cannot be used.
    """
    _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), config)  # the scratch load: refuses before anything changes
    _load(context, config)
    return describe(config.data_path(config.tls_cert_file))


def describe(cert_file: Path) -> str:
    """The served certificate in one line: subject, serial number and expiry."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        return f"{cert_file} (unreadable now: {exc})"
    expires = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{cert.subject.rfc4514_string()}, serial {cert.serial_number:x}, not after {expires}"


def _load(context: ssl.SSLContext, config: Config) -> None:
    cert, key = config.data_path(config.tls_cert_file), config.data_path(config.tls_key_file)
    for name, path in (("tls.cert_file", cert), ("tls.key_file", key)):
        if not path.is_file():  # named here: OpenSSL's own error does not say which file is missing
            raise ConfigError(f"{name}: no such file: {path}")
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:
        raise ConfigError(f"tls.cert_file/tls.key_file: cannot use {cert} with {key}: {_reason(exc)}") from None
    if config.tls_client_ca_file:
        ca = config.data_path(config.tls_client_ca_file)
        try:
            context.load_verify_locations(cafile=ca)
        except OSError as exc:
            raise ConfigError(f"tls.client_ca_file: cannot load {ca}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return exc.strerror or str(exc)
