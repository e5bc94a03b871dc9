"""``create_app``: the whole HTTP service in one place: middlewares, routes, resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError

from gateway.errors import GatewayError
from gateway.services import Services
from gateway.web import media, meta, pages, sign, verify
from gateway.web.appkeys import SERVICES
from gateway.web.middleware import error_middleware, request_id_middleware

MAX_BODY_BYTES = 256 * 1024
log = logging.getLogger("gateway.audit.checkpoints")


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
    app.cleanup_ctx.append(_checkpoints)
    return app


async def _checkpoints(app: web.Application) -> AsyncIterator[None]:
    """Signed checkpoints every N records or T seconds, idle or not, and a last one at shutdown."""
    services = app[SERVICES]
    task = asyncio.create_task(_checkpoint_loop(services))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(GatewayError, OSError):
        await services.checkpointer.write(services.clock())


async def _checkpoint_loop(services: Services) -> None:
    while True:
        await asyncio.sleep(1)
        try:
            await services.checkpointer.maybe(services.clock())
        except (GatewayError, OSError, BotoCoreError, ClientError) as exc:
            log.error("checkpoint failed (will retry): %s", exc)


async def _close_on_shutdown(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SERVICES].close()
