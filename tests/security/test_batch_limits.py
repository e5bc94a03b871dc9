"""A batch pays for every item (issue 17, finding 5).

Attack: with ``principal_rate = 1, principal_burst = 5``, batches of 100 went through every few seconds (300 URLs in
15 s): a batch was charged at most the burst. Now a batch takes one token per item, and one larger than the burst
(which could never be saved up for) is refused at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.model import Permission, Visibility
from gateway.store.base import AuditQuery
from tests.support import World, init_data_dir

BURST = 5


@pytest.fixture
def config(tmp_path: Path) -> Config:
    init_data_dir(tmp_path)
    with (tmp_path / "gateway.toml").open("a") as toml:
        toml.write(f"\n[limits]\nprincipal_rate = 1\nprincipal_burst = {BURST}\nsync_every = 0.05\n")
    return load_config(tmp_path, environ={})


@pytest.fixture
async def web(world: World) -> World:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1", visibility=Visibility.PUBLIC)
    return world


async def _batch(client: TestClient, world: World, items: int) -> tuple[int, Any]:
    body = {"items": [{"media_id": "m1", "rendition": "thumbnail"}] * items, "viewer": {"id": "a"}}
    response = await client.post("/v1/sign/batch", json=body, headers=world.auth("web"))
    return response.status, await response.json()


async def test_a_batch_larger_than_the_burst_is_refused_whole(client: TestClient, web: World) -> None:
    status, body = await _batch(client, web, 100)
    assert (status, body) == (413, {
        "error": "payload_too_large",
        "message": "a batch of 100 items is more than this principal may ever be issued at once "
                   f"(limits.principal_burst = {BURST}): send at most {BURST} per request",
    })  # fmt: skip
    assert await web.services.store.audit.search(AuditQuery(event="url:issued")) == []  # nothing issued


async def test_batches_are_charged_one_token_per_item(client: TestClient, web: World) -> None:
    status, body = await _batch(client, web, 3)
    assert status == 200 and len(body["results"]) == 3
    status, body = await _batch(client, web, 3)  # 2 tokens left: the batch of 3 waits for one more
    assert (status, body["error"]) == (429, "rate_limited")
    status, _ = await _batch(client, web, 2)
    assert status == 200
    web.clock.advance(2.5)  # 2 tokens refilled (rate 1/s)
    assert (await _batch(client, web, 3))[0] == 429
    assert (await _batch(client, web, 2))[0] == 200


async def test_over_time_no_more_urls_than_the_rate_allows(client: TestClient, web: World) -> None:
    """The attack's shape: batches as large as allowed, as often as answered, for 15 s of the clock."""
    issued = 0
    for _ in range(150):
        status, body = await _batch(client, web, BURST)
        if status == 200:
            issued += len(body["results"])
        web.clock.advance(0.1)
    assert issued <= BURST + 15  # the burst, then one a second
    assert issued >= 15
