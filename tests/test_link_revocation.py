"""Revoking an item's links: URLs issued before stop verifying at once; URLs issued after work (issue 9)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.model import Permission, Rendition, Visibility
from tests.support import ADMIN, World


async def _signed(client: TestClient, world: World, **extra: object) -> str:
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "bob"}, "scope": "prefix", **extra}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 200, await response.text()
    return str((await response.json())["url"]).removeprefix("https://cdn.example.com")


async def _verify(client: TestClient, uri: str) -> int:
    return (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status


async def _setup(world: World) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    await world.media("m1", visibility=Visibility.UNLISTED)


async def test_revoking_links_over_http_refuses_old_urls_and_keeps_new_ones(world: World, client: TestClient) -> None:
    await _setup(world)
    old = await _signed(client, world)
    segment = old.replace("master.m3u8", "seg7.ts")
    assert await _verify(client, segment) == 200
    world.clock.advance(5)
    response = await client.post("/v1/media/m1/revoke-links", json={"reason": "playlist leaked"},
                                 headers=world.auth("web"))  # fmt: skip
    assert (response.status, (await response.json())["links_revoked_at"]) == (200, world.clock())
    assert await _verify(client, segment) == 403
    assert await _verify(client, old) == 403
    world.clock.advance(1)
    new = await _signed(client, world)
    assert await _verify(client, new.replace("master.m3u8", "seg7.ts")) == 200
    events = [(r.event.value, r.reason) for r in await world.services.store.audit.tail(3)]
    assert ("media:links_revoked", "playlist leaked") in events


async def test_narrowing_unlisted_to_private_revokes_the_links_an_outsider_holds(
    world: World, client: TestClient
) -> None:
    await _setup(world)
    outsider = await _signed(client, world)  # bob is nobody to the item: allowed only because it was unlisted
    world.clock.advance(5)
    paths = {r: p for r, p in (await world.services.store.media.get("m1")).paths.items()}  # type: ignore[union-attr]
    item = await world.services.admin.put_media(ADMIN, "m1", "alice", "w1", Visibility.PRIVATE, paths, world.clock())
    assert item.links_revoked_at == world.clock()
    assert await _verify(client, outsider) == 403
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "bob"}}
    assert (await client.post("/v1/sign", json=body, headers=world.auth("web"))).status == 403
    world.clock.advance(1)
    owner = await _signed(client, world, viewer={"id": "alice"})
    assert await _verify(client, owner) == 200


async def test_widening_or_keeping_the_audience_does_not_revoke(world: World, client: TestClient) -> None:
    await _setup(world)
    url = await _signed(client, world)
    paths = dict((await world.services.store.media.get("m1")).paths)  # type: ignore[union-attr]
    world.clock.advance(5)
    item = await world.services.admin.put_media(ADMIN, "m1", "alice", "w1", Visibility.PUBLIC, paths, world.clock())
    assert item.links_revoked_at is None
    assert await _verify(client, url) == 200


async def test_deleting_an_item_stops_its_urls(world: World, client: TestClient) -> None:
    await _setup(world)
    url = await _signed(client, world)
    world.clock.advance(5)
    assert (await client.delete("/v1/media/m1", headers=world.auth("web"))).status == 204
    assert await _verify(client, url) == 403


async def test_a_url_issued_in_the_same_second_as_the_revocation_is_refused(world: World, client: TestClient) -> None:
    """Issue times are whole seconds: within the revocation's own second, refusing is the safe side."""
    await _setup(world)
    world.clock.now = 1_800_000_000.2
    url = await _signed(client, world)
    world.clock.now = 1_800_000_000.7
    await world.services.admin.revoke_links(ADMIN, "m1", "leak", world.clock())
    assert await _verify(client, url) == 403


async def test_a_narrowed_or_deleted_item_moved_to_new_paths_does_not_bring_its_old_links_back(
    world: World, client: TestClient
) -> None:
    """Red team F4: revocations are kept per path, so the old paths stay revoked after the item moves."""
    await _setup(world)
    old = await _signed(client, world)
    world.clock.advance(5)
    moved = {Rendition.VIDEO: "/w/m1/master.m3u8"}
    await world.services.admin.put_media(ADMIN, "m1", "alice", "w1", Visibility.PRIVATE, moved, world.clock())
    assert await _verify(client, old) == 403
    await world.services.admin.put_media(ADMIN, "m2", "alice", "w1", Visibility.PUBLIC,
                                         {Rendition.VIDEO: "/v/m2/master.m3u8"}, world.clock())  # fmt: skip
    body = {"media_id": "m2", "rendition": "video", "viewer": {"id": "bob"}}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    uri = url.removeprefix("https://cdn.example.com")
    world.clock.advance(5)
    assert (await client.delete("/v1/media/m2", headers=world.auth("web"))).status == 204
    await world.services.admin.put_media(ADMIN, "m2", "alice", "w1", Visibility.PUBLIC,
                                         {Rendition.VIDEO: "/v/m2new/master.m3u8"}, world.clock())  # fmt: skip
    assert await _verify(client, uri) == 403


async def test_a_path_an_item_gives_up_does_not_carry_its_old_links_to_the_next_item_there(
    world: World, client: TestClient
) -> None:
    """Red team 2026-11-25: moved with the same audience (nothing revoked), its old path then given to a
    private item; the old prefix and path URLs used to open the private item until they expired."""
    await _setup(world)
    prefix_url = await _signed(client, world)
    path_url = await _signed(client, world, scope="path")
    world.clock.advance(5)
    moved = {Rendition.VIDEO: "/v/m1-v2/master.m3u8"}
    item = await world.services.admin.put_media(ADMIN, "m1", "alice", "w1", Visibility.UNLISTED, moved, world.clock())
    assert item.links_revoked_at is None  # the audience is unchanged: its new paths are not revoked
    revoked = await world.services.store.media.revoked_paths(0, "m1")
    assert sorted((r.path, r.is_prefix, r.at) for r in revoked) == [
        ("/t/m1.jpg", False, world.clock()),
        ("/v/m1/", True, world.clock()),
        ("/v/m1/master.m3u8", False, world.clock()),
    ]
    await world.services.admin.put_media(ADMIN, "private", "carol", "w9", Visibility.PRIVATE,
                                         {Rendition.VIDEO: "/v/m1/master.m3u8"}, world.clock(),
                                         prefixes={Rendition.VIDEO: "/v/m1/"})  # fmt: skip
    assert await _verify(client, prefix_url) == 403
    assert await _verify(client, prefix_url.replace("master.m3u8", "seg3.ts")) == 403
    assert await _verify(client, path_url) == 403
    world.clock.advance(1)
    assert await _verify(client, await _signed(client, world, scope="path")) == 200  # m1 at its new path
