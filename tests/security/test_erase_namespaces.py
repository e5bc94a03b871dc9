"""Erasing a viewer never disables a principal of the same name (issue 17, finding 6).

Attack: ``subject erase web`` (a viewer called ``web``) silently disabled the backend principal ``web``; its URLs
went dead. Viewer subjects and principals are different namespaces; erasing a person who is also an engineer is an
explicit ``--principal``, and the output says what it disabled.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient

from gateway.cli.main import main as gatewayctl
from gateway.errors import InvalidInput
from gateway.model import Permission, PrincipalKind, Visibility
from tests.support import ADMIN, World


async def _verify(client: TestClient, world: World, principal: str, viewer: str) -> int:
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": viewer}}
    signed = await client.post("/v1/sign", json=body, headers=world.auth(principal))
    assert signed.status == 200, await signed.text()
    uri = (await signed.json())["url"].removeprefix("https://cdn.example.com")
    return (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status


async def test_erasing_a_viewer_leaves_the_principal_of_the_same_name(client: TestClient, world: World) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1", owner="web", visibility=Visibility.PRIVATE)  # a viewer who happens to be called web
    assert await _verify(client, world, "web", viewer="web") == 200
    done = await world.services.subjects.erase(ADMIN, "web", "ticket 3", world.clock())
    assert done == {"media_deleted": 1}
    principal = await world.services.store.principals.get("web")
    assert principal is not None and not principal.disabled
    world.clock.advance(1)  # the erasure revoked m1's links up to now: a URL of the next second is new
    await world.media("m1", owner="alice", visibility=Visibility.PUBLIC)
    # The backend principal still signs (for other viewers: this one is erased), and its URLs verify.
    assert await _verify(client, world, "web", viewer="alice") == 200
    [record] = [r for r in await world.services.store.audit.tail(10) if r.event.value == "subject:erased"]
    assert record.detail == {"media_deleted": 1}


async def test_a_principal_alone_is_not_a_viewer_to_erase(world: World) -> None:
    await world.principal("web", Permission.SIGN)
    with pytest.raises(Exception, match="nothing is held about viewer subject 'web'"):
        await world.services.subjects.erase(ADMIN, "web", "ticket 3", world.clock())
    assert not (await world.services.store.principals.get("web")).disabled  # type: ignore[union-attr]


async def test_erasing_a_person_who_is_an_engineer_names_the_principal(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    await world.principal("eve.ops", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.media("m1", owner="eve@example.com")
    await world.media("m2", owner="bob")
    await world.services.admin.add_grant(ADMIN, "eve.ops", "m2", "ticket 4", 600, world.clock())
    data = str(world.services.config.data_dir)
    await world.services.close()  # the CLI opens the store itself
    argv = ["subject", "erase", "eve@example.com", "--reason", "GDPR 12", "--principal", "eve.ops", "--data-dir", data]
    assert await asyncio.to_thread(gatewayctl, argv) == 0
    assert capsys.readouterr().out == (
        "erased viewer eve@example.com: 1 media item(s) deleted; audit key shredded\n"
        "and the same person as an engineer: principal eve.ops disabled, 1 grant(s) revoked\n"
    )
    assert await asyncio.to_thread(gatewayctl, ["principals", "list", "--data-dir", data, "--json"]) == 0
    [eve] = [p for p in json.loads(capsys.readouterr().out) if p["id"] == "eve.ops"]
    assert eve["disabled_at"] is not None


async def test_only_an_engineer_can_be_named_as_the_same_person(world: World) -> None:
    await world.principal("web", Permission.SIGN)
    await world.media("m1", owner="web")
    with pytest.raises(InvalidInput, match="principal 'web' is a service, not an engineer"):
        await world.services.subjects.erase(ADMIN, "web", "ticket 3", world.clock(), principal="web")
    assert not (await world.services.store.principals.get("web")).disabled  # type: ignore[union-attr]
