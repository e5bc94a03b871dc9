"""PUT/GET/DELETE /v1/media/{id}."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.model import Permission
from gateway.store.base import AuditQuery
from tests.support import World

ITEM = {"owner": "alice", "workspace": "w1", "visibility": "workspace",
        "renditions": {"video": "/v/m9/master.m3u8", "thumbnail": "/t/m9.jpg"}}  # fmt: skip


@pytest.fixture
async def cms(world: World) -> World:
    await world.principal("cms", Permission.MEDIA_WRITE, key=None)
    await world.principal("reader", Permission.SIGN, key=None)
    return world


async def test_put_get_delete(client: TestClient, cms: World) -> None:
    put = await client.put("/v1/media/m9", json=ITEM, headers=cms.auth("cms"))
    assert put.status == 200
    got = await (await client.get("/v1/media/m9", headers=cms.auth("cms"))).json()
    assert got["renditions"] == ITEM["renditions"] and got["visibility"] == "workspace"
    assert (await client.delete("/v1/media/m9", headers=cms.auth("cms"))).status == 204
    assert (await client.get("/v1/media/m9", headers=cms.auth("cms"))).status == 404
    assert (await client.delete("/v1/media/m9", headers=cms.auth("cms"))).status == 404
    events = [r.event.value for r in await cms.services.store.audit.search(AuditQuery(media_id="m9"))]
    assert events == ["media:put", "media:deleted"]


async def test_media_write_is_required(client: TestClient, cms: World) -> None:
    response = await client.put("/v1/media/m9", json=ITEM, headers=cms.auth("reader"))
    assert response.status == 403
    assert (await client.get("/v1/media/m9")).status == 401


@pytest.mark.parametrize(
    "change",
    [
        {"visibility": "secret"},
        {"owner": ""},
        {"owner": 7},
        {"renditions": {}},
        {"renditions": {"poster": "/p.jpg"}},
        {"renditions": {"video": 1}},
        {"renditions": {"video": "/v/../etc/passwd"}},
        {"renditions": {"video": "relative/path"}},
    ],
)
async def test_invalid_items_are_400(client: TestClient, cms: World, change: dict) -> None:
    response = await client.put("/v1/media/m9", json={**ITEM, **change}, headers=cms.auth("cms"))
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_invalid_media_id_is_400(client: TestClient, cms: World) -> None:
    response = await client.put("/v1/media/bad%20id", json=ITEM, headers=cms.auth("cms"))
    assert response.status == 400


async def test_misspelt_fields_are_400_naming_them(client: TestClient, cms: World) -> None:
    item = {**ITEM, "visiblity": "private"}
    response = await client.put("/v1/media/m9", json=item, headers=cms.auth("cms"))
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid_request",
        "message": "invalid request body: Object contains unknown field `visiblity`",
    }
    assert (await client.get("/v1/media/m9", headers=cms.auth("cms"))).status == 404
