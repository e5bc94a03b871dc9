"""Several copies of a header a proxy sets: every copy is read, or the request is refused.

The attack (red team, 2026-11-25): behind a proxy that appends its own
``X-Forwarded-For`` line after the client's (HAProxy's ``option forwardfor``),
the gateway read only the first line, the client's, and an URL bound to an
address the client named opened for it. ``X-Original-URI`` and
``X-Gateway-Profile`` name one thing each: two copies are refused, not picked from.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from gateway.model import Permission
from tests.support import World

CLAIMED = "6.6.6.6"  # what the client says it is
SEEN = "203.0.113.5"  # what the proxy saw and appended


async def _signed_for(world: World, client: TestClient, ip: str) -> str:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "client_ip": ip}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 200, await response.text()
    url = urlsplit((await response.json())["url"])
    return f"{url.path}?{url.query}"


async def _verify(client: TestClient, caplog: pytest.LogCaptureFixture, headers: CIMultiDict[str]) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.get("/v1/verify", headers=headers)
    denials = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    return response.status, denials[-1] if denials else ""


async def test_a_second_forwarded_for_line_from_the_proxy_is_the_one_believed(
    world: World, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    uri = await _signed_for(world, client, CLAIMED)
    two_lines = CIMultiDict([("X-Original-URI", uri), ("X-Forwarded-For", CLAIMED), ("X-Forwarded-For", SEEN)])
    assert await _verify(client, caplog, two_lines) == (403, "wrong-ip")
    one_line = CIMultiDict([("X-Original-URI", uri), ("X-Forwarded-For", f"{CLAIMED}, {SEEN}")])
    assert await _verify(client, caplog, one_line) == (403, "wrong-ip")
    honest = CIMultiDict([("X-Original-URI", uri), ("X-Forwarded-For", CLAIMED)])
    assert (await _verify(client, caplog, honest))[0] == 200


async def test_the_address_audited_at_signing_is_the_proxys_too(world: World, client: TestClient) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    headers = CIMultiDict([*world.auth("web").items(), ("X-Forwarded-For", CLAIMED), ("X-Forwarded-For", SEEN)])
    assert (await client.post("/v1/sign", json=body, headers=headers)).status == 200
    [record] = [r for r in await world.services.store.audit.tail(3) if r.event.value == "url:issued"]
    personal = await world.services.audit_log.reveal(record)  # a viewer's record: its address is sealed
    assert personal is not None and personal["client_ip"] == "203.0.113.0/24"


@pytest.mark.parametrize("header", ["X-Original-URI", "X-Gateway-Profile"])
async def test_two_copies_of_a_header_that_names_one_thing_are_refused(
    world: World, client: TestClient, caplog: pytest.LogCaptureFixture, header: str
) -> None:
    uri = await _signed_for(world, client, SEEN)
    values = {"X-Original-URI": [uri, "/v/m2/master.m3u8"], "X-Gateway-Profile": ["native", "native"]}[header]
    headers = CIMultiDict([("X-Original-URI", uri), ("X-Forwarded-For", SEEN)])
    headers.popall(header, None)
    for value in values:
        headers.add(header, value)
    assert await _verify(client, caplog, headers) == (403, "duplicate-header")
