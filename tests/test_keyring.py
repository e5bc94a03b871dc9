"""The keyring (gateway.keys.keyring): which key signs, which material verifies, and its refusals.

Native URLs are signed with Ed25519 *or* HMAC-SHA256 keys; the HMAC case goes
through the keyring's other branch (the secret unsealed, no public half) and
is verified here end to end, not only signed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.errors import Forbidden, StoreUnavailable, VerificationFailed
from gateway.keys.keyring import Keyring
from gateway.model import KeyAlgorithm, Permission
from gateway.signing.dialects.base import Redemption
from gateway.signing.verification import Decisions
from gateway.web.app import create_app
from tests.dialect_fixtures import open_deployment
from tests.support import ADMIN, Clock, World


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    yield world, await aiohttp_client(create_app(world.services, close_services=False))
    await world.services.close()


async def _mac_principal(world: World) -> str:
    """A principal whose only native-capable key is HMAC-SHA256; returns its kid."""
    await world.principal("mac", Permission.SIGN, Permission.SIGN_ON_BEHALF, key=None)
    key = await world.services.admin.create_key(ADMIN, "mac", KeyAlgorithm.HMAC_SHA256, world.clock())
    return key.kid


async def _sign_native(client: TestClient, world: World, principal: str) -> dict[str, Any]:
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "profile": "native"}
    response = await client.post("/v1/sign", json=body, headers=world.auth(principal))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _verify(world: World, uri: str) -> Any:
    world.services.verifier.decisions = Decisions(100)  # the signature itself is checked every time
    redemption = Redemption(uri, world.clock(), "127.0.0.1")
    return await world.services.verifier.verify(redemption, world.services.profiles.get("native"))


async def test_an_hmac_keyed_native_url_is_verified_with_the_unsealed_secret(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    kid = await _mac_principal(world)
    signed = await _sign_native(client, world, "mac")
    assert signed["kid"] == kid
    accepted = await _verify(world, signed["url"])
    assert (accepted.kid, accepted.principal_id, accepted.expires) == (kid, "mac", signed["expires_at"])

    keyring = world.services.keyring
    row = keyring.active_key(kid, world.clock())
    material = await keyring.verification_material(row, kid)
    assert (material.kid, material.algorithm, material.public) == (kid, KeyAlgorithm.HMAC_SHA256, None)
    assert material.secret is not None and len(material.secret) == 32


@pytest.mark.parametrize("position", [0, -1])
async def test_an_hmac_keyed_native_url_with_another_signature_is_refused(
    deployment: tuple[World, TestClient], position: int
) -> None:
    world, client = deployment
    await _mac_principal(world)
    uri = (await _sign_native(client, world, "mac"))["url"]
    head, _, signature = uri.rpartition("gw_sig=")
    # Same length, still canonical base64url (the last character only carries high bits: keep its low bits).
    index = position % len(signature)
    changed = "B" if signature[index] == "A" else "A"
    if position == -1:
        changed = {"A": "Q", "Q": "g", "g": "w", "w": "A"}.get(signature[index], "A")
    forged = head + "gw_sig=" + signature[:index] + changed + signature[index + 1 :]
    assert forged != uri
    with pytest.raises(VerificationFailed) as refused:
        await _verify(world, forged)
    assert refused.value.reason == "bad-signature"


async def test_an_ed25519_key_verifies_with_its_public_half_only(deployment: tuple[World, TestClient]) -> None:
    world, _ = deployment
    keyring = world.services.keyring
    (row,) = [k for k in world.services.state.view.keys_of("web") if k.algorithm is KeyAlgorithm.ED25519]
    material = await keyring.verification_material(row, row.kid)
    assert (material.kid, material.algorithm) == (row.kid, KeyAlgorithm.ED25519)
    assert material.public == row.public_key and material.secret is None


async def test_a_principal_without_a_usable_key_cannot_sign(deployment: tuple[World, TestClient]) -> None:
    world, _ = deployment
    await world.principal("keyless", Permission.SIGN, key=None)
    with pytest.raises(Forbidden) as refused:
        await world.services.keyring.signing_key("keyless", world.clock())
    assert refused.value.code == "no_active_key"
    assert refused.value.message == "principal keyless has no active signing key for this CDN"


async def test_a_key_in_the_view_but_missing_from_the_store_is_an_outage_not_a_key(
    deployment: tuple[World, TestClient],
) -> None:
    world, _ = deployment
    services = world.services
    (row,) = [k for k in services.state.view.keys_of("web") if k.algorithm is KeyAlgorithm.HMAC_SHA1]
    ghost = replace(row, kid="gwk_notinthestore", sealed_private=b"")
    keyring = Keyring(services.state, services.store, services.keyring._master_key)
    with pytest.raises(StoreUnavailable) as failed:
        await keyring.secret(ghost)
    assert failed.value.message == "key gwk_notinthestore is in the state view but not in the store"


async def test_a_key_is_unsealed_once_per_process_and_its_choice_cannot_be_changed(
    deployment: tuple[World, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unsealing may be a KMS call: the keyring does it on a key's first use only."""
    world, _ = deployment
    await _mac_principal(world)
    keyring = Keyring(world.services.state, world.services.store, world.services.keyring._master_key)
    master = keyring._master_key
    unsealed: list[bytes] = []
    original = master.unseal

    async def counting(sealed: bytes, context: bytes) -> bytes:
        unsealed.append(context)
        return await original(sealed, context)

    monkeypatch.setattr(master, "unseal", counting)
    first = await keyring.signing_key("mac", world.clock())
    again = await keyring.signing_key("mac", world.clock())
    assert first == again and first.material.secret is not None
    assert unsealed == [f"gateway-signing-key:{first.row.kid}".encode()]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.row = again.row  # type: ignore[misc]


