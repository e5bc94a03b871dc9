"""The caller cannot edit its own audit address (issue 17, finding 4).

Attack: a principal without ``sign:on-behalf`` passed ``viewer_ip`` and the record showed that network instead of
its own; ``client_ip: "0.0.0.0/0"`` (the URL's binding) left the record with no address at all, and blinded the
unusual-use alert, which skips records without a network. Now the caller's own network is always the record's
``client_ip``; ``viewer_ip`` needs ``sign:on-behalf`` and a viewer and is kept beside it, as is the binding.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.audit.records import AuditRecord
from gateway.config import Config, load_config
from gateway.model import Permission, PrincipalKind, Visibility
from gateway.store.base import AuditQuery
from tests.support import World, init_data_dir

BACKEND = {"X-Forwarded-For": "192.0.2.10"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Unusual-use detection without its learning period: the second signing is already judged."""
    init_data_dir(tmp_path)
    with (tmp_path / "gateway.toml").open("a") as toml:
        toml.write("\n[alerts]\nlearning_days = 0\n")
    return load_config(tmp_path, environ={})  # the test client is loopback, a trusted proxy: the caller is here


async def _sign(client: TestClient, world: World, principal: str, **body: Any) -> tuple[int, dict[str, Any]]:
    request = {"media_id": "m1", "rendition": "video", **body}
    response = await client.post("/v1/sign", json=request, headers={**world.auth(principal), **BACKEND})
    return response.status, await response.json()


async def _last(world: World, event: str) -> tuple[AuditRecord, dict[str, Any] | None]:
    [record] = (await world.services.store.audit.search(AuditQuery(event=event)))[-1:]
    return record, await world.services.audit_log.reveal(record)


async def test_viewer_ip_without_sign_on_behalf_is_refused_and_audited_with_the_callers_address(
    client: TestClient, world: World
) -> None:
    await world.principal("app", Permission.SIGN)
    await world.media("m1", owner="alice")
    viewer = world.viewer_token("alice", "w1")
    status, refused = await _sign(client, world, "app", viewer_token=viewer, viewer_ip="203.0.113.9")
    assert (status, refused["error"]) == (403, "forbidden")
    assert refused["message"] == "not permitted: missing-permission:sign:on-behalf"
    record, personal = await _last(world, "url:denied")
    assert record.reason == "missing-permission:sign:on-behalf"
    assert personal is not None
    assert (personal["client_ip"], personal["viewer_network"]) == ("192.0.2.0/24", "203.0.113.0/24")


async def test_viewer_ip_needs_a_viewer(client: TestClient, world: World) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1", visibility=Visibility.PUBLIC)
    status, refused = await _sign(client, world, "web", viewer_ip="203.0.113.9")
    assert (status, refused["error"]) == (400, "invalid_request")
    assert refused["message"] == (
        "viewer_ip is the address of the viewer the URL is for: give viewer_token or viewer too"
    )


async def test_the_record_keeps_the_callers_network_and_the_viewers_beside_it(client: TestClient, world: World) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1", owner="alice")
    status, _ = await _sign(client, world, "web", viewer={"id": "alice"}, viewer_ip="203.0.113.9")
    assert status == 200
    record, personal = await _last(world, "url:issued")
    assert record.client_ip is None and "viewer_network" not in record.detail  # sealed under alice's key
    assert personal is not None
    assert (personal["client_ip"], personal["viewer_network"]) == ("192.0.2.0/24", "203.0.113.0/24")


async def test_a_binding_to_every_address_does_not_erase_the_callers(client: TestClient, world: World) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1", owner="alice")
    status, issued = await _sign(client, world, "web", viewer={"id": "alice"}, client_ip="0.0.0.0/0")
    assert status == 200 and "&gw_ip=0.0.0.0/0&" in issued["url"]
    _, personal = await _last(world, "url:issued")
    assert personal is not None
    assert (personal["client_ip"], personal["bound_to"]) == ("192.0.2.0/24", "0.0.0.0/0")
    status, _ = await _sign(client, world, "web", viewer={"id": "alice"}, client_ip="198.51.100.7")
    _, personal = await _last(world, "url:issued")
    assert personal is not None and personal["bound_to"] == "198.51.100.0/24"  # masked like every address


async def test_an_engineer_cannot_blind_unusual_use_with_a_binding(client: TestClient, world: World) -> None:
    """The alert reads the caller's network, which a binding can no longer blank out."""
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.media("m1", owner="eve", visibility=Visibility.PUBLIC)
    body = {"media_id": "m1", "rendition": "video"}
    assert (await client.post("/v1/sign", json=body, headers=world.auth("eve"))).status == 200  # learnt: loopback
    elsewhere = {**world.auth("eve"), "X-Forwarded-For": "198.51.100.20"}
    response = await client.post("/v1/sign", json={**body, "client_ip": "0.0.0.0/0"}, headers=elsewhere)
    assert response.status == 200
    alerts: list[AuditRecord] = []
    for _ in range(200):  # the app's watcher runs every few milliseconds (its background task): the event
        await world.services.watcher.step(world.clock())
        alerts = await world.services.store.audit.search(AuditQuery(event="alert:unusual_use"))
        if alerts:
            break
        await asyncio.sleep(0.01)
    [alert] = alerts
    assert (alert.actor, alert.reason, alert.client_ip) == ("gateway:alerts", "new-network", "198.51.100.0/24")
