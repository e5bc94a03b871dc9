"""``GET``/``HEAD /v1/verify`` handed straight from the connection to its handler: no router, no middleware chain.

Why: an HLS player asks ``/v1/verify`` about the same prefix token for every segment. Once the decision is
remembered the handler costs ≈ 10 µs, and aiohttp's ``Application._handle`` around it (the router's resolve,
a match info, the middleware chain rebuilt from partials, the current-app fix-up) cost a hello-world request
nothing but cost every verify (issue 18: the target is 0.75 of a hello-world's rate). ``Runner`` (the one
place this is wired: ``gateway.web.server``) puts ``direct_verify`` in front of ``Application._handle``.

The answers are the ordinary path's, byte for byte (``tests/test_verify_direct.py`` sends each request both
ways and compares):

- ``request_middleware``'s two steps run around the handler, the same functions (request id, error bodies,
  ``X-Request-Id``);
- ``tls.require_client_cert`` naming ``verify`` is enforced as ``client_cert_middleware`` enforces it;
- only requests the router would give to the verify routes are taken: a raw path of ``/v1/verify`` exactly,
  or starting ``/v1/verify/`` or ``/v1/verify?`` (aiohttp neither normalises dot segments nor decodes
  before the prefix, so the router's match is the same route), methods GET and HEAD;
- the rest goes the ordinary way: every other path; every other method (the handler refuses them all, so
  they are rare, and a ``CONNECT`` target is not a path to the router); a request with ``Expect``, which
  ``Application._handle`` answers before any middleware;
- the access log, when on, names the route: the request is then given the match info the router gives it;
- a remembered decision is decided by ``verify.recall`` without a coroutine (the same checks; anything it
  cannot allow goes to ``verify.decide``, which decides from the start: ``tests/test_verify_recall.py``), and
  over HTTP/1.1 an allow is written in one transport write (``gateway.web.fixed``: the same bytes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from gateway.web import verify
from gateway.web.appkeys import SERVICES
from gateway.web.clientcert import require_certificate, route_group
from gateway.web.middleware import error_answer, identify

RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
_AFTER_PREFIX = len(verify.PREFIX)


def takes(request: web.BaseRequest) -> bool:
    """Whether ``direct_verify`` answers this request itself (the router would send it to ``verify``)."""
    path = request.raw_path
    return (
        path.startswith(verify.PREFIX)
        and (len(path) == _AFTER_PREFIX or path[_AFTER_PREFIX] in "/?")
        and request.method in verify.READS
        and hdrs.EXPECT not in request.headers
    )


def direct_verify(app: web.Application, ordinary: RequestHandler, *, access_log: bool) -> RequestHandler:
    """``ordinary`` (``Application._handle``), with the requests ``takes`` accepts answered by ``verify`` directly.

    ``access_log``: an access logger may read the request's match info (``gateway.observe.logs`` names the
    route), so each request is given the router's, as ``Application._handle`` would (off: not needed).
    """
    services = app[SERVICES]
    certificate = route_group(verify.PREFIX) in services.config.tls_require_client_cert
    router = app.router
    # A fixed answer is written below web.Response, so no on_response_prepare hook would see it: none is
    # connected (the app is frozen by now, so none can be later), and should one ever be, answers are ordinary.
    fixed = not app.on_response_prepare

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if not takes(request):
            return await ordinary(request)
        assert isinstance(request, web.Request)  # the app's request factory makes them
        if access_log:
            match_info = await router.resolve(request)
            match_info.add_app(app)
            match_info.freeze()
            request._match_info = match_info  # what Application._handle sets (aiohttp 3.14)
        # request_middleware's own two steps, inline: one coroutine less per request.
        rid = identify(request)
        try:
            if certificate:
                require_certificate(request)
            # A remembered decision is decided without a coroutine; anything else, by the full path.
            decided = verify.recall(request, services) or await verify.decide(request, services)
            if isinstance(decided, web.Response):  # refused
                response = decided
            elif fixed and request.version == HttpVersion11 and (answer := verify.fixed_allow(decided, rid)):
                return answer  # the allow's bytes ready but for the id and date
            else:
                response = verify.allowed(decided)
        except Exception as exc:
            response = error_answer(exc, rid)
        response.headers["X-Request-Id"] = rid
        return response

    return handle
