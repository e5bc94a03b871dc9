"""GET /v1/verify: is this signed URL still good? For nginx auth_request and Envoy ext_authz.

nginx passes the original URI in ``X-Original-URI`` (``$request_uri``),
honoured only from ``proxy.trusted``; Envoy's HTTP ext_authz sends the
original method and path behind a ``path_prefix`` of ``/v1/verify``. Only a read is allowed: the
request's own method (Envoy's is the viewer's) and, when a proxy names it, ``X-Original-Method``
(nginx) must be GET or HEAD, or the answer is 403 (``method-not-allowed``): a signed read URL must
not carry a DELETE, PUT or POST to the origin. The URL verified is always the profile's
``base_url`` plus the presented path and query: an absolute-form URI keeps
only its path and query, so a client cannot pick the host. Cookies are read
for cookie-based formats.

The profile is the deployment's choice (``Profiles.for_verification``): the
first of ``verify.profiles``, or the one a trusted proxy names in
``X-Gateway-Profile``; a name from anyone else, or one not listed, is denied
(``profile-not-allowed``).

200 allows, 403 denies (with no reason: the precise one is for the CLI and
logs). An accepted URL is recorded as ``url:redeemed`` once per token and
client network (``gateway.audit.redemptions``), written behind: the answer
never waits for that record, which is committed within a second (a full
queue drops it, counted in /metrics).
"""

from __future__ import annotations

import functools
import logging

from aiohttp import hdrs, web
from multidict import CIMultiDict, istr

from gateway.errors import InvalidInput, VerificationFailed
from gateway.services import Services
from gateway.signing.dialects.base import Redemption
from gateway.signing.paths import strip_authority
from gateway.signing.profiles import Profile
from gateway.signing.verification import Accepted
from gateway.web.appkeys import SERVICES
from gateway.web.fixed import FixedAnswer, FixedParts, fixed_parts
from gateway.web.headers import forwarded_for, only_one
from gateway.web.middleware import JSON_CONTENT_TYPE, REQUEST_ID, encode_json, error_response
from gateway.web.schemas import VerifyAllowed
from gateway.web.sign import request_context

PREFIX = "/v1/verify"
# istr: looked up on every request, the name's case folded once (``multidict``).
PROFILE_HEADER = istr("X-Gateway-Profile")
METHOD_HEADER = istr("X-Original-Method")
URI_HEADER = istr("X-Original-URI")
READS = frozenset({"GET", "HEAD"})
# What ``recall`` read of a request it could not answer, for ``decide`` to go on from.
PRESENTED = web.RequestKey("verify_presented", tuple)
_PRINTABLE_BUT_HASH = bytes(b for b in range(0x20, 0x7F) if b != ord("#"))
log = logging.getLogger("gateway.verify")


def original_uri(request: web.Request, services: Services) -> str:
    """What to verify: the path tail (Envoy), or X-Original-URI from a trusted proxy (nginx) — never both.

    A client's own X-Original-URI must not choose what is verified while the proxy serves another
    path (Envoy forwards client headers it is told to): from an untrusted peer, or beside a path
    tail, it is refused.
    """
    uri = only_one(request, URI_HEADER)
    tail = request.raw_path[len(PREFIX) :]
    if uri is not None:
        if tail not in ("", "?") and not tail.startswith("?"):
            raise VerificationFailed("ambiguous-uri")
        if not services.addresses.is_trusted(request.remote):
            raise VerificationFailed("untrusted-original-uri")
        return uri
    if not tail.startswith("/"):
        raise InvalidInput("no URL to verify: send X-Original-URI or use /v1/verify as a path prefix")
    return tail


def require_read(request: web.Request) -> None:
    """Refuse unless the viewer's request is a read: GET or HEAD, exactly (methods are case-sensitive).

    Both methods count, each able only to refuse: Envoy's check request carries the viewer's method,
    nginx's auth subrequest names it in X-Original-Method. A header from an untrusted peer cannot
    widen anything, so it is not first asked to be trusted.
    """
    named = only_one(request, METHOD_HEADER)
    if request.method not in READS or (named is not None and named not in READS):
        raise VerificationFailed("method-not-allowed")


