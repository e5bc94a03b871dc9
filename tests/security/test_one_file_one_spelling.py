"""Two items cannot claim one file by spelling a reserved character differently (issue 17, finding 2).

Attack: a private thumbnail at ``/t/s,1.jpg`` and a public item at ``/t/s%2C1.jpg``: the gateway saw two paths,
the origin (nginx, S3) serves one file, and an outsider read the private thumbnail through the public item. The
same cause let a thumbnail prefix ``/v/tx,1/`` open a video registered as ``/v/tx%2C1/...``. Now an escape of a
character a path may hold literally is a second spelling (docs/paths.md, rule 3): respelled at registration,
refused at verification, so every comparison of paths compares files.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.errors import VerificationFailed
from gateway.model import Permission
from gateway.signing.dialects.base import Redemption
from tests.support import World

PUBLIC = {"owner": "mallory", "workspace": "w2", "visibility": "public"}
PRIVATE = {"owner": "alice", "workspace": "w1", "visibility": "private"}


async def _put(client: TestClient, world: World, media_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.put(f"/v1/media/{media_id}", json=body, headers=world.auth("web"))
    return response.status, await response.json()


@pytest.fixture
async def web(world: World) -> World:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    return world


@pytest.mark.parametrize(
    ("private", "public"),
    [
        ("/t/s,1.jpg", "/t/s%2C1.jpg"),
        ("/t/s%2C1.jpg", "/t/s,1.jpg"),  # either order
        ("/t/a:b@c.jpg", "/t/a%3Ab%40c.jpg"),
        ("/t/x!$&'()*+=.jpg", "/t/x%21%24%26%27%28%29%2A%2B%3D.jpg"),
        ("/t/x%2c.jpg", "/t/x,.jpg"),  # lower-case hex too
    ],
)
async def test_a_second_spelling_of_a_claimed_file_is_a_conflict(
    client: TestClient, web: World, private: str, public: str
) -> None:
    status, stored = await _put(client, web, "secret", renditions={"thumbnail": private}, **PRIVATE)
    assert status == 200 and "%2" not in stored["renditions"]["thumbnail"]
    status, refused = await _put(client, web, "bait", renditions={"thumbnail": public}, **PUBLIC)
    assert (status, refused["error"]) == (409, "conflict"), refused
    assert (
        refused["message"]
        == f"{stored['renditions']['thumbnail']} of media item 'secret' overlaps this item's paths or prefixes"
    )


async def test_a_prefix_cannot_cover_a_file_spelled_another_way(client: TestClient, web: World) -> None:
    status, _ = await _put(client, web, "tx1", renditions={"video": "/v/tx%2C1/master.m3u8"}, **PRIVATE)
    assert status == 200
    status, refused = await _put(
        client, web, "thumbs", renditions={"thumbnail": "/v/tx,1/poster.jpg"}, prefixes={"thumbnail": "/v/tx,1/"},
        **PUBLIC,
    )  # fmt: skip
    assert (status, refused["error"]) == (409, "conflict"), refused


async def test_the_stored_and_signed_spelling_is_the_literal_one(client: TestClient, web: World) -> None:
    status, stored = await _put(client, web, "m1", renditions={"video": "/v/m%2C1/a%3Ab.m3u8"}, **PUBLIC)
    assert (status, stored["renditions"]["video"]) == (200, "/v/m,1/a:b.m3u8")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "bob"}}
    signed = await (await client.post("/v1/sign", json=body, headers=web.auth("web"))).json()
    assert signed["url"].startswith("https://cdn.example.com/v/m,1/a:b.m3u8?gw_exp=")


async def test_the_escaped_spelling_of_a_signed_url_is_refused_at_verification(client: TestClient, web: World) -> None:
    """A URL signed for ``/t/s,1.jpg`` presented as ``/t/s%2C1.jpg`` (the same file): non-canonical, never compared."""
    await _put(client, web, "s1", renditions={"thumbnail": "/t/s,1.jpg"}, **PUBLIC)
    body = {"media_id": "s1", "rendition": "thumbnail", "viewer": {"id": "bob"}}
    url = (await (await client.post("/v1/sign", json=body, headers=web.auth("web"))).json())["url"]
    uri = url.removeprefix("https://cdn.example.com")
    assert (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status == 200
    escaped = uri.replace(",", "%2C", 1)
    assert (await client.get("/v1/verify", headers={"X-Original-URI": escaped})).status == 403
    with pytest.raises(VerificationFailed) as refused:
        redemption = Redemption("https://cdn.example.com" + escaped, web.clock(), "127.0.0.1")
        await web.services.verifier.verify(redemption, web.services.profiles.get(None))
    assert refused.value.reason == "non-canonical-path"
