"""The verifier (gateway.signing.verification) itself: each check's exact refusal, for keyed and shared-secret formats.

Signed URLs come from /v1/sign in a deployment with every dialect as a profile
(tests/dialect_fixtures.py); they are then presented to ``Verifier.verify``
directly, so each test names the one reason it expects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.errors import VerificationFailed
from gateway.model import KeyAlgorithm, Permission
from gateway.signing.dialects.base import Redemption
from gateway.signing.verification import Accepted, Decisions
from gateway.web.app import create_app
from tests.dialect_fixtures import open_deployment
from tests.support import ADMIN, Clock, World

CLIENT = "127.0.0.1"
# Shared-secret profiles: one secret per profile, the principal's key id carried in a signed field.
SHARED_SECRET = ("akamai", "bunny", "bunnydir", "wowza", "nginx", "mcdn")
BOUND_TO_AN_ADDRESS = ("nginx", "nimble")  # their default expressions sign the client address


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


async def _sign(client: TestClient, world: World, profile: str, principal: str = "web", **extra: Any) -> dict[str, Any]:
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "profile": profile, **extra}
    if profile in BOUND_TO_AN_ADDRESS:
        body["client_ip"] = CLIENT
    response = await client.post("/v1/sign", json=body, headers=world.auth(principal))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _verify(world: World, uri: str, profile: str, at: float | None = None) -> Accepted:
    redemption = Redemption(uri, world.clock() if at is None else at, CLIENT)
    return await world.services.verifier.verify(redemption, world.services.profiles.get(profile))


async def _reason(world: World, uri: str, profile: str, at: float | None = None) -> str:
    with pytest.raises(VerificationFailed) as refused:
        await _verify(world, uri, profile, at)
    return refused.value.reason


def _forget(world: World) -> None:
    """Drop remembered decisions: the next verify checks the signature again."""
    world.services.verifier.decisions = Decisions(100)


@pytest.mark.parametrize("profile", SHARED_SECRET)
async def test_a_shared_secret_url_is_attributed_to_the_key_it_names(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    world, client = deployment
    signed = await _sign(client, world, profile)
    accepted = await _verify(world, signed["url"], profile)
    assert (accepted.kid, accepted.principal_id, accepted.expires) == (signed["kid"], "web", signed["expires_at"])


@pytest.mark.parametrize("profile", SHARED_SECRET)
async def test_a_shared_secret_url_is_refused_once_its_key_is_revoked(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    """The profile's secret still verifies the signature: the key it names must be checked after it."""
    world, client = deployment
    remembered = (await _sign(client, world, profile))["url"]
    fresh = await _sign(client, world, profile, viewer={"id": "carol"})
    await _verify(world, remembered, profile)
    await world.services.admin.revoke_key(ADMIN, fresh["kid"], "leaked", world.clock())
    assert await _reason(world, remembered, profile) == "key-revoked"  # a remembered decision
    assert await _reason(world, fresh["url"], profile) == "key-revoked"  # never seen before


@pytest.mark.parametrize("profile", ["native", "cf", "gcdn", *SHARED_SECRET])
async def test_a_url_is_refused_once_its_principal_is_disabled(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, profile))["url"]
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    assert await _reason(world, uri, profile) == "principal-disabled"


async def test_a_key_is_trusted_until_its_not_after_and_not_a_second_longer(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    now = world.clock()
    await world.principal("short", Permission.SIGN, Permission.SIGN_ON_BEHALF, key=None)
    key = await world.services.admin.create_key(ADMIN, "short", KeyAlgorithm.ED25519, now, not_after=now + 100)
    signed = await _sign(client, world, "native", principal="short")
    assert signed["kid"] == key.kid and signed["expires_at"] > now + 100
    uri = signed["url"]
    assert (await _verify(world, uri, "native", at=now + 99)).kid == key.kid
    assert await _reason(world, uri, "native", at=now + 100) == "key-expired"  # remembered decision
    _forget(world)
    assert await _reason(world, uri, "native", at=now + 100) == "key-expired"


@pytest.mark.parametrize(
    ("profile", "field"),
    [("native", "gw_kid"), ("cf", "Key-Pair-Id"), ("gcdn", "KeyName")],
)
async def test_a_keyed_url_naming_an_unknown_key_is_refused_before_its_signature(
    deployment: tuple[World, TestClient], profile: str, field: str
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, profile))["url"]
    rest = uri.partition(f"{field}=")[2]
    value = rest.split("&", 1)[0]
    assert await _reason(world, uri.replace(f"{field}={value}", f"{field}=unknown0key"), profile) == "unknown-key"


async def test_a_native_url_may_not_name_a_key_by_its_cdn_id(deployment: tuple[World, TestClient]) -> None:
    """Native URLs name gateway kids; a CDN's id for a key (CloudFront's Key-Pair-Id) is not one."""
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    kid = uri.split("gw_kid=", 1)[1].split("&", 1)[0]
    assert await _reason(world, uri.replace(f"gw_kid={kid}", "gw_kid=K2JCJMDEHXQW5F"), "native") == "unknown-key"


async def test_a_cloudfront_url_names_its_key_by_the_cdn_id(deployment: tuple[World, TestClient]) -> None:
    world, client = deployment
    signed = await _sign(client, world, "cf")
    assert "Key-Pair-Id=K2JCJMDEHXQW5F" in signed["url"]
    accepted = await _verify(world, signed["url"], "cf")
    assert (accepted.kid, accepted.principal_id) == (signed["kid"], "web")
    assert accepted.kid != "K2JCJMDEHXQW5F"  # attributed to the gateway's kid behind the CDN's id


async def test_a_remembered_decision_is_refused_at_its_expiry_to_the_second(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    signed = await _sign(client, world, "akamai")
    uri = signed["url"]
    assert (await _verify(world, uri, "akamai", at=signed["expires_at"] - 1)).expires == signed["expires_at"]
    assert await _reason(world, uri, "akamai", at=signed["expires_at"]) == "expired"


async def test_a_stale_view_refuses_everything_until_it_is_current_again(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    state = world.services.state
    confirmed = state.confirmed_at
    state.confirmed_at = confirmed - 3600
    assert await _reason(world, uri, "native") == "state-stale"
    state.confirmed_at = confirmed
    assert (await _verify(world, uri, "native")).principal_id == "web"


async def test_an_unattributable_profile_is_refused_before_its_signature(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "nimble"))["url"]
    assert await _reason(world, uri, "nimble") == "unattributable"
