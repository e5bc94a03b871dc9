"""PUT/GET/DELETE /v1/media/{id}: the catalogue, for backends with media:write."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.errors import Forbidden, NotFound
from gateway.model import MediaItem, Permission, Principal, check_name
from gateway.services import Services
from gateway.web import parsing, schemas
from gateway.web.appkeys import SERVICES
from gateway.web.middleware import json_response
from gateway.web.sign import authenticated_principal, request_context


def media_body(item: MediaItem) -> schemas.Media:
    return schemas.Media(
        id=item.id,
        owner=item.owner,
        workspace=item.workspace,
        visibility=item.visibility,
        renditions=dict(sorted(item.paths.items())),
        prefixes=dict(sorted(item.prefixes.items())),
        updated_at=item.updated_at,
        links_revoked_at=item.links_revoked_at,
    )


def media_json(item: MediaItem) -> dict[str, Any]:
    """The same body as plain data (the CLI prints it)."""
    body: dict[str, Any] = msgspec.to_builtins(media_body(item))
    return body


def _media_id(request: web.Request) -> str:
    """Checked before anything else, so a control character or an escape never reaches the store or the log."""
    return check_name(request.match_info["media_id"], "media_id")


async def _writer(request: web.Request, services: Services) -> Principal:
    principal = await authenticated_principal(request, services)
    if not principal.has(Permission.MEDIA_WRITE):
        raise Forbidden("media:write permission required")
    return principal


async def put_media(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await _writer(request, services)
    media_id = _media_id(request)
    body = await parsing.body(request, schemas.MediaRequest)
    item = await services.admin.put_media(
        request_context(request, services, principal.id),
        media_id,
        owner=body.owner,
        workspace=body.workspace,
        visibility=body.visibility,
        paths=body.renditions,
        now=services.clock(),
        prefixes=body.prefixes,
    )
    return json_response(media_body(item))


async def revoke_links(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await _writer(request, services)
    media_id = _media_id(request)
    body = await parsing.body(request, schemas.RevokeLinksRequest)
    ctx = request_context(request, services, principal.id)
    item = await services.admin.revoke_links(ctx, media_id, body.reason, services.clock())
    return json_response(media_body(item))


async def get_media(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await _writer(request, services)
    media_id = _media_id(request)
    item = await services.store.media.get(media_id)
    if item is None or item.deleted:
        raise NotFound(f"no media item {media_id!r}")
    return json_response(media_body(item))


async def delete_media(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await _writer(request, services)
    media_id = _media_id(request)
    ctx = request_context(request, services, principal.id)
    await services.admin.delete_media(ctx, media_id, services.clock())
    return web.Response(status=204)
