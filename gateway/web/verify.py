"""GET /v1/verify: is this signed URL still good? For nginx auth_request and Envoy ext_authz.

nginx passes the original URI in ``X-Original-URI``; Envoy's HTTP ext_authz
sends the original method and path behind a ``path_prefix`` of ``/v1/verify``.
``X-Gateway-Profile`` names the CDN profile (default: ``signing.profile``);
a path-only URI is completed with the profile's base URL, and cookies are
read for cookie-based formats. 200 allows, 403 denies (with no reason: the
precise one is for the CLI and logs). An accepted URL is recorded as
``url:redeemed`` before the answer, once per token and client network
(``gateway.audit.redemptions``); if that record cannot be written the answer is 503.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.errors import InvalidInput, VerificationFailed
from gateway.netaddr import resolve_client_ip
from gateway.signing.dialects.base import Redemption
from gateway.web.appkeys import SERVICES
from gateway.web.middleware import REQUEST_ID, error_response
from gateway.web.sign import request_context

PREFIX = "/v1/verify"
log = logging.getLogger("gateway.verify")


def original_uri(request: web.Request) -> str:
    uri = request.headers.get("X-Original-URI")
    if uri:
        return uri
    tail = request.raw_path[len(PREFIX) :]
    if not tail.startswith("/"):
        raise InvalidInput("no URL to verify: send X-Original-URI or use /v1/verify as a path prefix")
    return tail


async def verify(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    uri = original_uri(request)
    client_ip = resolve_client_ip(
        request.remote, request.headers.get("X-Forwarded-For"), services.config.trusted_proxies
    )
    try:
        profile = services.profiles.get(request.headers.get("X-Gateway-Profile"))
        redemption = Redemption(
            url=profile.base_url + uri if uri.startswith("/") else uri,
            now=services.clock(),
            client_ip=client_ip,
            cookies=dict(request.cookies),
            options=profile.options,
        )
        accepted = await services.verifier.verify(redemption, profile)
    except (VerificationFailed, InvalidInput) as exc:
        log.info("deny %s: %s", request.get(REQUEST_ID), exc.reason)
        return error_response(403, "denied", "the signed URL is not valid")
    ctx = request_context(request, services, accepted.principal_id)
    await services.redemptions.record(
        ctx, kid=accepted.kid, url=redemption.url, expires=accepted.expires, profile=profile.name, now=redemption.now
    )
    return web.json_response(
        {"status": "allow", "kid": accepted.kid, "expires_at": accepted.expires},
        headers={"X-Gateway-Kid": accepted.kid, "X-Gateway-Principal": accepted.principal_id},
    )
