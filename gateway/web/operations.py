"""GET /metrics for Prometheus, and POST /v1/subjects/resolve for webhook receivers.

``/metrics`` answers only peers in ``metrics.allow`` (the TCP peer itself,
never ``X-Forwarded-For``: default this host only) and, with
``metrics.token_file``, only ``Authorization: Bearer <that token>``; with
``tls.require_client_cert = ["api"]`` it also needs a client certificate.
Prometheus is given the token with ``authorization.credentials_file``.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import msgspec
from aiohttp import web

from gateway.alerts.incidents import MAX_RESOLVE, resolve
from gateway.errors import Forbidden, NotFound, Unauthenticated
from gateway.model import Permission
from gateway.netaddr import in_networks
from gateway.observe.metrics import CONTENT_TYPE
from gateway.services import Services
from gateway.web import parsing
from gateway.web.appkeys import SERVICES
from gateway.web.headers import bearer_matches
from gateway.web.middleware import json_response
from gateway.web.sign import authenticated_principal, request_context

Pseudonym = Annotated[str, msgspec.Meta(pattern=r"^sub_[0-9a-f]{32}$", description="a subject's pseudonym")]


class ResolveRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    subjects: Annotated[list[Pseudonym], msgspec.Meta(min_length=1, max_length=MAX_RESOLVE)]


class Resolved(msgspec.Struct, kw_only=True):
    subjects: dict[str, str | None]  # pseudonym -> subject id, null if unknown or erased


def _check_scraper(request: web.Request, services: Services) -> None:
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        peer = None
    if peer is None or not in_networks(peer, services.config.metrics_allow):
        raise Forbidden("metrics are served only to the networks in metrics.allow")
    token = services.metrics.token
    if token is not None and not bearer_matches(request, token):
        raise Unauthenticated("metrics need the bearer token from metrics.token_file")


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if not services.config.metrics_enabled:
        raise NotFound("Not Found")
    _check_scraper(request, services)
    return web.Response(
        body=services.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    )


async def resolve_subjects(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticated_principal(request, services)
    if not principal.has(Permission.SIGN_ON_BEHALF):  # admin implies it
        raise Forbidden("resolving pseudonyms needs sign:on-behalf or admin", reason="not-permitted")
    body = await parsing.body(request, ResolveRequest)
    ctx = request_context(request, services, principal.id)
    found = await resolve(services.store, services.audit_log, ctx, body.subjects, services.clock())
    return json_response(Resolved(subjects=found))
