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
from gateway.web import openapi, routes
from gateway.web.appkeys import OPENAPI, SERVICES
from gateway.web.middleware import error_middleware, request_id_middleware

MAX_BODY_BYTES = 256 * 1024
log = logging.getLogger("gateway.audit.checkpoints")
_CHECKPOINT_LOCK = "checkpoint"


def create_app(services: Services, *, close_services: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SERVICES] = services
    app[OPENAPI] = openapi.encode(openapi.document(routes.ROUTES, viewer_cookie=services.config.viewer.cookie))
    routes.register(app)  # every endpoint is a row of routes.ROUTES, the same rows the document is drawn from
    if close_services:
        app.cleanup_ctx.append(_close_on_shutdown)
    app.cleanup_ctx.append(_state_sync)
    app.cleanup_ctx.append(_checkpoints)
    return app


async def _state_sync(app: web.Application) -> AsyncIterator[None]:
    """Keep the state view current for as long as the app serves (docs/replicas.md)."""
    task = asyncio.create_task(app[SERVICES].state.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _checkpoints(app: web.Application) -> AsyncIterator[None]:
    """Signed checkpoints every N records or T seconds, idle or not, and a last one at shutdown."""
    services = app[SERVICES]
    task = asyncio.create_task(_checkpoint_loop(services))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(GatewayError, OSError):
        async with services.store.exclusive(_CHECKPOINT_LOCK) as leader:
            if leader:
                await services.checkpointer.write(services.clock())


async def _checkpoint_loop(services: Services) -> None:
    """Every second, whichever replica holds the checkpoint lock writes one if it is due: exactly one does."""
    while True:
        await asyncio.sleep(1)
        try:
            async with services.store.exclusive(_CHECKPOINT_LOCK) as leader:
                if leader:
                    await services.checkpointer.maybe(services.clock())
        except (GatewayError, OSError, BotoCoreError, ClientError) as exc:
            log.error("checkpoint failed (will retry): %s", exc)


async def _close_on_shutdown(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SERVICES].close()
