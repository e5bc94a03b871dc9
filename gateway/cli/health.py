"""gatewayctl health: is the gateway on this host ready? The container's health check (Dockerfile).

It reads the configuration ``serve`` reads, so it asks the way the server
answers: HTTPS when ``[tls]`` is on, plain HTTP otherwise, on ``server.port``
at ``server.host`` (a wildcard address, ``0.0.0.0`` or ``::``, is asked on
loopback). Over TLS it trusts exactly the certificates in ``tls.cert_file``
(pinned: the probe connects to an address, which the certificate need not
name), so the check passes against this gateway only, and never by turning
verification off. ``/readyz`` answers without a client certificate, whatever
``tls.require_client_cert`` says.
"""

from __future__ import annotations

import argparse
import http.client
import ssl

from gateway.cli import context
from gateway.cli.output import printable
from gateway.config import Config

EXIT_READY = 0
EXIT_NOT_READY = 1  # what a container runtime reads as "unhealthy"
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (addresses compared, not bound)


def probe_address(config: Config, host: str | None = None, port: int | None = None) -> tuple[str, int]:
    chosen = config.host if host is None else host
    return _WILDCARDS.get(chosen, chosen), config.port if port is None else port


def probe_context(config: Config) -> ssl.SSLContext | None:
    """None for plain HTTP; over TLS, a context that trusts the configured certificate and nothing else."""
    if not config.tls_cert_file:
        return None
    pinned = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pinned.check_hostname = False  # the certificate itself is pinned: which names it carries does not matter
    pinned.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the served certificate is a trust anchor of its own
    pinned.load_verify_locations(cafile=str(config.data_path(config.tls_cert_file)))
    return pinned


def url(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/readyz"


def probe(config: Config, host: str, port: int, timeout: float) -> tuple[bool, str]:
    """Ask ``/readyz`` once: whether it answered 200, and one line saying what happened."""
    tls = probe_context(config)
    where = url(host, port, tls is not None)
    connection = (
        http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
        if tls is not None
        else http.client.HTTPConnection(host, port, timeout=timeout)
    )
    try:
        connection.request("GET", "/readyz", headers={"User-Agent": "gatewayctl-health"})
        status = connection.getresponse().status
    except ssl.SSLCertVerificationError as exc:
        return False, f"not reachable: {where}: TLS: not the certificate in tls.cert_file ({exc.verify_message})"
    except ssl.SSLError as exc:
        return False, f"not reachable: {where}: TLS: {exc.reason or exc}"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"not reachable: {where}: {getattr(exc, 'strerror', None) or exc or type(exc).__name__}"
    finally:
        connection.close()
    if status != 200:
        return False, f"not ready: {where} answered {status}"
    return True, f"ok: {where} answered 200"


def run_health(args: argparse.Namespace) -> int:
    config = context.load(args)
    host, port = probe_address(config, args.host, args.port)
    try:
        ready, line = probe(config, host, port, args.timeout)
    except (OSError, ssl.SSLError) as exc:  # tls.cert_file unreadable: the server could not be serving it either
        ready, line = False, f"not ready: cannot read tls.cert_file {config.tls_cert_file}: {exc}"
    print(printable(line), flush=True)
    return EXIT_READY if ready else EXIT_NOT_READY


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    health = sub.add_parser(
        "health", parents=[context.common_parser(with_json=False, actor=False)],
        help="ask this host's gateway whether it is ready (the container health check)",
        description="GET /readyz on the address serve listens on, from the same configuration: HTTPS when [tls] "
        "is on (trusting exactly the certificate in tls.cert_file), HTTP otherwise; a wildcard server.host is "
        "asked on loopback. Exit 0 if it answered 200, 1 otherwise, with one line saying what happened.",
    )  # fmt: skip
    health.add_argument("--host", help="ask this address instead (default: server.host, loopback for a wildcard)")
    health.add_argument("--port", type=int, help="ask this port instead (default: server.port)")
    health.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer (default 2)")
    health.set_defaults(func=run_health, sync=True)
