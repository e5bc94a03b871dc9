"""GET /v1/verify for nginx auth_request and Envoy ext_authz, and instant revocation."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.model import Permission
from tests.support import ADMIN, World


@pytest.fixture
async def signed(world: World, client: TestClient) -> tuple[World, str]:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "scope": "prefix"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    url = (await response.json())["url"]
    return world, url.removeprefix("https://cdn.example.com")


async def _verify(client: TestClient, uri: str, **headers: str) -> int:
    response = await client.get("/v1/verify", headers={"X-Original-URI": uri, **headers})
    if response.status != 200:
        assert (await response.json()) == {"error": "denied", "message": "the signed URL is not valid"}
    return response.status


async def test_nginx_style_allow_and_deny(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    assert await _verify(client, uri) == 200
    assert await _verify(client, uri.replace("master.m3u8", "seg-1.ts")) == 200
    assert await _verify(client, uri.replace("/v/m1/", "/v/m10/")) == 403
    assert await _verify(client, uri.replace("gw_exp=", "gw_exp=1")) == 403
    assert await _verify(client, "/v/m1/master.m3u8") == 403
    assert await _verify(client, "garbage") == 403
    world.clock.advance(301)
    assert await _verify(client, uri) == 403


async def test_envoy_style_path_prefix(client: TestClient, signed: tuple[World, str]) -> None:
    _, uri = signed
    assert (await client.get("/v1/verify" + uri)).status == 200
    assert (await client.head("/v1/verify" + uri)).status == 200
    assert (await client.post("/v1/verify" + uri.replace("gw_sig=", "gw_sig=x"))).status == 403


async def test_no_uri_is_a_clear_400(client: TestClient, signed: tuple[World, str]) -> None:
    response = await client.get("/v1/verify")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_unknown_profile_header_is_denied(client: TestClient, signed: tuple[World, str]) -> None:
    _, uri = signed
    assert await _verify(client, uri, **{"X-Gateway-Profile": "nope"}) == 403


async def test_revocation_applies_to_the_next_request(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    kid = uri.split("gw_kid=")[1].split("&")[0]
    assert await _verify(client, uri) == 200
    await world.services.admin.revoke_key(ADMIN, kid, "laptop stolen", world.clock())
    assert await _verify(client, uri) == 403
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 403


async def test_revocation_by_another_connection_is_seen(client: TestClient, signed: tuple[World, str]) -> None:
    """A revocation committed elsewhere (gatewayctl, another replica) applies without restart."""
    from gateway.services import open_services

    world, uri = signed
    kid = uri.split("gw_kid=")[1].split("&")[0]
    assert (await client.get("/readyz")).status == 200  # reads after a probe still see others' commits
    assert await _verify(client, uri) == 200
    other = await open_services(world.services.config, clock=world.clock)
    try:
        await other.admin.revoke_key(ADMIN, kid, "compromised", world.clock())
    finally:
        await other.close()
    assert await _verify(client, uri) == 403


async def test_disabled_principal_urls_stop_verifying(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    assert await _verify(client, uri) == 403


async def test_rotation_keeps_old_urls_valid(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    await world.services.admin.rotate_key(ADMIN, "web", world.clock())
    assert await _verify(client, uri) == 200


async def test_ip_bound_url_uses_forwarded_for_only_from_trusted_proxies(
    client: TestClient, signed: tuple[World, str]
) -> None:
    world, _ = signed
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "client_ip": "203.0.113.9"}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    uri = url.removeprefix("https://cdn.example.com")
    # the test client connects from 127.0.0.1, which init's config trusts as a proxy
    assert await _verify(client, uri, **{"X-Forwarded-For": "203.0.113.9"}) == 200
    assert await _verify(client, uri, **{"X-Forwarded-For": "198.51.100.1"}) == 403
    assert await _verify(client, uri) == 403


async def test_redemptions_are_logged_once_per_token_and_network(client: TestClient, signed: tuple[World, str]) -> None:
    from gateway.store.base import AuditQuery

    world, uri = signed
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.1", "203.0.113.5"):
        assert await _verify(client, uri, **{"X-Forwarded-For": ip}) == 200
    redeemed = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert [r.client_ip for r in redeemed] == ["198.51.100.0/24", "203.0.113.0/24"]
    assert all(r.kid and r.expires_at for r in redeemed)


async def test_verify_fails_closed_when_the_redemption_cannot_be_logged(
    client: TestClient, signed: tuple[World, str]
) -> None:
    import sqlite3

    world, uri = signed
    conn = sqlite3.connect(world.services.config.sqlite_path)
    conn.execute("CREATE TRIGGER audit_fails BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    conn.commit()
    conn.close()
    response = await client.get("/v1/verify", headers={"X-Original-URI": uri, "X-Forwarded-For": "192.0.2.1"})
    assert response.status == 503
