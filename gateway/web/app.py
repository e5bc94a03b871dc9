"""``create_app``: the whole HTTP service in one place: middlewares, routes, resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.audit.publisher import publish_forever, publish_last
from gateway.errors import GatewayError
from gateway.services import Services
from gateway.web import openapi, routes
from gateway.web.appkeys import OPENAPI, SERVICES
from gateway.web.clientcert import client_cert_middleware
from gateway.web.middleware import request_middleware

MAX_BODY_BYTES = 256 * 1024
log = logging.getLogger("gateway.audit.checkpoints")


def create_app(services: Services, *, close_services: bool = True, checkpoints: bool = True) -> web.Application:
    """The service. ``checkpoints=False`` when a separate ``gatewayctl audit checkpoint --follow`` writes them."""
    middlewares: list[Middleware] = [request_middleware]
    if services.config.tls_require_client_cert:  # after request_middleware: its refusal is the JSON 403
        middlewares.append(client_cert_middleware(services.config.tls_require_client_cert))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[SERVICES] = services
    app[OPENAPI] = openapi.encode(openapi.document(routes.ROUTES, viewer_cookie=services.config.viewer.cookie))
    routes.register(app)  # every endpoint is a row of routes.ROUTES, the same rows the document is drawn from
    if close_services:
        app.cleanup_ctx.append(_close_on_shutdown)
    app.cleanup_ctx.append(_state_sync)
    if checkpoints:
        app.cleanup_ctx.append(_checkpoints)
    app.cleanup_ctx.append(_operations)  # last in, first out: stopped before the last checkpoint is written
    return app


async def _state_sync(app: web.Application) -> AsyncIterator[None]:
    """Keep the state view current for as long as the app serves (docs/replicas.md)."""
    task = asyncio.create_task(app[SERVICES].state.run())
    yield
    await _stopped([task], "the state sync")


async def _checkpoints(app: web.Application) -> AsyncIterator[None]:
    """Signed checkpoints every N records or T seconds, idle or not, and a last one at shutdown."""
    services = app[SERVICES]
    services.checkpointer.remember_appends()  # segments exported from what this process wrote, not read back
    task = asyncio.create_task(publish_forever(services.store, services.checkpointer, services.clock))
    yield
    await _stopped([task], "the checkpoint writer")

    async def last_group_then_checkpoint() -> None:
        await services.batcher.close()  # the last audit group is committed before the last checkpoint seals it
        await publish_last(services.store, services.checkpointer, services.clock)

    await _given_up_after(LAST_WRITE_SECONDS, "the last audit group and checkpoint", last_group_then_checkpoint())


async def _operations(app: web.Application) -> AsyncIterator[None]:
    """Abuse-limit reconciliation, webhook delivery, suspicious-use detection, metric samples (docs/operations.md).

    At shutdown each stops, then what it holds in memory is written: limit trips and the alerts detected
    from the records committed so far (a redemption still in its grace period is not judged).
    """
    services = app[SERVICES]
    config, store, clock = services.config, services.store, services.clock
    jobs = [services.watcher.run(), services.sampler.run(), services.behind.run()]
    if services.limits.rules.any:
        jobs.append(services.limits.run(store, services.batcher, clock, config.limit_sync_every))
    if services.outbox.enabled:
        # Before serving: a first start sets the event cursor here, so no change made from now on is missed.
        with contextlib.suppress(GatewayError):
            await services.outbox.feed(clock())
        jobs.append(services.outbox.run())
    tasks = [asyncio.create_task(job) for job in jobs]
    yield
    await _stopped(tasks, "the background jobs")
    await _given_up_after(LAST_WRITE_SECONDS, "the raw log and redemptions queued", services.behind.close())
    await _given_up_after(LAST_WRITE_SECONDS, "the limit trips held", services.limits.flush(services.batcher, clock()))
    await _given_up_after(LAST_WRITE_SECONDS, "the last detection round", services.watcher.step(clock()))


# Each write at shutdown waits at most this long: a replica whose database is gone must still exit.
LAST_WRITE_SECONDS = 10.0


async def _stopped(tasks: list[asyncio.Task[None]], what: str) -> None:
    """Cancel and wait, for a bounded time: a task that swallows its cancellation must not hold the exit."""
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=LAST_WRITE_SECONDS)
    if pending:
        log.error("shutdown: %s did not stop in %g s: left behind", what, LAST_WRITE_SECONDS)


async def _given_up_after(seconds: float, what: str, work: Awaitable[object]) -> None:
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        log.error("shutdown: %s not written in %g s (is the database reachable?): given up", what, seconds)
    except GatewayError as exc:
        log.error("shutdown: %s not written: %s", what, exc)


async def _close_on_shutdown(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SERVICES].close()
