"""Routes only the proxy and the backends may call: ``tls.require_client_cert``.

The listener has already checked any certificate presented against
``tls.client_ca_file`` during the handshake (``gateway.web.tls``): a
connection carries a peer certificate only if it chains to that CA. This
middleware asks that one question for the routes that need it and refuses
the others with a JSON 403 ``client_certificate_required`` — never a TLS
failure, which would shut browsers out of the page URLs too.

Route groups, by the matched route's pattern, so a new API route is
protected without being listed here:

- ``verify``: ``/v1/verify`` and ``/v1/verify/{tail}``;
- ``api``: every route but ``verify``, the page URLs (``/m/…``, for
  browsers) and the public documents below;
- never: ``/healthz``, ``/readyz``, ``/.well-known/jwks.json``,
  ``/openapi.json``, and paths that match no route (their 404 or 405).
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.errors import Forbidden

_PUBLIC = frozenset({"/healthz", "/readyz", "/.well-known/jwks.json", "/openapi.json"})


def route_group(pattern: str) -> str | None:
    """``verify``, ``api`` or None (never needs a certificate) for a route pattern as aiohttp spells it."""
    if pattern == "/v1/verify" or pattern.startswith("/v1/verify/"):
        return "verify"
    if pattern in _PUBLIC or pattern.startswith("/m/"):
        return None
    return "api"


def presented_certificate(request: web.Request) -> bool:
    """Did this connection present a client certificate (one the handshake verified)?"""
    transport = request.transport
    return transport is not None and bool(transport.get_extra_info("peercert"))


def certificate_names(request: web.Request) -> frozenset[str]:
    """The names the verified client certificate carries: its subject's common names and its DNS names."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return frozenset()
    common = (value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName")
    dns = (value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS")
    return frozenset((*common, *dns))


def require_certificate(request: web.Request) -> None:
    """Refuse (403 ``client_certificate_required``) a request whose connection presented no certificate."""
    if not presented_certificate(request):
        raise Forbidden(
            "this route answers only clients with a certificate from the configured CA (tls.client_ca_file)",
            code="client_certificate_required",
        )


def client_cert_middleware(required: Collection[str]) -> Middleware:
    """Refuse requests without a client certificate on the route groups in ``required``."""
    groups: dict[str, str | None] = {}  # route pattern -> group, worked out once per route

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None:
            pattern = resource.canonical
            if pattern not in groups:
                groups[pattern] = route_group(pattern)
            if groups[pattern] in required:
                require_certificate(request)
        return await handler(request)

    return middleware
