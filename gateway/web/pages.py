"""GET /m/{media_id}/{rendition}: the stable page URL, answered with a fresh signed URL.

Status codes: 401 without a valid viewer token; 404 when the item does not
exist *or* this viewer may not see it (a private item's existence is not
revealed); 403 only when the pages principal itself may not sign the
rendition; 302 otherwise, never cached.
"""

from __future__ import annotations

from aiohttp import web

from gateway.access.identity import bearer
from gateway.errors import Forbidden, NotFound, StoreUnavailable, Unauthenticated
from gateway.model import Rendition
from gateway.signing.issuance import SignItem
from gateway.web.appkeys import SERVICES
from gateway.web.sign import request_context

# Refusals that mean "this viewer may not see it": answered as 404.
_HIDDEN = {"not-permitted", "media-deleted"}


def _viewer_token(request: web.Request, cookie: str) -> str:
    if "Authorization" in request.headers:
        return bearer(request.headers["Authorization"])
    token = request.cookies.get(cookie)
    if not token:
        raise Unauthenticated("sign in first: no viewer token in Authorization or cookie")
    return token


async def page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        rendition = Rendition(request.match_info["rendition"])
    except ValueError:
        raise NotFound("no such rendition") from None
    viewer = await services.identity.viewer(_viewer_token(request, services.config.viewer.cookie), services.clock())
    principal = await services.store.principals.get(services.config.pages_principal)
    if principal is None:
        raise StoreUnavailable(f"pages principal {services.config.pages_principal!r} does not exist")
    item = SignItem(media_id=request.match_info["media_id"], rendition=rendition)
    ctx = request_context(request, services, principal.id)
    [outcome] = await services.issuer.issue(principal, viewer, [item], ctx, services.clock())
    if outcome.error is not None:
        if isinstance(outcome.error, Forbidden) and outcome.error.reason in _HIDDEN:
            raise NotFound(f"no media item {item.media_id!r}")
        raise outcome.error
    assert outcome.issued is not None
    return web.Response(
        status=302,
        headers={"Location": outcome.issued.url, "Cache-Control": "no-store"},
    )
