"""Who is calling: a token's signature is checked once while it lasts; its credential and principal always."""

from __future__ import annotations

import pytest

from gateway.errors import Unauthenticated
from gateway.model import Permission
from tests.support import ADMIN, World


async def _refusal(world: World, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        await world.services.identity.principal(token, world.clock())
    return refused.value.message


async def test_a_principal_token_is_verified_once_then_remembered_until_it_expires(world: World) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    identity = world.services.identity
    token = world.token("web", ttl=600)
    assert (await identity.principal(token, world.clock())).id == "web"
    assert (await identity.principal(token, world.clock())).id == "web"
    assert (identity.principal_tokens.hits, identity.principal_tokens.misses) == (1, 1)
    world.clock.advance(600 + 29)  # inside the 30 s leeway: still good, from memory
    assert (await identity.principal(token, world.clock())).id == "web"
    world.clock.advance(1)
    assert await _refusal(world, token) == "token has expired"


async def test_a_remembered_token_is_refused_once_its_credential_is_revoked_or_principal_disabled(
    world: World,
) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    await world.principal("app", Permission.SIGN, key=None)
    identity = world.services.identity
    web, app = world.token("web"), world.token("app")
    await identity.principal(web, world.clock())
    await identity.principal(app, world.clock())
    credential_id = world.seeds["web"][0]
    await world.services.admin.revoke_credential(ADMIN, credential_id, "leaked", world.clock())
    assert await _refusal(world, web) == "unknown or revoked credential"
    await world.services.admin.disable_principal(ADMIN, "app", world.clock())
    assert await _refusal(world, app) == "principal is disabled"


async def test_a_tampered_token_is_not_taken_for_a_remembered_one(world: World) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    token = world.token("web")
    await world.services.identity.principal(token, world.clock())
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BA'}"
    assert (await _refusal(world, forged)).startswith("invalid token")


async def test_a_viewer_token_is_remembered_with_its_viewer(world: World) -> None:
    identity = world.services.identity
    token = world.viewer_token("bob", "acme", ttl=60)
    first = await identity.viewer(token, world.clock())
    assert (first.subject, first.workspaces) == ("bob", frozenset({"acme"}))
    assert await identity.viewer(token, world.clock()) == first
    assert identity.viewer_tokens.hits == 1
    world.clock.advance(60 + 30)
    with pytest.raises(Unauthenticated, match="token has expired"):
        await identity.viewer(token, world.clock())
