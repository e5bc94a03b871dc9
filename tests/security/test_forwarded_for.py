"""Attack: a forged ``X-Forwarded-For`` from a peer that is not a trusted proxy, at the HTTP layer.

The header is believed only from ``proxy.trusted``; from anyone else the TCP
peer is the client. Here the test client (127.0.0.1) is *not* trusted
(``GATEWAY_PROXY_TRUSTED=10.0.0.0/8``), so it speaks to /v1/verify in the
path-tail form (X-Original-URI is refused from it) and its forwarded
addresses must change nothing: an IP-bound URL is judged against 127.0.0.1,
and the audit log records 127.0.0.0/24, not the address the client claimed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.model import Permission
from gateway.services import open_services
from gateway.store.base import AuditQuery
from gateway.web.app import create_app
from tests.support import Clock, World

PEER = "127.0.0.1"  # the test client's address
FORGED = "203.0.113.9"


@pytest.fixture
async def untrusted(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    services = await open_services(load_config(config.data_dir, environ={"GATEWAY_PROXY_TRUSTED": "10.0.0.0/8"}),
                                   clock=clock)  # fmt: skip
    world = World(services, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    client = await aiohttp_client(create_app(services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await services.close()


async def _signed_for(world: World, client: TestClient, ip: str) -> str:
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "client_ip": ip}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 200, await response.text()
    return str((await response.json())["url"]).removeprefix("https://cdn.example.com")


async def _verify(client: TestClient, caplog: pytest.LogCaptureFixture, uri: str, **headers: str) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.get(f"/v1/verify{uri}", headers=headers)
    denials = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    return response.status, denials[-1] if denials else ""


async def test_a_forged_forwarded_for_does_not_unlock_a_url_bound_to_that_address(
    untrusted: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = untrusted
    uri = await _signed_for(world, client, FORGED)
    assert await _verify(client, caplog, uri, **{"X-Forwarded-For": FORGED}) == (403, "wrong-ip")
    assert await _verify(client, caplog, uri, **{"X-Forwarded-For": f"10.0.0.1, {FORGED}"}) == (403, "wrong-ip")


async def test_a_forged_forwarded_for_does_not_lock_out_the_real_peer(
    untrusted: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = untrusted
    uri = await _signed_for(world, client, PEER)
    assert await _verify(client, caplog, uri, **{"X-Forwarded-For": FORGED}) == (200, "")


async def test_the_audit_log_records_the_peer_not_the_forged_address(
    untrusted: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = untrusted
    uri = await _signed_for(world, client, PEER)
    assert (await _verify(client, caplog, uri, **{"X-Forwarded-For": FORGED}))[0] == 200
    await world.services.behind.flush()
    [redeemed] = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert redeemed.client_ip == "127.0.0.0/24"


async def test_a_forged_forwarded_for_is_not_the_signing_callers_address(untrusted: tuple[World, TestClient]) -> None:
    world, client = untrusted
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    response = await client.post("/v1/sign", json=body, headers={**world.auth("web"), "X-Forwarded-For": FORGED})
    assert response.status == 200, await response.text()
    [issued] = await world.services.store.audit.search(AuditQuery(event="url:issued"))
    personal = await world.services.audit_log.reveal(issued)  # a viewer's record: its address is sealed
    assert personal is not None and personal["client_ip"] == "127.0.0.0/24"
