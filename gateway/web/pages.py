"""GET /m/{media_id}/{rendition}: the stable page URL, answered with a fresh signed URL.

Status codes: 401 without a valid viewer token; 503 when the pages principal
itself may not sign the rendition (a deployment fault, answered alike for every
item); 302 otherwise, never cached. ``[pages] scope = "prefix"`` redirects to a
token for the item's own directory (HLS/DASH segments) where it has one, and
``form = "path"`` makes that a path token (``/_t/<token>/v/ID/master.m3u8``).
Everything else is one 404, byte for byte the same whether the item is
private, missing or deleted, has no such rendition, or the id or rendition
name is not even well-formed: an outsider learns nothing about what exists.
The viewer is authenticated before the path is looked at, and issuance
authorises before it looks up the rendition's path.
"""

from __future__ import annotations

from aiohttp import web

from gateway.access.authz import principal_refusal
from gateway.access.identity import bearer
from gateway.config import Config
from gateway.errors import Forbidden, InvalidInput, NotFound, Unauthenticated, Unavailable
from gateway.model import Rendition, check_name
from gateway.signing.issuance import SignItem
from gateway.web.appkeys import SERVICES
from gateway.web.sign import request_context

# Refusals that mean "this viewer may not see it": answered as the one 404.
_HIDDEN = {"not-permitted", "media-deleted"}
# The same words as aiohttp's own 404 for an unknown path.
_NOT_FOUND = "Not Found"


def _viewer_token(request: web.Request, cookie: str) -> str:
    if "Authorization" in request.headers:
        return bearer(request.headers["Authorization"])
    token = request.cookies.get(cookie)
    if not token:
        raise Unauthenticated("sign in first: no viewer token in Authorization or cookie")
    return token


def _item(request: web.Request, config: Config) -> SignItem:
    """What the deployment hands out (``[pages] scope`` and ``form``): with scope "prefix", the item's own
    directory when it has one the viewer may have all of, else the file alone."""
    try:
        media_id = check_name(request.match_info["media_id"], "media_id")
        rendition = Rendition(request.match_info["rendition"])
    except (InvalidInput, ValueError):
        raise NotFound(_NOT_FOUND) from None
    prefix = config.pages_scope == "prefix"
    return SignItem(media_id, rendition, prefix=prefix, path_token=config.pages_form == "path", or_file=prefix)


async def page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    viewer = await services.identity.viewer(_viewer_token(request, services.config.viewer.cookie), services.clock())
    item = _item(request, services.config)
    principal = services.state.view.principals.get(services.config.pages_principal)
    refusal = principal_refusal(principal, item.rendition) if principal else "missing"
    if principal is None or refusal is not None:
        # Checked before the item is looked up: an answer that differed by item would tell outsiders what exists.
        raise Unavailable(f"the pages principal {services.config.pages_principal!r} cannot sign ({refusal})")
    ctx = request_context(request, services, principal.id)
    services.limits.redirect(ctx.client_ip, services.clock())  # per client network, in memory (gateway.limits)
    [outcome] = await services.issuer.issue(principal, viewer, [item], ctx, services.clock())
    error = outcome.error
    if isinstance(error, NotFound) or (isinstance(error, Forbidden) and error.reason in _HIDDEN):
        raise NotFound(_NOT_FOUND)
    if error is not None:
        raise error
    assert outcome.issued is not None
    return web.Response(
        status=302,
        headers={"Location": outcome.issued.url, "Cache-Control": "no-store"},
    )
