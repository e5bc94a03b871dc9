"""POST /v1/sign and /v1/sign/batch: signed URLs for application backends."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.access.identity import bearer
from gateway.audit.records import RequestContext
from gateway.errors import GatewayError, InvalidInput, PayloadTooLarge
from gateway.model import Principal, Viewer
from gateway.netaddr import parse_ip
from gateway.services import Services
from gateway.signing.issuance import Outcome, SignItem
from gateway.web import parsing, schemas
from gateway.web.appkeys import SERVICES
from gateway.web.headers import forwarded_for
from gateway.web.middleware import json_response, request_id


def storable(text: str | None) -> str | None:
    """Header text as valid Unicode: aiohttp keeps undecodable bytes as lone surrogates, which no database can
    store; one such User-Agent would fail the whole audit group it joined (every request in it, 503)."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def request_context(
    request: web.Request, services: Services, actor: str, viewer_ip: str | None = None, client_ip: str | None = None
) -> RequestContext:
    """Who asks, from where: the caller's own address always (from the connection, behind trusted proxies;
    ``client_ip`` when the caller has resolved it already or, for an edge's report, knows it better);
    ``viewer_ip``, a backend's word for its viewer's address, beside it."""
    return RequestContext(
        actor=actor,
        request_id=request_id(request),
        client_ip=client_ip or services.addresses.resolve(request.remote, forwarded_for(request)),
        user_agent=storable(request.headers.get("User-Agent")),
        viewer_ip=viewer_ip,
    )


async def authenticated_principal(request: web.Request, services: Services) -> Principal:
    token = bearer(request.headers.get("Authorization"))
    return await services.identity.principal(token, services.clock())


def _item(body: schemas.SignItem, default_profile: str | None = None) -> SignItem:
    if body.form == "path" and body.scope != "prefix":
        raise InvalidInput('form "path" is a path token, which covers a directory: it needs scope "prefix"')
    return SignItem(
        media_id=body.media_id,
        rendition=body.rendition,
        ttl=body.ttl,
        client_ip=body.client_ip,
        prefix=body.scope == "prefix",
        profile=body.profile or default_profile,
        path_token=body.form == "path",
    )


async def _viewer(body: schemas.SignRequest | schemas.BatchRequest, services: Services) -> Viewer | None:
    if body.viewer_token is not None and body.viewer is not None:
        raise InvalidInput("give viewer_token or viewer, not both")
    if body.viewer_token is not None:
        return await services.identity.viewer(body.viewer_token, services.clock())
    if body.viewer is None:
        return None
    return Viewer(subject=body.viewer.id, workspaces=frozenset(body.viewer.workspaces), source="asserted")


def result(outcome: Outcome) -> schemas.Issued | schemas.Refused:
    media_id, rendition = outcome.item.media_id, outcome.item.rendition
    if outcome.issued is None:
        error = outcome.error or GatewayError("no result")
        return schemas.Refused(
            media_id=media_id, rendition=rendition, status=error.status, error=error.code, message=error.message
        )
    issued = outcome.issued
    return schemas.Issued(
        media_id=media_id,
        rendition=rendition,
        url=issued.url,
        expires_at=issued.expires,
        kid=issued.kid,
        issuance_id=issued.issuance_id,
        profile=issued.profile,
        cookies=dict(issued.cookies) if issued.cookies else msgspec.UNSET,
    )


async def sign(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticated_principal(request, services)
    body = await parsing.body(request, schemas.SignRequest)
    viewer = await _viewer(body, services)
    ctx = request_context(request, services, principal.id, _viewer_ip(body))
    [outcome] = await services.issuer.issue(principal, viewer, [_item(body)], ctx, services.clock())
    if outcome.error is not None:
        raise outcome.error
    return json_response(result(outcome))


async def sign_batch(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticated_principal(request, services)
    body = await parsing.body(request, schemas.BatchRequest)
    if len(body.items) > services.config.batch_max_items:
        raise PayloadTooLarge(f"at most {services.config.batch_max_items} items per batch")
    items = [_item(raw, body.profile) for raw in body.items]
    viewer = await _viewer(body, services)
    ctx = request_context(request, services, principal.id, _viewer_ip(body))
    outcomes = await services.issuer.issue(principal, viewer, items, ctx, services.clock())
    return json_response(schemas.BatchResponse(results=[result(o) for o in outcomes]))


def _viewer_ip(body: schemas.SignRequest | schemas.BatchRequest) -> str | None:
    """The viewer's address, recorded (masked) in the audit log beside the caller's, not bound into the URL.

    Only for a viewer (issuance then needs ``sign:on-behalf``: gateway.access.authz, rule 4).
    """
    if body.viewer_ip is None:
        return None
    if body.viewer_token is None and body.viewer is None:
        raise InvalidInput("viewer_ip is the address of the viewer the URL is for: give viewer_token or viewer too")
    return str(parse_ip(body.viewer_ip))