async def test_a_key_linked_to_a_cdn_id_signs_gateway_urls_under_its_own_kid(
    deployment: tuple[World, TestClient],
) -> None:
    """The CDN's id for a key goes into that CDN's URLs only; native URLs always name the gateway kid."""
    world, _ = deployment
    key = await world.principal("linked", Permission.SIGN)
    assert key is not None
    await world.services.admin.link_key(ADMIN, key.kid, "KLINKEDEXAMPLE", world.clock())
    keyring = world.services.keyring
    native = await keyring.signing_key("linked", world.clock())
    assert (native.row.kid, native.material.kid) == (key.kid, key.kid)
    cdn = await keyring.signing_key("linked", world.clock(), by_external_id=True)
    assert (cdn.row.kid, cdn.material.kid) == (key.kid, "KLINKEDEXAMPLE")


async def test_a_key_revoked_while_its_secret_is_read_is_not_the_one_chosen(
    deployment: tuple[World, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key's first use reads its secret from the store: a revocation applied meanwhile must not be signed past
    (red team round 8, F4). The choice is made again from the view as it is after the read."""
    world, _ = deployment
    older = await _mac_principal(world)
    world.clock.advance(1)
    newer = await world.services.admin.create_key(ADMIN, "mac", KeyAlgorithm.HMAC_SHA256, world.clock())
    await world.services.state.catch_up()
    keyring = Keyring(world.services.state, world.services.store, world.services.keyring._master_key)
    master, original = keyring._master_key, keyring._master_key.unseal

    async def revoked_meanwhile(sealed: bytes, context: bytes) -> bytes:
        if context == f"gateway-signing-key:{newer.kid}".encode():
            await world.services.admin.revoke_key(ADMIN, newer.kid, "leaked", world.clock())
            await world.services.state.catch_up()
        return await original(sealed, context)

    monkeypatch.setattr(master, "unseal", revoked_meanwhile)
    assert (await keyring.signing_key("mac", world.clock())).row.kid == older
    await world.services.admin.revoke_key(ADMIN, older, "leaked too", world.clock())
    await world.services.state.catch_up()
    with pytest.raises(Forbidden):
        await keyring.signing_key("mac", world.clock())
