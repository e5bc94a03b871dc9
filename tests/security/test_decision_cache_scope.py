"""A remembered verify decision stands only for the scope its signature covered (red team F1).

The attack: a path token's URL, re-presented for another path with ``#gw_pfx=`` appended, was keyed
in the decision cache as a prefix token (the raw query, fragment included, named gw_pfx) while it
verified as a path token: the cached "allow" then answered for every path, private ones included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.errors import VerificationFailed
from gateway.model import Permission, Rendition, Visibility
from gateway.signing.dialects.base import Redemption
from gateway.web.app import create_app
from tests.dialect_fixtures import open_deployment
from tests.support import ADMIN, Clock, World

BASE = "https://cdn.example.com"


async def _public_url(world: World, client: TestClient) -> str:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("pub1", visibility=Visibility.PUBLIC)
    await world.services.admin.put_media(ADMIN, "secret", "carol", "evil", Visibility.PRIVATE,
                                         {Rendition.VIDEO: "/v/secret/master.m3u8"}, world.clock())  # fmt: skip
    body = {"media_id": "pub1", "rendition": "video", "viewer": {"id": "mallory"}}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    return str((await response.json())["url"]).removeprefix(BASE)


async def _status(client: TestClient, uri: str) -> int:
    return (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status


async def test_a_fragment_naming_gw_pfx_does_not_turn_a_path_token_into_a_master_key(
    world: World, client: TestClient
) -> None:
    url = await _public_url(world, client)
    query = url.split("?", 1)[1]
    assert await _status(client, url) == 200
    assert await _status(client, f"/v/pub1/master.m3u8?{query}#gw_pfx=") == 403  # a fragment: refused outright
    assert await _status(client, f"/v/secret/master.m3u8?{query}#gw_pfx=") == 403
    assert await _status(client, f"/t/secret.jpg?{query}#gw_pfx=") == 403
    assert (await client.get(f"/v1/verify/v/secret/master.m3u8?{query}#gw_pfx=")).status == 403


async def test_a_cached_path_token_decision_never_answers_for_another_path(world: World, client: TestClient) -> None:
    url = await _public_url(world, client)
    query = url.split("?", 1)[1]
    services = world.services
    profile = services.profiles.get(None)
    first = await services.verifier.verify(Redemption(BASE + url, world.clock(), "198.51.100.7"), profile)
    assert first.prefix is None
    for other in ("/v/secret/master.m3u8", "/v/pub1/master.m3u8x"):
        with pytest.raises(VerificationFailed) as refused:
            await services.verifier.verify(Redemption(f"{BASE}{other}?{query}", world.clock(), "198.51.100.7"),
                                           profile)  # fmt: skip
        assert refused.value.reason == "bad-signature"
    with pytest.raises(VerificationFailed) as refused:
        await services.verifier.verify(Redemption(f"{BASE}{url}#gw_pfx=", world.clock(), "198.51.100.7"), profile)
    assert refused.value.reason == "malformed"


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    """Every dialect a profile (tests/dialect_fixtures.py), CloudFront's signed cookies among them."""
    world = await open_deployment(config.data_dir, clock)
    yield world, await aiohttp_client(create_app(world.services, close_services=False))
    await world.services.close()


async def _sign_cf_prefix(client: TestClient, world: World) -> dict[str, Any]:
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "profile": "cf", "scope": "prefix"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_a_decision_remembered_for_signed_cookies_is_never_lent_to_a_request_without_them(
    deployment: tuple[World, TestClient],
) -> None:
    """Same URL, same address (a NAT): the cookies carry the signature, so they are part of what was verified."""
    world, client = deployment
    signed = await _sign_cf_prefix(client, world)
    segment = signed["url"].split("/v/", 1)[0] + "/v/a/seg-1.ts"  # the CDN's absolute URL, as CloudFront signs it
    profile = world.services.profiles.get("cf")
    verifier = world.services.verifier
    accepted = await verifier.verify(Redemption(segment, world.clock(), "198.51.100.7", signed["cookies"]), profile)
    assert (accepted.kid, accepted.principal_id) == (signed["kid"], "web")
    with pytest.raises(VerificationFailed) as refused:
        await verifier.verify(Redemption(segment, world.clock(), "198.51.100.7"), profile)
    assert refused.value.reason == "malformed"  # no signature at all
    forged = {**signed["cookies"], "CloudFront-Signature": "AAAA"}
    with pytest.raises(VerificationFailed) as refused:
        await verifier.verify(Redemption(segment, world.clock(), "198.51.100.7", forged), profile)
    assert refused.value.reason == "bad-signature"
