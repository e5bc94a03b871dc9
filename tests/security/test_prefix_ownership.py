"""A prefix token covers a directory: only one its item owns alone, never a shared one.

The attack: ``scope=prefix`` for an item whose thumbnail is ``/t/a.jpg`` used to
sign the directory ``/t/``, every item's thumbnails, private ones included; the
same for videos kept side by side in one directory.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.model import Permission, Rendition, Visibility
from tests.support import ADMIN, World


async def _put(client: TestClient, world: World, media_id: str, **body: object) -> tuple[int, dict]:
    response = await client.put(f"/v1/media/{media_id}", json={"owner": "alice", "workspace": "w1",
                                "visibility": "unlisted", **body}, headers=world.auth("web"))  # fmt: skip
    return response.status, await response.json()


async def _sign_prefix(client: TestClient, world: World, media_id: str, rendition: str) -> tuple[int, dict]:
    body = {"media_id": media_id, "rendition": rendition, "viewer": {"id": "bob"}, "scope": "prefix"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    return response.status, await response.json()


async def test_a_prefix_token_over_a_shared_thumbnail_directory_is_refused(world: World, client: TestClient) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    status, item = await _put(client, world, "a", renditions={"video": "/v/a/master.m3u8", "thumbnail": "/t/a.jpg"})
    assert (status, item["prefixes"]) == (200, {"video": "/v/a/"})
    await world.services.admin.put_media(ADMIN, "secret", "carol", "w9", Visibility.PRIVATE,
                                         {Rendition.THUMBNAIL: "/t/secret.jpg"}, world.clock())  # fmt: skip
    status, refused = await _sign_prefix(client, world, "a", "thumbnail")
    assert (status, refused["error"]) == (403, "forbidden")
    assert refused["message"] == "media item 'a' has no thumbnail directory of its own: use scope 'path'"
    [record] = [r for r in await world.services.store.audit.tail(3) if r.event.value == "url:denied"]
    assert (record.media_id, record.reason) == ("a", "no-prefix")
    status, signed = await _sign_prefix(client, world, "a", "video")  # its own directory: fine
    assert status == 200 and "gw_pfx=/v/a/" in signed["url"]


async def test_videos_side_by_side_in_one_directory_get_no_prefix(world: World, client: TestClient) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    for media_id in ("x", "y"):
        status, item = await _put(client, world, media_id, renditions={"video": f"/media/{media_id}.mp4"})
        assert (status, item["prefixes"]) == (200, {})
    status, refused = await _sign_prefix(client, world, "x", "video")
    assert (status, refused["error"]) == (403, "forbidden")


async def test_an_item_may_not_be_put_inside_another_items_directory(world: World, client: TestClient) -> None:
    await world.principal("web", Permission.SIGN, Permission.MEDIA_WRITE)
    await _put(client, world, "a", renditions={"video": "/v/a/master.m3u8"})
    status, refused = await _put(client, world, "b", renditions={"video": "/v/a/hidden.m3u8"})
    assert (status, refused["error"]) == (409, "conflict")
    assert refused["message"] == "/v/a/ of media item 'a' overlaps this item's paths or prefixes"


async def test_an_explicit_prefix_must_sit_above_its_path_and_cover_nobody_else(
    world: World, client: TestClient
) -> None:
    await world.principal("web", Permission.SIGN, Permission.MEDIA_WRITE)
    await _put(client, world, "a", renditions={"video": "/v/a/master.m3u8"})
    status, refused = await _put(client, world, "b", renditions={"video": "/v/b/x.m3u8"}, prefixes={"video": "/v/"})
    assert (status, refused["message"]) == (409, "/v/a/ of media item 'a' overlaps this item's paths or prefixes")
    status, refused = await _put(client, world, "b", renditions={"video": "/v/b/x.m3u8"}, prefixes={"video": "/w/"})
    assert (status, refused["message"]) == (400, "prefix /w/ for video must be a directory above /v/b/x.m3u8, not /")
    status, refused = await _put(client, world, "b", renditions={"video": "/v/b/x.m3u8"}, prefixes={"video": "/"})
    assert status == 400
    status, item = await _put(client, world, "b", renditions={"video": "/hls/b-1080/x.m3u8"},
                              prefixes={"video": "/hls/b-1080/"})  # fmt: skip
    assert (status, item["prefixes"]) == (200, {"video": "/hls/b-1080/"})
