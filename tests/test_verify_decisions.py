"""Remembered verify decisions skip only the signature: every other check still refuses, at once."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.errors import VerificationFailed
from gateway.model import Permission
from gateway.signing.dialects.base import Redemption
from gateway.signing.verification import Accepted
from tests.support import ADMIN, World

BASE = "https://cdn.example.com"


async def _signed(world: World, client: TestClient, **extra: object) -> str:
    if "web" not in world.seeds:
        await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    if await world.services.store.media.get("m1") is None:
        await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, **extra}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 200, await response.text()
    return str((await response.json())["url"])


async def _verify(world: World, url: str, ip: str = "198.51.100.7") -> Accepted:
    services = world.services
    return await services.verifier.verify(Redemption(url, world.clock(), ip), services.profiles.get(None))


async def _reason(world: World, url: str, ip: str = "198.51.100.7") -> str:
    with pytest.raises(VerificationFailed) as refused:
        await _verify(world, url, ip)
    return refused.value.reason


async def test_one_prefix_token_is_verified_once_for_every_segment(world: World, client: TestClient) -> None:
    url = await _signed(world, client, scope="prefix")
    decisions = world.services.verifier.decisions
    first = await _verify(world, url.replace("master.m3u8", "seg1.ts"))
    again = await _verify(world, url.replace("master.m3u8", "seg2.ts"))
    assert first == again and first.prefix == "/v/m1/"
    assert (decisions.hits, decisions.misses) == (1, 1)
    # outside the prefix the remembered decision does not apply, and the signature check refuses it
    assert await _reason(world, url.replace("/v/m1/master.m3u8", "/v/m2/seg1.ts")) == "outside-prefix"
    assert await _reason(world, url.replace("/v/m1/master.m3u8", "/v/m1/../m2/x.ts")) == "non-canonical-path"


async def test_a_remembered_decision_still_refuses_an_expired_url(world: World, client: TestClient) -> None:
    url = await _signed(world, client)
    await _verify(world, url)
    world.clock.advance(361)  # the cache window, then the default ttl
    assert await _reason(world, url) == "expired"


async def test_a_remembered_decision_still_refuses_a_revoked_key_and_a_disabled_principal(
    world: World, client: TestClient
) -> None:
    url = await _signed(world, client)
    accepted = await _verify(world, url)
    await world.services.admin.revoke_key(ADMIN, accepted.kid, "leaked", world.clock())
    assert await _reason(world, url) == "key-revoked"
    other = await _signed_for_second_principal(world, client)
    await _verify(world, other)
    await world.services.admin.disable_principal(ADMIN, "web2", world.clock())
    assert await _reason(world, other) == "principal-disabled"


async def _signed_for_second_principal(world: World, client: TestClient) -> str:
    await world.principal("web2", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web2"))
    return str((await response.json())["url"])


async def test_a_remembered_decision_still_refuses_after_the_items_links_are_revoked(
    world: World, client: TestClient
) -> None:
    url = await _signed(world, client, scope="prefix")
    segment = url.replace("master.m3u8", "seg1.ts")
    await _verify(world, segment)
    world.clock.advance(1)
    await world.services.admin.revoke_links(ADMIN, "m1", "leaked playlist", world.clock())
    assert await _reason(world, segment) == "links-revoked"
    world.clock.advance(1)
    fresh = await _signed(world, client, scope="prefix")  # issued after the revocation: good
    assert (await _verify(world, fresh.replace("master.m3u8", "seg1.ts"))).prefix == "/v/m1/"


async def test_an_ip_bound_url_remembered_for_one_address_is_refused_from_another(
    world: World, client: TestClient
) -> None:
    url = await _signed(world, client, client_ip="198.51.100.7")
    await _verify(world, url, ip="198.51.100.7")
    assert await _reason(world, url, ip="203.0.113.9") == "wrong-ip"


async def test_verify_goes_on_from_a_missed_recall_of_the_very_same_redemption_only(
    world: World, client: TestClient
) -> None:
    """``Verifier.recall`` keeps its reading for ``verify`` of the same objects (a new URL: parsed once). Another
    redemption, even an equal one, is read afresh; and the view going stale in between still refuses."""
    services, profile = world.services, world.services.profiles.get(None)
    url = await _signed(world, client)
    tampered = url.replace("/v/m1/", "/v/m2/")
    good = Redemption(url, world.clock(), "198.51.100.7")
    assert services.verifier.recall(good, profile) is None  # not remembered yet: the reading is kept
    bad = Redemption(tampered, world.clock(), "198.51.100.7")
    with pytest.raises(VerificationFailed) as refused:  # not good's reading: its own path, its own refusal
        await services.verifier.verify(bad, profile)
    assert refused.value.reason == "bad-signature"
    assert services.verifier.recall(bad, profile) is None
    accepted = await services.verifier.verify(good, profile)  # not bad's reading either
    assert accepted.kid and services.verifier.decisions.misses == 2
    other = Redemption(url.replace("/v/m1/", "/v/m1/./"), world.clock(), "198.51.100.7")
    assert services.verifier.recall(other, profile) is None  # refused inside: nothing kept for it
    assert await _reason(world, other.url) == "non-canonical-path"
    fresh = Redemption(tampered, world.clock(), "198.51.100.7")
    assert services.verifier.recall(fresh, profile) is None
    services.state.confirmed_at = float("-inf")  # the view stale between the two
    with pytest.raises(VerificationFailed) as stale:
        await services.verifier.verify(fresh, profile)
    assert stale.value.reason == "state-stale"
