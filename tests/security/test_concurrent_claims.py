"""Two replicas asked at once to claim one file: one item gets it, the other a 409.

The attack: on PostgreSQL the overlap check was a plain SELECT run before anything
serialised the writers, so two ``PUT /v1/media/{id}`` racing on two replicas each
saw the file unclaimed and both got 200. A public item then gave outsiders URLs for
a private item's file. Each scenario fires many conflicting pairs at once, one
request of each pair to each replica, so an unserialised check loses the race.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.model import Permission
from gateway.services import open_services
from gateway.web.app import create_app
from tests.support import Clock, World

PAIRS = 20
Body = dict[str, Any]


@pytest.fixture
async def replicas(  # type: ignore[no-untyped-def]
    any_store_config: Config, clock: Clock, aiohttp_client
) -> AsyncIterator[tuple[World, TestClient, TestClient]]:
    """Two gateways over one database, and a service 'web' that may write media on both."""
    config = any_store_config
    first = await open_services(config, clock)
    world = World(first, clock)
    await world.principal("web", Permission.MEDIA_WRITE)
    second = await open_services(config, clock)  # opened after: it starts knowing 'web'
    clients: list[TestClient] = []
    try:
        clients += [await aiohttp_client(create_app(s, close_services=False)) for s in (first, second)]
        yield world, clients[0], clients[1]
    finally:
        for client in clients:  # their state sync stops before the pools it reads close
            await client.close()
        await second.close()
        await first.close()


async def _put(client: TestClient, world: World, media_id: str, body: Body) -> tuple[str, int, Body]:
    full = {"owner": "alice", "workspace": "w1", "visibility": "private", "prefixes": {}, **body}
    response = await client.put(f"/v1/media/{media_id}", json=full, headers=world.auth("web"))
    return media_id, response.status, await response.json()


async def _race(
    replicas: tuple[World, TestClient, TestClient], pairs: list[tuple[Body, Body]]
) -> list[list[tuple[str, int, Body]]]:
    """Each pair's first body PUT to the first replica as ``a<i>``, its second to the other as ``b<i>``."""
    world, one, two = replicas
    calls = [(_put(one, world, f"a{i}", a), _put(two, world, f"b{i}", b)) for i, (a, b) in enumerate(pairs)]
    done = await asyncio.gather(*(call for pair in calls for call in pair))
    return [sorted(done[i : i + 2], key=lambda answer: answer[1]) for i in range(0, len(done), 2)]


def _refused(claimed: dict[str, str], winner: str) -> Body:
    """The 409 the loser gets: it names the winner's file or directory that it overlaps."""
    path = claimed[winner]
    return {"error": "conflict", "message": f"{path} of media item {winner!r} overlaps this item's paths or prefixes"}


async def _assert_one_wins(replicas: tuple[World, TestClient, TestClient], pairs: list[tuple[Body, Body]],
                           overlap: list[dict[str, str]]) -> None:  # fmt: skip
    world = replicas[0]
    for (won, loss), claimed in zip(await _race(replicas, pairs), overlap, strict=True):
        (winner, won_status, _), (loser, lost_status, refusal) = won, loss
        assert (won_status, lost_status) == (200, 409), (won, loss)
        assert refusal == _refused(claimed, winner)
        assert await world.services.store.media.get(loser) is None
        assert (await world.services.store.media.get(winner)) is not None


async def test_one_file_claimed_at_once_on_two_replicas(replicas: tuple[World, TestClient, TestClient]) -> None:
    same = [{"renditions": {"video": f"/same/{i}.mp4"}} for i in range(PAIRS)]
    overlap = [{f"a{i}": f"/same/{i}.mp4", f"b{i}": f"/same/{i}.mp4"} for i in range(PAIRS)]
    await _assert_one_wins(replicas, [(body, body) for body in same], overlap)


def _directory(i: int) -> Body:
    return {"renditions": {"video": f"/hls/{i}/a/master.m3u8"}, "prefixes": {"video": f"/hls/{i}/"}}


def _file_under(i: int) -> Body:
    return {"renditions": {"video": f"/hls/{i}/b/x.m3u8"}}


async def test_a_prefix_against_a_file_under_it_at_once(replicas: tuple[World, TestClient, TestClient]) -> None:
    pairs = [(_directory(i), _file_under(i)) for i in range(PAIRS)]
    # Whoever lost is told of what it overlaps: the directory, or the file under it.
    overlap = [{f"a{i}": f"/hls/{i}/", f"b{i}": f"/hls/{i}/b/x.m3u8"} for i in range(PAIRS)]
    await _assert_one_wins(replicas, pairs, overlap)


async def test_a_file_against_a_prefix_over_it_at_once(replicas: tuple[World, TestClient, TestClient]) -> None:
    pairs = [(_file_under(i), _directory(i)) for i in range(PAIRS)]
    overlap = [{f"a{i}": f"/hls/{i}/b/x.m3u8", f"b{i}": f"/hls/{i}/"} for i in range(PAIRS)]
    await _assert_one_wins(replicas, pairs, overlap)
