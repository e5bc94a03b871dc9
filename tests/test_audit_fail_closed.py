"""If the audit record cannot be written durably, no URL leaves the gateway."""

from __future__ import annotations

import sqlite3

import pytest
from aiohttp.test_utils import TestClient

from gateway.model import Permission
from tests.support import World


@pytest.fixture
async def broken_audit(world: World) -> World:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    # a real SQLite failure on audit insert (as with a full disk), not a mock
    conn = sqlite3.connect(world.services.config.sqlite_path)
    conn.execute("CREATE TRIGGER audit_fails BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    conn.commit()
    conn.close()
    return world


async def test_sign_fails_closed_with_503(client: TestClient, broken_audit: World) -> None:
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    response = await client.post("/v1/sign", json=body, headers=broken_audit.auth("web"))
    assert response.status == 503
    payload = await response.json()
    assert payload["error"] == "audit_unavailable"
    assert "gw_sig" not in await response.text()


async def test_batch_fails_closed_as_a_whole(client: TestClient, broken_audit: World) -> None:
    body = {"viewer": {"id": "alice"}, "items": [{"media_id": "m1", "rendition": "thumbnail"}] * 3}
    response = await client.post("/v1/sign/batch", json=body, headers=broken_audit.auth("web"))
    assert response.status == 503
    assert "gw_sig" not in await response.text()


async def test_page_redirect_fails_closed(client: TestClient, broken_audit: World) -> None:
    headers = {"Authorization": f"Bearer {broken_audit.viewer_token('alice')}"}
    response = await client.get("/m/m1/video", headers=headers, allow_redirects=False)
    assert response.status == 503 and "Location" not in response.headers


async def test_a_failed_audit_also_leaves_last_used_untouched(client: TestClient, broken_audit: World) -> None:
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    await client.post("/v1/sign", json=body, headers=broken_audit.auth("web"))
    [key] = await broken_audit.services.store.keys.all("web")
    assert key.last_used_at is None


async def test_last_used_is_written_by_the_first_issuance_after_the_log_recovers(
    client: TestClient, broken_audit: World
) -> None:
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    assert (await client.post("/v1/sign", json=body, headers=broken_audit.auth("web"))).status == 503
    conn = sqlite3.connect(broken_audit.services.config.sqlite_path)
    conn.execute("DROP TRIGGER audit_fails")
    conn.commit()
    conn.close()
    assert (await client.post("/v1/sign", json=body, headers=broken_audit.auth("web"))).status == 200
    [key] = await broken_audit.services.store.keys.all("web")
    assert key.last_used_at == broken_audit.clock()
