"""PUT/GET/DELETE /v1/media/{id}: the catalogue, for backends with media:write."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import Forbidden, InvalidInput, NotFound
from gateway.model import MediaItem, Permission, Principal, Rendition, Visibility
from gateway.services import Services
from gateway.web import parsing
from gateway.web.appkeys import SERVICES
from gateway.web.sign import authenticated_principal, request_context


def media_json(item: MediaItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "owner": item.owner,
        "workspace": item.workspace,
        "visibility": item.visibility.value,
        "renditions": {r.value: p for r, p in sorted(item.paths.items())},
        "updated_at": item.updated_at,
    }


async def _writer(request: web.Request, services: Services) -> Principal:
    principal = await authenticated_principal(request, services)
    if not principal.has(Permission.MEDIA_WRITE):
        raise Forbidden("media:write permission required")
    return principal


def _paths(body: dict[str, Any]) -> dict[Rendition, str]:
    raw = body.get("renditions")
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput("renditions must be an object of rendition -> storage path")
    paths: dict[Rendition, str] = {}
    for name, path in raw.items():
        if not isinstance(path, str):
            raise InvalidInput(f"renditions.{name} must be a path string")
        paths[parsing.choice(Rendition, name, "rendition")] = path
    return paths


async def put_media(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await _writer(request, services)
    body = await parsing.json_object(request)
    item = await services.admin.put_media(
        request_context(request, services, principal.id),
        request.match_info["media_id"],
        owner=parsing.required_string(body, "owner"),
        workspace=parsing.required_string(body, "workspace"),
        visibility=parsing.choice(Visibility, body.get("visibility"), "visibility"),
        paths=_paths(body),
        now=services.clock(),
    )
    return web.json_response(media_json(item))


async def get_media(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await _writer(request, services)
    item = await services.store.media.get(request.match_info["media_id"])
    if item is None or item.deleted:
        raise NotFound(f"no media item {request.match_info['media_id']!r}")
    return web.json_response(media_json(item))


async def delete_media(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await _writer(request, services)
    ctx = request_context(request, services, principal.id)
    await services.admin.delete_media(ctx, request.match_info["media_id"], services.clock())
    return web.Response(status=204)
