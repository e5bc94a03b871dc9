"""POST /v1/sign and /v1/sign/batch: signed URLs for application backends."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.access.identity import bearer
from gateway.audit.records import RequestContext
from gateway.errors import GatewayError, InvalidInput, PayloadTooLarge
from gateway.model import Principal, Rendition, Viewer, check_name
from gateway.netaddr import parse_ip, resolve_client_ip
from gateway.services import Services
from gateway.signing.issuance import Outcome, SignItem
from gateway.web import parsing
from gateway.web.appkeys import SERVICES
from gateway.web.middleware import request_id


def request_context(
    request: web.Request, services: Services, actor: str, viewer_ip: str | None = None
) -> RequestContext:
    """Who asks, from where; ``viewer_ip`` (a backend speaking for a viewer) replaces the caller's address."""
    client_ip = viewer_ip or resolve_client_ip(
        request.remote,
        request.headers.get("X-Forwarded-For"),
        services.config.trusted_proxies,
    )
    return RequestContext(
        actor=actor,
        request_id=request_id(request),
        client_ip=client_ip,
        user_agent=request.headers.get("User-Agent"),
    )


async def authenticated_principal(request: web.Request, services: Services) -> Principal:
    token = bearer(request.headers.get("Authorization"))
    return await services.identity.principal(token, services.clock())


def _item(body: dict[str, Any], default_profile: str | None = None) -> SignItem:
    scope = body.get("scope", "path")
    if scope not in ("path", "prefix"):
        raise InvalidInput("scope must be 'path' or 'prefix'")
    return SignItem(
        media_id=check_name(body.get("media_id"), "media_id"),
        rendition=parsing.choice(Rendition, body.get("rendition"), "rendition"),
        ttl=parsing.optional_int(body, "ttl"),
        client_ip=parsing.string(body, "client_ip", required=False),
        prefix=scope == "prefix",
        profile=parsing.string(body, "profile", required=False) or default_profile,
    )


async def _viewer(body: dict[str, Any], services: Services) -> Viewer | None:
    token = body.get("viewer_token")
    asserted = body.get("viewer")
    if token is not None and asserted is not None:
        raise InvalidInput("give viewer_token or viewer, not both")
    if token is not None:
        if not isinstance(token, str):
            raise InvalidInput("viewer_token must be a string")
        return await services.identity.viewer(token, services.clock())
    if asserted is None:
        return None
    if not isinstance(asserted, dict):
        raise InvalidInput("viewer must be an object with id and workspaces")
    workspaces = parsing.string_list(asserted, "workspaces")
    return Viewer(
        subject=check_name(asserted.get("id"), "viewer.id"),
        workspaces=frozenset(check_name(w, "workspace") for w in workspaces),
        source="asserted",
    )


def issued_json(outcome: Outcome) -> dict[str, Any]:
    base = {"media_id": outcome.item.media_id, "rendition": outcome.item.rendition.value}
    if outcome.issued is None:
        error = outcome.error or GatewayError("no result")
        return {**base, "status": error.status, "error": error.code, "message": error.message}
    issued = outcome.issued
    return {
        **base,
        "status": 200,
        "url": issued.url,
        "expires_at": issued.expires,
        "kid": issued.kid,
        "issuance_id": issued.issuance_id,
        "profile": issued.profile,
        **({"cookies": dict(issued.cookies)} if issued.cookies else {}),
    }


async def sign(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticated_principal(request, services)
    body = await parsing.json_object(request)
    item = _item(body)
    viewer = await _viewer(body, services)
    ctx = request_context(request, services, principal.id, _viewer_ip(body))
    [outcome] = await services.issuer.issue(principal, viewer, [item], ctx, services.clock())
    if outcome.error is not None:
        raise outcome.error
    return web.json_response(issued_json(outcome))


async def sign_batch(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticated_principal(request, services)
    body = await parsing.json_object(request)
    raw_items = body.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise InvalidInput("items must be a non-empty list")
    if len(raw_items) > services.config.batch_max_items:
        raise PayloadTooLarge(f"at most {services.config.batch_max_items} items per batch")
    default_profile = parsing.string(body, "profile", required=False)
    items = [_batch_item(i, raw, default_profile) for i, raw in enumerate(raw_items)]
    viewer = await _viewer(body, services)
    ctx = request_context(request, services, principal.id, _viewer_ip(body))
    outcomes = await services.issuer.issue(principal, viewer, items, ctx, services.clock())
    return web.json_response({"results": [issued_json(o) for o in outcomes]})


def _viewer_ip(body: dict[str, Any]) -> str | None:
    """The viewer's address, recorded (masked) in the audit log but not bound into the URL."""
    value = parsing.string(body, "viewer_ip", required=False)
    return None if value is None else str(parse_ip(value))


def _batch_item(index: int, raw: Any, default_profile: str | None) -> SignItem:
    if not isinstance(raw, dict):
        raise InvalidInput(f"items[{index}] must be an object")
    try:
        return _item(raw, default_profile)
    except InvalidInput as exc:
        raise InvalidInput(f"items[{index}]: {exc.message}") from None
