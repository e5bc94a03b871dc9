"""``create_app``: the whole HTTP service in one place: middlewares, routes, resources."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.services import Services
from gateway.web import media, meta, pages, sign, verify
from gateway.web.keys import SERVICES
from gateway.web.middleware import error_middleware, request_id_middleware

MAX_BODY_BYTES = 256 * 1024


def create_app(services: Services, *, close_services: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SERVICES] = services
    app.router.add_post("/v1/sign", sign.sign)
    app.router.add_post("/v1/sign/batch", sign.sign_batch)
    app.router.add_get("/m/{media_id}/{rendition}", pages.page)
    app.router.add_route("*", verify.PREFIX, verify.verify)
    app.router.add_route("*", verify.PREFIX + "/{tail:.*}", verify.verify)
    app.router.add_put("/v1/media/{media_id}", media.put_media)
    app.router.add_get("/v1/media/{media_id}", media.get_media)
    app.router.add_delete("/v1/media/{media_id}", media.delete_media)
    app.router.add_get("/healthz", meta.healthz)
    app.router.add_get("/readyz", meta.readyz)
    app.router.add_get("/.well-known/jwks.json", meta.jwks)
    if close_services:
        app.cleanup_ctx.append(_close_on_shutdown)
    return app


async def _close_on_shutdown(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SERVICES].close()
