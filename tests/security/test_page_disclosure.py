"""The page URL tells an outsider nothing: private, missing, deleted, no such rendition, a rendition name that
does not exist, an id that is not even well-formed — one answer, byte for byte. Only a viewer who may see the
item gets more (its redirect)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.model import Rendition, Visibility
from gateway.services import Services
from gateway.store.base import AuditQuery
from gateway.web.app import create_app
from tests.http_support import GatewayTestServer
from tests.support import ADMIN, World

PROBES = {
    "private": "/m/secret/video",
    "private-no-such-rendition": "/m/clip/thumbnail",
    "missing": "/m/nope/video",
    "deleted": "/m/gone/video",
    "unknown-rendition-name": "/m/secret/poster",
    "malformed-id": "/m/bad%20id/video",
    "escape-in-id": "/m/a%1B%5B2J%1B%5BHforged/video",
    "over-long-id": "/m/" + "a" * 129 + "/video",
}


@pytest.fixture
async def live(services: Services, aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(GatewayTestServer(create_app(services, close_services=False)))


@pytest.fixture
async def catalogue(world: World) -> World:
    await world.media("secret", owner="alice", visibility=Visibility.PRIVATE)
    await world.media("gone", owner="alice")
    await world.services.admin.delete_media(ADMIN, "gone", world.clock())
    paths = {Rendition.VIDEO: "/v/clip/master.m3u8"}  # no thumbnail
    await world.services.admin.put_media(ADMIN, "clip", "alice", "w1", Visibility.PRIVATE, paths, world.clock())
    return world


async def _answer(client: TestClient, path: str, token: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": "probe"}
    response = await client.get(path, headers=headers, allow_redirects=False)
    kept = {k: v for k, v in response.headers.items() if k != "Date"}
    return response.status, kept, await response.read()


async def test_an_outsider_gets_one_identical_answer_for_everything(live: TestClient, catalogue: World) -> None:
    mallory = catalogue.viewer_token("mallory", "w9")
    answers = {name: await _answer(live, path, mallory) for name, path in PROBES.items()}
    reference = answers["missing"]
    assert reference[0] == 404
    assert reference[2] == b'{"error":"not_found","message":"Not Found"}'
    assert {name: answer for name, answer in answers.items() if answer != reference} == {}


async def test_the_answer_is_the_same_as_for_a_path_that_is_no_route(live: TestClient, catalogue: World) -> None:
    mallory = catalogue.viewer_token("mallory")
    status, _, body = await _answer(live, "/m/secret/video", mallory)
    no_route = await live.get("/m/secret/video/extra", headers={"X-Request-Id": "probe"})
    assert (status, body) == (no_route.status, await no_route.read())


async def test_the_owner_gets_the_redirect_and_the_same_404_for_what_is_not_there(
    live: TestClient, catalogue: World
) -> None:
    alice = catalogue.viewer_token("alice")
    status, headers, _ = await _answer(live, "/m/secret/video", alice)
    assert status == 302 and headers["Location"].startswith("https://cdn.example.com/v/secret/master.m3u8?")
    assert await _answer(live, "/m/clip/thumbnail", alice) == await _answer(live, "/m/nope/video", alice)


async def test_refusals_are_logged_with_the_reason_authorisation_gave(live: TestClient, catalogue: World) -> None:
    """Authorisation runs before the rendition is looked up: the log says 'not-permitted', not 'not_found'."""
    await _answer(live, "/m/clip/thumbnail", catalogue.viewer_token("mallory"))
    [record] = await catalogue.services.store.audit.search(AuditQuery(event="url:denied"))
    assert (record.media_id, record.rendition, record.reason) == ("clip", "thumbnail", "not-permitted")


async def test_malformed_ids_never_reach_the_audit_log(live: TestClient, catalogue: World) -> None:
    mallory = catalogue.viewer_token("mallory")
    for name in ("malformed-id", "escape-in-id", "over-long-id", "unknown-rendition-name"):
        await _answer(live, PROBES[name], mallory)
    assert await catalogue.services.store.audit.search(AuditQuery(event="url:denied")) == []


async def test_without_a_token_everything_is_401(live: TestClient, catalogue: World) -> None:
    statuses = {name: (await live.get(path, allow_redirects=False)).status for name, path in PROBES.items()}
    assert set(statuses.values()) == {401}


async def test_a_missing_id_takes_the_private_items_path_no_store_read_after_the_first(
    live: TestClient, catalogue: World
) -> None:
    """Timing: a miss used to read the store every time while the private item came from memory
    (benchmarks/page_timing.py measures the classifier; here, the reads that made the difference)."""
    mallory = catalogue.viewer_token("mallory", "w9")
    media = catalogue.services.state.media
    media.clear()
    before = (media.misses, media.hits)
    for _ in range(5):
        for path in ("/m/secret/video", "/m/nope/video"):
            assert (await _answer(live, path, mallory))[0] == 404
    assert (media.misses - before[0], media.hits - before[1]) == (2, 8)  # one store read each, then memory