def path_and_query(uri: str) -> str:
    """The origin-form part of a presented URI: an absolute URI's scheme and host are dropped.

    Only printable ASCII is a request target; anything else is refused here
    rather than reaching a dialect's parser.
    """
    # Printable ASCII but '#', in one pass over the bytes (str.isprintable costs ~17 instructions a character).
    # A client never sends a fragment: one here is a parser differential waiting to happen.
    if not uri.isascii() or uri.encode("ascii").translate(None, _PRINTABLE_BUT_HASH):
        raise VerificationFailed("malformed")
    origin_form = uri if uri.startswith("/") else strip_authority(uri)  # the usual case: no scheme to match
    if not origin_form.startswith("/"):
        raise VerificationFailed("non-canonical-path")
    return origin_form


def ascii_cookies(request: web.Request) -> dict[str, str]:
    """The cookies a signed-cookie format could be in: every format's cookies are ASCII, and a stray
    byte (kept by aiohttp as a lone surrogate) in someone else's cookie must not reach a dialect."""
    if hdrs.COOKIE not in request.headers:  # the usual case: nothing to parse
        return {}
    return {name: value for name, value in request.cookies.items() if (name + value).isascii()}


def _profile(request: web.Request, services: Services) -> Profile:
    requested = only_one(request, PROFILE_HEADER)
    if requested is None:  # the usual case: the deployment's first profile, whoever asks
        return services.profiles.for_verification(None, False)
    return services.profiles.for_verification(requested, services.addresses.is_trusted(request.remote))


async def verify(request: web.Request) -> web.Response:
    """The route's handler (``/v1/verify`` and ``/v1/verify/{tail}``)."""
    return await answer(request, request.app[SERVICES])


async def answer(request: web.Request, services: Services) -> web.Response:
    """The answer to a verify request, with ``services`` given."""
    decided = await decide(request, services)
    return decided if isinstance(decided, web.Response) else allowed(decided)


async def decide(request: web.Request, services: Services) -> Accepted | web.Response:
    """The URL accepted, or the refusal's answer (logged and counted): ``gateway.web.direct`` calls it without the
    router, which is what sets ``request.app``, and writes an allow itself."""
    # What ``recall`` read of this request when it could not answer (the same reading: ``_presented``), or None.
    presented = request.get(PRESENTED)
    if presented is None:
        try:
            require_read(request)
            uri = original_uri(request, services)  # no URL at all: the caller's mistake (InvalidInput, a 400)
        except VerificationFailed as exc:
            return _denied(request, services, exc)
    try:
        redemption, profile = presented or _presentation(request, services, uri, _profile(request, services))
        accepted = await services.verifier.verify(redemption, profile)
    except (VerificationFailed, InvalidInput) as exc:
        return _denied(request, services, exc)
    services.metrics.verified()
    token, client_ip = accepted.token, redemption.client_ip
    if services.redemptions.first_from(token, client_ip):
        ctx = request_context(request, services, accepted.principal_id, client_ip=client_ip)  # resolved above
        await services.redemptions.record(
            ctx, token=token, kid=accepted.kid, url=redemption.url, expires=accepted.expires, profile=profile.name,
            now=redemption.now,
        )  # fmt: skip
    return accepted


def _presentation(request: web.Request, services: Services, uri: str, profile: Profile) -> tuple[Redemption, Profile]:
    """What to verify of ``uri`` by ``profile``: its URL, now, the viewer's address and the cookies."""
    client_ip = services.addresses.resolve(request.remote, forwarded_for(request))
    url = profile.base_url + path_and_query(uri)
    return Redemption(url, services.clock(), client_ip, ascii_cookies(request), profile.options), profile


def _denied(request: web.Request, services: Services, refusal: VerificationFailed | InvalidInput) -> web.Response:
    log.info("deny %s: %s", request.get(REQUEST_ID), refusal.reason)
    services.metrics.verified(refusal.reason)
    return error_response(403, "denied", "the signed URL is not valid")


