"""Page-URL redirects are limited per client network, never through the pages principal's own bucket.

The attack (red team, 2026-11-25): with ``[limits]`` on, the pages principal —
one principal signing for every viewer — was charged per redirect, even for
404s. A viewer with access to nothing, from a few networks, emptied its
bucket and every other viewer got 429 on every page URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.model import Visibility
from gateway.services import open_services
from gateway.web.app import create_app
from tests.support import Clock, World

LIMITS = """
[limits]
principal_rate = 1
principal_burst = 3
key_rate = 1
key_burst = 3
redirect_rate = 1
redirect_burst = 5
"""


@pytest.fixture
async def limited(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    with (config.data_dir / "gateway.toml").open("a") as toml:
        toml.write(LIMITS)
    services = await open_services(load_config(config.data_dir, environ={}), clock=clock)
    world = World(services, clock)
    await world.media("intro", owner="bob", visibility=Visibility.PRIVATE)
    client = await aiohttp_client(create_app(services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown writes the limit trips it holds: before the services close
    await services.close()


async def _page(client: TestClient, world: World, path: str, viewer: str, network: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {world.viewer_token(viewer)}", "X-Forwarded-For": network}
    response = await client.get(path, headers=headers, allow_redirects=False)
    body = await response.json() if response.status >= 400 else {}
    return response.status, body.get("message", "")


async def test_one_viewer_exhausting_its_networks_does_not_lock_out_another_viewer(
    limited: tuple[World, TestClient],
) -> None:
    world, client = limited
    for network in ("198.51.100.7", "192.0.2.7", "203.0.113.7"):
        statuses = [(await _page(client, world, "/m/nothing-here/video", "mallory", network))[0] for _ in range(7)]
        assert statuses == [404] * 5 + [429] * 2  # her network's own bucket, and only hers
    assert (await _page(client, world, "/m/intro/video", "bob", "100.64.0.9"))[0] == 302
    for _ in range(4):
        assert (await _page(client, world, "/m/intro/video", "bob", "100.64.0.9"))[0] == 302
    status, message = await _page(client, world, "/m/intro/video", "bob", "100.64.0.9")
    assert status == 429 and "network" in message
    await world.services.limits.flush(world.services.batcher, world.clock())
    trips = [r for r in await world.services.store.audit.tail(50) if r.event.value == "limit:exceeded"]
    assert trips and all(r.kid is None for r in trips)  # the networks' buckets, not the pages principal's key
