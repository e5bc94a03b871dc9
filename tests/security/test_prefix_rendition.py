"""A prefix token opens every rendition under its directory: a caller gets one only if it may have them all.

The attack (red team, 2026-11-25): renditions side by side in one directory
(``/media/lecture/master.m3u8`` and ``/media/lecture/poster.jpg``) share the
default prefix ``/media/lecture/``; a thumbnail-only principal asked for the
*thumbnail* with ``scope=prefix`` and the token opened the video.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from gateway.model import Permission, Rendition, Visibility
from tests.support import ADMIN, World

_SIDE_BY_SIDE = {Rendition.VIDEO: "/media/lecture/master.m3u8", Rendition.THUMBNAIL: "/media/lecture/poster.jpg"}


async def _sign(client: TestClient, world: World, pid: str, rendition: str, scope: str) -> tuple[int, dict]:
    body = {"media_id": "lecture", "rendition": rendition, "viewer": {"id": "bob"}, "scope": scope}
    response = await client.post("/v1/sign", json=body, headers=world.auth(pid))
    return response.status, await response.json()


async def _verify(client: TestClient, signed_url: str, path: str) -> int:
    query = urlsplit(signed_url).query
    response = await client.get("/v1/verify", headers={"X-Original-URI": f"{path}?{query}"})
    return response.status


async def test_a_thumbnail_only_principal_gets_no_prefix_token_that_opens_the_video(
    world: World, client: TestClient
) -> None:
    await world.principal("thumb", Permission.SIGN, Permission.SIGN_ON_BEHALF, renditions={Rendition.THUMBNAIL})
    await world.services.admin.put_media(ADMIN, "lecture", "alice", "w1", Visibility.PUBLIC, _SIDE_BY_SIDE,
                                         world.clock(), prefixes={Rendition.VIDEO: "/media/lecture/",
                                                                  Rendition.THUMBNAIL: "/media/lecture/"})  # fmt: skip
    status, refused = await _sign(client, world, "thumb", "thumbnail", "prefix")
    assert (status, refused["error"]) == (403, "forbidden")
    assert refused["message"] == (
        "the thumbnail directory '/media/lecture/' also holds the video, which this caller may not have: "
        "use scope 'path'"
    )
    [record] = [r for r in await world.services.store.audit.tail(3) if r.event.value == "url:denied"]
    assert (record.media_id, record.rendition, record.reason) == ("lecture", "thumbnail", "prefix-covers-rendition")
    status, signed = await _sign(client, world, "thumb", "thumbnail", "path")  # the file alone is still fine
    assert status == 200
    assert await _verify(client, signed["url"], "/media/lecture/poster.jpg") == 200
    assert await _verify(client, signed["url"], "/media/lecture/master.m3u8") == 403


async def test_a_principal_allowed_every_rendition_still_gets_the_shared_directory(
    world: World, client: TestClient
) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.services.admin.put_media(ADMIN, "lecture", "alice", "w1", Visibility.PUBLIC, _SIDE_BY_SIDE,
                                         world.clock(), prefixes={Rendition.VIDEO: "/media/lecture/",
                                                                  Rendition.THUMBNAIL: "/media/lecture/"})  # fmt: skip
    status, signed = await _sign(client, world, "web", "thumbnail", "prefix")
    assert status == 200 and "gw_pfx=/media/lecture/" in signed["url"]
    assert await _verify(client, signed["url"], "/media/lecture/seg-001.ts") == 200


async def test_a_video_only_principal_may_have_a_video_directory_the_thumbnail_is_not_in(
    world: World, client: TestClient
) -> None:
    await world.principal("video", Permission.SIGN, Permission.SIGN_ON_BEHALF, renditions={Rendition.VIDEO})
    paths = {Rendition.VIDEO: "/v/lecture/master.m3u8", Rendition.THUMBNAIL: "/t/lecture.jpg"}
    await world.services.admin.put_media(ADMIN, "lecture", "alice", "w1", Visibility.PUBLIC, paths, world.clock())
    status, signed = await _sign(client, world, "video", "video", "prefix")
    assert status == 200 and "gw_pfx=/v/lecture/" in signed["url"]
