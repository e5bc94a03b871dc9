"""A byte that is no UTF-8 in a signed cookie: a 403, never a 500 with a traceback per request.

The attack (red team, 2026-11-25): unauthenticated, ``Cookie: __token__=exp=1~data=\\xff~hmac=aa``
(Akamai), the same in Media CDN's ``Edge-Cache-Cookie`` and Cloud CDN's ``Cloud-CDN-Cookie``
made the dialect encode a lone surrogate: 500 at /v1/verify, and nginx's auth_request a 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from gateway.config import Config
from gateway.web.app import create_app
from tests.dialect_fixtures import open_deployment
from tests.http_support import GatewayTestServer, raw_http
from tests.support import Clock, World

COOKIES = {
    "akamai": b"__token__=exp=1~data=\xff~hmac=aa",
    "mcdn": b"Edge-Cache-Cookie=URLPrefix=\xff~Expires=1~hmac=aa",
    "gcdn": b"Cloud-CDN-Cookie=URLPrefix=\xff:Expires=9999999999:KeyName=my-key:Signature=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "native": b"gw_token=\xff\xfe",
}


@pytest.fixture
async def port(config: Config, clock: Clock) -> AsyncIterator[int]:
    world: World = await open_deployment(config.data_dir, clock)
    server = GatewayTestServer(create_app(world.services, close_services=False))
    await server.start_server()
    try:
        yield server.port or 0
    finally:
        await server.close()
        await world.services.close()


@pytest.mark.parametrize("profile", sorted(COOKIES))
async def test_a_stray_byte_in_a_signed_cookie_is_denied_without_a_traceback(
    port: int, profile: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = (
        b"GET /v1/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Original-URI: /v/a/master.m3u8\r\nX-Gateway-Profile: " + profile.encode() + b"\r\n"
        b"Cookie: " + COOKIES[profile] + b"\r\n\r\n"
    )
    with caplog.at_level(logging.INFO):
        response = await raw_http(port, request)
    assert (response.status, response.json()["error"]) == (403, "denied")
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
