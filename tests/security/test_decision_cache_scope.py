"""A remembered verify decision stands only for the scope its signature covered (red team F1).

The attack: a path token's URL, re-presented for another path with ``#gw_pfx=`` appended, was keyed
in the decision cache as a prefix token (the raw query, fragment included, named gw_pfx) while it
verified as a path token: the cached "allow" then answered for every path, private ones included.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.errors import VerificationFailed
from gateway.model import Permission, Rendition, Visibility
from gateway.signing.dialects.base import Redemption
from tests.support import ADMIN, World

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