def recall(request: web.Request, services: Services) -> Accepted | None:
    """``answer``'s allow for a remembered decision, decided without a coroutine; None whenever ``answer`` must
    decide (``gateway.web.direct`` tries this first, then ``decide``, and answers an allow with ``fixed_allow`` or
    ``allowed``).

    An HLS player asks about the same prefix token for every segment: once the decision is remembered, what is
    left is the checks, and the request read around them (issue 18). Here the request is read in one pass
    (``_presented``: the usual nginx and Envoy requests only) and the verifier's checks are ``verify``'s own
    (``Verifier.recall``). This only ever allows: a refusal, an unusual request, a decision not remembered, a
    first redemption to record — each returns None, with nothing counted or logged, and ``decide`` then decides
    from the start, so every refusal, its reason, log line and metric are its own
    (``tests/test_verify_direct.py`` compares the answers with ``answer`` alone).
    """
    try:
        presented = _presented(request, services)
    except VerificationFailed:
        return None
    if presented is None:
        return None
    redemption, profile = presented
    accepted = services.verifier.recall(redemption, profile)
    if accepted is None or services.redemptions.first_from(accepted.token, redemption.client_ip):
        request[PRESENTED] = presented  # ``decide`` goes on from this reading, not from the start
        return None
    services.verifier.decisions.hit()
    services.metrics.verified()
    return accepted


def _presented(request: web.Request, services: Services) -> tuple[Redemption, Profile] | None:
    """What ``answer`` verifies, for the usual request: nginx's (``X-Original-URI`` from a trusted proxy) or
    Envoy's (the path tail), naming no profile. None (or a raise) for anything ``answer`` would refuse, and for
    an unusual request (``answer`` reads that itself). The headers are read once each, in one place: the rules
    are ``require_read``'s, ``original_uri``'s and ``_profile``'s."""
    headers = request.headers
    named, uris = headers.getall(METHOD_HEADER, ()), headers.getall(URI_HEADER, ())
    if len(named) > 1 or len(uris) > 1 or PROFILE_HEADER in headers or request.method not in READS:
        return None
    if named and named[0] not in READS:
        return None
    tail, peer = request.raw_path[len(PREFIX) :], request.remote
    if uris:
        if (tail not in ("", "?") and not tail.startswith("?")) or not services.addresses.is_trusted(peer):
            return None
        uri = uris[0]
    elif tail.startswith("/"):
        uri = tail
    else:
        return None
    return _presentation(request, services, uri, services.profiles.for_verification(None, False))


def allowed(accepted: Accepted) -> web.Response:
    """The allow answer (200, the key id and principal in headers, the expiry in the body)."""
    body, headers, _ = _allow_parts(accepted.kid, accepted.principal_id, accepted.expires)
    return web.Response(body=body, headers=headers)  # the headers are copied: the cached ones stay as built


def fixed_allow(accepted: Accepted, request_id: str) -> FixedAnswer | None:
    """``allowed``'s bytes with ``request_id``, written below ``web.Response`` (``gateway.web.fixed``); None when
    they cannot be (a header value ``web.Response`` would spell otherwise)."""
    parts = _allow_parts(accepted.kid, accepted.principal_id, accepted.expires)[2]
    return None if parts is None else FixedAnswer(parts, request_id)


@functools.lru_cache(maxsize=1024)
def _allow_parts(kid: str, principal_id: str, expires: int) -> tuple[bytes, CIMultiDict[str], FixedParts | None]:
    """The allow answer's body and headers, as ``json_response`` writes them, and its fixed bytes: built once
    per token, not per segment (a player asks for the same answer every few seconds)."""
    body = encode_json(VerifyAllowed(status="allow", kid=kid, expires_at=expires))
    # In json_response's order too (its headers, then Content-Type): what `curl -i` shows in the README.
    headers = CIMultiDict(
        {"X-Gateway-Kid": kid, "X-Gateway-Principal": principal_id, hdrs.CONTENT_TYPE: JSON_CONTENT_TYPE}
    )
    return body, headers, fixed_parts(headers, body)
