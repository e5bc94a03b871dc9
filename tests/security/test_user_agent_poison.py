"""One request with undecodable bytes in its User-Agent cannot take issuance down for everyone (red team F5).

aiohttp keeps such bytes as lone surrogates; stored as they were, the audit group commit that request
joined failed, and every request in the group got 503, with the database's error text in the body.
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from gateway.model import Permission, Visibility
from gateway.services import Services
from gateway.web.app import create_app
from tests.http_support import GatewayTestServer, raw_http
from tests.support import World


async def test_a_user_agent_of_raw_bytes_is_stored_readably_and_harms_no_neighbour(
    world: World,
    services: Services,
    aiohttp_client,  # type: ignore[no-untyped-def]
) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("pub1", visibility=Visibility.PUBLIC)
    live: TestClient = await aiohttp_client(GatewayTestServer(create_app(services, close_services=False)))
    body = b'{"media_id":"pub1","rendition":"video","viewer":{"id":"bob"}}'
    token = world.token("web").encode()

    def request(agent: bytes) -> bytes:
        return (b"POST /v1/sign HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + token + b"\r\nUser-Agent: " + agent + b"\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip

    answers = await asyncio.gather(
        *(raw_http(live.port, request(b"\xff\xfe" if i % 2 else b"ok/1")) for i in range(20))
    )
    assert [a.status for a in answers] == [200] * 20
    revealed = [await services.audit_log.reveal(r) for r in await services.store.audit.tail(20)]
    assert {p["user_agent"] for p in revealed if p} == {"ok/1", "\ufffd\ufffd"}  # sealed per viewer, readable
