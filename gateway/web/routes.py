"""The route table: every endpoint once.

``create_app`` registers these rows and ``gateway.web.openapi`` draws the
OpenAPI document from the very same rows (operation id, request body model,
response models per status, security), so the document cannot drift from
what is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.model import Rendition
from gateway.web import edge, explain, media, meta, operations, pages, schemas, sign, verify

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Security schemes (drawn in gateway.web.openapi): any one of a route's schemes suffices.
PRINCIPAL = "principalToken"
VIEWER = "viewerToken"
VIEWER_COOKIE = "viewerCookie"
EDGE = "edgeToken"


@dataclass(frozen=True)
class Reply:
    description: str
    body: Any = schemas.Error  # a schemas model, or None for an empty body
    headers: Mapping[str, str] = field(default_factory=dict)  # response header -> description


@dataclass(frozen=True)
class Route:
    method: str  # "*": any method (Envoy forwards the original one); documented as GET
    path: str  # aiohttp's form; "{name:regex}" is documented as "{name}"
    handler: Handler
    operation_id: str
    summary: str
    replies: Mapping[int, Reply]
    body: Any = None  # the request body's model
    security: tuple[str, ...] = ()
    path_params: Mapping[str, Any] = field(default_factory=dict)  # name -> type (its schema)
    header_params: Mapping[str, str] = field(default_factory=dict)  # request header -> description


_ERRORS = {
    400: "the request is malformed: the message says which field and why",
    401: "no valid token: the message says what is wrong with it",
    403: "authenticated, but not permitted (the message carries the reason)",
    404: "no such thing",
    408: "the body did not arrive within server.body_timeout; the connection is closed",
    413: "the body, or the batch, is too large",
    429: "an abuse limit tripped (limits.*): retry after the seconds in Retry-After",
    503: "the store or the audit log is unavailable; nothing was issued",
}


def _errors(*statuses: int) -> dict[int, Reply]:
    replies = {status: Reply(_ERRORS[status]) for status in statuses}
    if 401 in replies:
        replies[401] = Reply(_ERRORS[401], headers={"WWW-Authenticate": "Bearer realm"})
    if 429 in replies:
        replies[429] = Reply(_ERRORS[429], headers={"Retry-After": "whole seconds until a retry can succeed"})
    return replies


_MEDIA_ID = {"media_id": schemas.MediaId}

ROUTES: tuple[Route, ...] = (
    Route(
        "POST", "/v1/sign", sign.sign, "sign", "A signed URL for one media rendition",
        {200: Reply("the signed URL, already recorded in the audit log", schemas.Issued),
         **_errors(400, 401, 403, 404, 408, 413, 429, 503)},
        body=schemas.SignRequest, security=(PRINCIPAL,),
    ),
    Route(
        "POST", "/v1/sign/batch", sign.sign_batch, "signBatch", "Signed URLs for many items, one viewer",
        {200: Reply("one result per item, each with its own status", schemas.BatchResponse),
         **_errors(400, 401, 408, 413, 429, 503)},
        body=schemas.BatchRequest, security=(PRINCIPAL,),
    ),
    Route(
        "GET", "/m/{media_id}/{rendition}", pages.page, "openPage", "The stable page URL: a redirect to a fresh URL",
        {302: Reply("to a freshly signed URL", None, {"Location": "the signed URL", "Cache-Control": "no-store"}),
         **_errors(401, 403, 404, 429, 503)},
        security=(VIEWER, VIEWER_COOKIE),
        path_params={"media_id": schemas.MediaId, "rendition": Rendition},  # anything else: the same 404
    ),
    Route(
        "*", verify.PREFIX, verify.verify, "verify", "Is this signed URL still good? (nginx auth_request)",
        {200: Reply("allowed", schemas.VerifyAllowed, {"X-Gateway-Kid": "the key that signed it"}),
         **_errors(400, 403, 503)},
        header_params={
            "X-Original-URI": "the URI the viewer asked for, without the CDN host",
            "X-Original-Method": "the viewer's method: anything but GET or HEAD is refused (method-not-allowed)",
        },
    ),
    Route(
        # [\s\S], not ".": a tail with an encoded line break is the verifier's to deny (403), not an unknown route
        "*", verify.PREFIX + r"/{tail:[\s\S]*}", verify.verify, "verifyPath", "The same, the URI as a path (Envoy)",
        {200: Reply("allowed", schemas.VerifyAllowed, {"X-Gateway-Kid": "the key that signed it"}),
         **_errors(400, 403, 503)},
        path_params={"tail": str},
    ),
    Route(
        "POST", "/v1/explain", explain.explain, "explain",
        "Why /v1/verify would refuse a signed URL now, or that it would allow it (admin)",
        {200: Reply("the verdict, the reason in words, who revoked what and when", schemas.Explained),
         **_errors(400, 401, 403, 408, 413, 503)},
        body=schemas.ExplainRequest, security=(PRINCIPAL,),
    ),
    Route(
        "PUT", "/v1/media/{media_id}", media.put_media, "putMedia", "Register or replace a media item",
        {200: Reply("the item as stored", schemas.Media), **_errors(400, 401, 403, 408, 413, 503)},
        body=schemas.MediaRequest, security=(PRINCIPAL,), path_params=_MEDIA_ID,
    ),
    Route(
        "GET", "/v1/media/{media_id}", media.get_media, "getMedia", "A media item",
        {200: Reply("the item", schemas.Media), **_errors(400, 401, 403, 404, 503)},
        security=(PRINCIPAL,), path_params=_MEDIA_ID,
    ),
    Route(
        "POST", "/v1/media/{media_id}/revoke-links", media.revoke_links, "revokeLinks",
        "Revoke every URL issued for the item until now (new ones are issued as before)",
        {200: Reply("the item, with links_revoked_at", schemas.Media), **_errors(400, 401, 403, 404, 408, 413, 503)},
        body=schemas.RevokeLinksRequest, security=(PRINCIPAL,), path_params=_MEDIA_ID,
    ),
    Route(
        "DELETE", "/v1/media/{media_id}", media.delete_media, "deleteMedia",
        "Delete a media item: issuance stops, and its URLs stop verifying at the gateway (not in formats a CDN "
        "checks alone: docs/dialects.md)",
        {204: Reply("deleted", None), **_errors(400, 401, 403, 404, 503)},
        security=(PRINCIPAL,), path_params=_MEDIA_ID,
    ),
    Route(
        "POST", "/v1/subjects/resolve", operations.resolve_subjects, "resolveSubjects",
        "The subject ids behind the pseudonyms an incident webhook named (null: unknown or erased)",
        {200: Reply("pseudonym -> subject id", operations.Resolved), **_errors(400, 401, 403, 408, 413, 503)},
        body=operations.ResolveRequest, security=(PRINCIPAL,),
    ),
    Route(
        "GET", "/v1/edge/state", edge.state, "edgeState",
        "The state nginx needs to verify native URLs itself, full or since a version (long poll: docs/edge.md)",
        {200: Reply("the state, or what changed since the version asked about", edge.EdgeState),
         **_errors(400, 401, 404, 503)},
        security=(EDGE,),
    ),
    Route(
        "POST", "/v1/edge/redemptions", edge.redemptions, "edgeRedemptions",
        "First uses of tokens the edge allowed: recorded as /v1/verify records them (url:redeemed)",
        {200: Reply("how many were recorded", edge.RedemptionsRecorded), **_errors(400, 401, 404, 408, 413, 503)},
        body=edge.RedemptionReport, security=(EDGE,),
    ),
    Route(
        "GET", "/metrics", operations.metrics, "metrics", "Prometheus metrics (text format 0.0.4)",
        {200: Reply("the metrics, as text/plain; version=0.0.4", None), **_errors(401, 403, 404)},
    ),
    Route("GET", "/healthz", meta.healthz, "health", "Liveness", {200: Reply("alive", schemas.Status)}),
    Route(
        "GET", "/readyz", meta.readyz, "ready", "Readiness: the store answers",
        {200: Reply("ready", schemas.Status), **_errors(503)},
    ),
    Route(
        "GET", "/.well-known/jwks.json", meta.jwks, "jwks", "Active Ed25519 URL-signing public keys",
        {200: Reply("a JSON Web Key Set", schemas.Jwks, {"Cache-Control": "max-age=60"})},
    ),
    Route(
        "GET", "/openapi.json", meta.openapi, "openapi", "This document",
        {200: Reply("OpenAPI 3.1", dict[str, Any])},
    ),
)  # fmt: skip


def register(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    for route in routes:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)  # HEAD too, as aiohttp does for GET
        else:
            app.router.add_route(route.method, route.path, route.handler)
