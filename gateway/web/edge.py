"""The edge feed and redemption reports: nginx verifying native URLs itself (docs/edge.md).

``GET /v1/edge/state?since=V&wait=S`` answers the state the edge's rules need
(``gateway.edge.feed``), full or since version V, holding the request up to S
seconds (``edge.max_wait``) until the view moves past V: a long poll.
``POST /v1/edge/redemptions`` takes the first uses of tokens the edge allowed
and records them as ``/v1/verify`` would (``gateway.audit.redemptions``), each
URL's signature checked first: the edge's token cannot write a use of a URL
no key signed.

Who may call: a bearer token from ``edge.token_file``, or (``edge.mtls``) a
client certificate from ``tls.client_ca_file`` that names the edge (a common
or DNS name in ``edge.client_names``: the same CA vouches for backends and
proxies, which must not read the feed). Neither configured: 404. HMAC secrets
are sent only over mutual TLS with ``edge.hmac_secrets``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from aiohttp import web

from gateway.edge import feed
from gateway.errors import InvalidInput, NotFound, StateStale, Unauthenticated, VerificationFailed
from gateway.model import KeyAlgorithm, SigningKey
from gateway.netaddr import parse_ip
from gateway.services import Services
from gateway.signing.dialects.base import Redemption, Verified
from gateway.signing.dialects.native import NativeDialect
from gateway.signing.path_tokens import resource_path
from gateway.signing.paths import url_path
from gateway.signing.profiles import NATIVE
from gateway.signing.verification import EXPIRY_SKEW, redemption_token, revocation_ending
from gateway.web import parsing
from gateway.web.appkeys import SERVICES
from gateway.web.clientcert import certificate_names
from gateway.web.headers import bearer_matches
from gateway.web.middleware import json_response
from gateway.web.sign import request_context

MAX_REPORTS = 500
# A first use the edge reports is recent: its write-behind flushes every 200 ms and keeps at most 10 000 waiting.
# Anything older than this, or from the future beyond clock skew, is refused rather than written into the log.
REPORT_AGE_LIMIT = 3600.0
REPORT_SKEW = 5.0  # between the edge's clock and this one
# How long after a revocation an edge may still allow under it: its feed is long-polled, and an edge whose
# state was not proved current for 2.5 s denies everything (docs/edge.md).
EDGE_STATE_LAG = 5.0
log = logging.getLogger("gateway.edge")
_NATIVE = NativeDialect()


def _allowable(services: Services, key: SigningKey, verified: Verified, path: str, at: float) -> bool:
    """Whether an edge could have allowed this verified URL at ``at``: what /v1/verify checks beyond the
    signature, as of then. Not before it was issued (``gw_iat`` is rounded down, never up); not with an expiry
    no gateway signs; not once its key was revoked or expired, its principal disabled, or a link or grant
    revocation (a media item's deletion among them) ended it, longer ago than an edge's state may lag (a use
    just before a revocation reached the edge is still a use)."""
    if verified.issued_at is not None and at < verified.issued_at - REPORT_SKEW:
        return False
    if verified.expires > at + services.config.max_ttl + EXPIRY_SKEW:
        return False
    view = services.state.view
    principal = view.principals.get(key.principal_id)
    ends = [key.revoked_at, key.not_after, principal.disabled_at if principal else None]
    if verified.issued_at is not None:
        revoked = revocation_ending(view, path, key.principal_id, verified.issued_at)
        ends.append(revoked[1] if revoked else None)
    ended = [t for t in ends if t is not None]
    return not ended or at < min(ended) + EDGE_STATE_LAG


class EdgeState(msgspec.Struct, kw_only=True, omit_defaults=True):
    version: int
    full: bool
    age: float  # seconds since the gateway's own view was proved current
    max_expiry_ahead: int  # expiry-too-far: gw_exp more than this many seconds ahead is refused
    keys: list[dict[str, Any]]
    principals: list[dict[str, Any]]
    revocations: dict[str, list[list[Any]]] | None = None


class EdgeRedemption(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]  # origin-form, as the viewer sent it
    client_ip: Annotated[str, msgspec.Meta(max_length=64)]
    at: Annotated[float, msgspec.Meta(ge=0)]  # when the edge allowed it (POSIX seconds)


class RedemptionReport(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    redemptions: Annotated[list[EdgeRedemption], msgspec.Meta(max_length=MAX_REPORTS)]


class RedemptionsRecorded(msgspec.Struct, kw_only=True):
    recorded: int  # first uses written to the audit log
    repeated: int  # already recorded from that network (by this gateway or another edge)
    refused: int  # not a native URL the gateway can name a key for: not recorded


def _authorise(request: web.Request, services: Services) -> bool:
    """Whether the caller is the edge; True when it came over mutual TLS. NotFound when the feed is off."""
    config = services.config
    token = services.edge_token
    if token is None and not config.edge_mtls:
        raise NotFound("Not Found")
    if config.edge_mtls and not certificate_names(request).isdisjoint(config.edge_client_names):
        return True
    if token is not None and bearer_matches(request, token):
        return False
    raise Unauthenticated(
        "the edge feed needs the bearer token from edge.token_file or a client certificate named in edge.client_names"
    )


def _number(request: web.Request, name: str, default: float, high: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text) if name == "wait" else int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None
    if not 0 <= value <= high:
        raise InvalidInput(f"{name} must be from 0 to {high:g}")
    return value


async def _secrets(services: Services, over_mtls: bool) -> dict[str, bytes]:
    if not (over_mtls and services.config.edge_hmac_secrets):
        return {}
    keys = feed.edge_keys(services.state.view)
    return {k.kid: await services.keyring.secret(k) for k in keys if k.algorithm is KeyAlgorithm.HMAC_SHA256}


async def state(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    over_mtls = _authorise(request, services)
    since = int(_number(request, "since", 0, 2**63 - 1))
    wait = _number(request, "wait", 0.0, services.config.edge_max_wait)
    if since and wait:
        await services.state.wait_beyond(since, wait)
    if not services.state.current():
        raise StateStale("the gateway's state view is stale: the edge must not be told it is current")
    doc = feed.document(services.state.view, services.edge_changes, since, await _secrets(services, over_mtls))
    ahead = services.config.max_ttl + services.config.cache_window + 60
    body = doc.as_json(age=services.state.age(), max_expiry_ahead=ahead)
    return json_response(msgspec.convert(body, EdgeState), headers={"Cache-Control": "no-store"})


async def redemptions(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    _authorise(request, services)
    report = await parsing.body(request, RedemptionReport)
    counts = {"recorded": 0, "repeated": 0, "refused": 0}
    now = services.clock()
    for item in report.redemptions:
        recent = now - REPORT_AGE_LIMIT <= item.at <= now + REPORT_SKEW
        counts[await _record(request, services, item) if recent else "refused"] += 1
    return json_response(RedemptionsRecorded(**counts))


async def _record(request: web.Request, services: Services, item: EdgeRedemption) -> str:
    """Record one reported first use exactly as /v1/verify would have: the same token digest and record."""
    try:
        client_ip = str(parse_ip(item.client_ip))  # no zone ids: "%" and anything after it never reach a record
    except InvalidInput:
        return "refused"
    if not item.url.startswith("/") or "#" in item.url:  # origin-form only, as the edge saw it: one spelling
        return "refused"
    profile = services.profiles.get(NATIVE)
    url = profile.base_url + item.url
    redemption = Redemption(url=url, now=item.at, client_ip=client_ip, options=profile.options)
    try:
        key = services.state.view.keys.get(_NATIVE.presented_key_id(redemption) or "")
        if key is None:
            return "refused"
        # Signed by that key, good when the edge allowed it, bound to that address if bound: a report can record
        # only a URL the key really signed, never one made up to blame a key.
        verified = _NATIVE.verify(redemption, await services.keyring.verification_material(key, key.kid))
        path = resource_path(url_path(url))
    except (VerificationFailed, InvalidInput):
        return "refused"
    if not _allowable(services, key, verified, path, item.at):
        return "refused"
    digest = redemption_token(verified.identity or url.encode())  # one per token, however it is spelled
    if not services.redemptions.first_from(digest, client_ip):
        return "repeated"
    ctx = request_context(request, services, key.principal_id, client_ip=client_ip)
    recorded = await services.redemptions.record(
        ctx, token=digest, kid=key.kid, url=url, expires=verified.expires, profile=NATIVE, now=item.at
    )
    return "recorded" if recorded else "repeated"
