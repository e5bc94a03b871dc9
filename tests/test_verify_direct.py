"""``/v1/verify`` answered directly (``gateway.web.direct``) gives the router-and-middleware path's answers.

The real server (``gateway.web.server.Runner``) over real sockets, the same requests sent with the direct path
on and then off (``direct.takes`` made to refuse everything): the responses byte for byte but for the Date
and a generated request id, and the side effects (the verify metrics, the decision memo's hits and misses,
the deny log lines, the ``url:redeemed`` records). Each run signs its own URLs (media m1, then m2): the
decision memo and the redemption records start empty for both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.model import Permission, Rendition, Viewer
from gateway.observe import logs
from gateway.services import open_services
from gateway.signing.issuance import SignItem
from gateway.store.base import AuditQuery
from gateway.web import direct, middleware
from gateway.web.app import create_app
from tests.http_support import GatewayTestServer
from tests.support import ADMIN, Clock, World

# Each variant: 127.0.0.1 (the test's own address) a trusted proxy as `gatewayctl init` leaves it, or not; a client
# certificate required on the verify routes, or on the others (plain HTTP here: none is ever presented); the
# access log on (its lines name the route: compared too) or off (the direct path then skips the router).
VARIANTS: dict[str, tuple[dict[str, str], tuple[str, ...], bool]] = {
    "trusted": ({}, (), True),
    "trusted-no-access-log": ({}, (), False),
    "untrusted": ({"GATEWAY_PROXY_TRUSTED": "10.0.0.0/8"}, (), True),
    "client-cert": ({}, ("verify",), False),
    "client-cert-api": ({}, ("api",), True),
}


@pytest.fixture(params=list(VARIANTS))
async def served(
    request: pytest.FixtureRequest, config: Config, clock: Clock, aiohttp_client: Any
) -> AsyncIterator[tuple[World, TestClient, int]]:
    environ, require, access_log = VARIANTS[request.param]
    loaded = dataclasses.replace(load_config(config.data_dir, environ=environ), tls_require_client_cert=require)
    services = await open_services(loaded, clock=clock)
    world = World(services, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    await world.media("m2")
    server = GatewayTestServer(create_app(services, close_services=False, checkpoints=False))
    logger = logging.getLogger(logs.ACCESS_LOGGER) if access_log else None
    await server.start_server(access_log=logger, access_log_class=logs.AccessLogger)
    client = await aiohttp_client(server)
    assert server.runner is not None and getattr(server.runner, "direct", None) is True
    yield world, client, server.port or 0
    await client.close()
    await services.close()


async def _sign(world: World, media: str, ip: str | None = None) -> str:
    """A prefix URL for ``media`` (bound to ``ip``), signed in-process: the HTTP route may want a certificate."""
    principal = await world.services.store.principals.get("web")
    assert principal is not None
    item = SignItem(media, Rendition.VIDEO, prefix=True, client_ip=ip)
    [outcome] = await world.services.issuer.issue(principal, Viewer("alice", source="asserted"), [item], ADMIN,
                                                  world.clock())  # fmt: skip
    assert outcome.issued is not None
    return outcome.issued.url.removeprefix("https://cdn.example.com")


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(-1), timeout=10)
    finally:
        writer.close()


def _normalised(data: bytes) -> bytes:
    """Date and generated request ids masked (no answer or log line names the media)."""
    data = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", data)
    return re.sub(re.escape(middleware._ID_PREFIX.encode()) + rb"[0-9a-f]+", b"<generated>", data)


def _requests(uri: str, ip_uri: str) -> list[bytes]:
    """Every kind of /v1/verify request we can think of, and a few neighbours of the path."""
    seg = uri.replace("master.m3u8", "seg-1.ts")
    tampered = uri.replace("gw_sig=", "gw_sig=x")
    cases: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("GET", "/v1/verify", [("X-Original-URI", uri)]),
        ("GET", "/v1/verify", [("X-Original-URI", seg)]),
        ("GET", "/v1/verify", [("X-Original-URI", seg)]),  # remembered now
        ("HEAD", "/v1/verify", [("X-Original-URI", seg)]),
        ("GET", "/v1/verify", [("X-Original-URI", "https://evil.example" + seg)]),
        ("GET", "/v1/verify", [("X-Original-URI", tampered)]),
        ("GET", "/v1/verify", [("X-Original-URI", uri.replace("/v/m", "/v/mx"))]),
        ("GET", "/v1/verify", [("X-Original-URI", seg.replace("seg-1.ts", "../x.ts"))]),
        ("GET", "/v1/verify", [("X-Original-URI", seg.replace("seg-1.ts", "a%2fb.ts"))]),
        ("GET", "/v1/verify", [("X-Original-URI", seg + "#frag")]),
        ("GET", "/v1/verify", [("X-Original-URI", "garbage")]),
        ("GET", "/v1/verify", [("X-Original-URI", "")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Original-URI", seg)]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Original-Method", "GET")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Original-Method", "HEAD")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Original-Method", "POST")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Original-Method", "get")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Original-Method", "GET"), ("X-Original-Method", "GET")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Gateway-Profile", "nope")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Gateway-Profile", "default")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Request-Id", "abc-123.x_Y")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Request-Id", "bad id")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("X-Request-Id", "x" * 65)]),
        ("GET", "/v1/verify", [("X-Original-URI", tampered), ("X-Request-Id", "deny-me")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("Cookie", "a=b; gw=\x7f; c=\xe9")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("Cookie", "CloudFront-Policy=x")]),
        ("GET", "/v1/verify", [("X-Original-URI", ip_uri), ("X-Forwarded-For", "203.0.113.9")]),
        ("GET", "/v1/verify", [("X-Original-URI", ip_uri), ("X-Forwarded-For", "198.51.100.1")]),
        ("GET", "/v1/verify", [("X-Original-URI", ip_uri), ("X-Forwarded-For", "1.1.1.1"), ("XFF", "")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("Expect", "100-continue")]),
        ("GET", "/v1/verify", [("X-Original-URI", seg), ("Expect", "something")]),
        ("GET", "/v1/verify", []),
        ("GET", "/v1/verify?x=1", []),
        ("GET", "/v1/verify?", [("X-Original-URI", seg)]),
        ("GET", "/v1/verify?x=1", [("X-Original-URI", seg)]),
        ("GET", "/v1/verify/", []),
        ("GET", "/v1/verify/", [("X-Original-URI", seg)]),
        ("GET", "/v1/verify" + uri, []),
        ("GET", "/v1/verify" + seg, []),
        ("HEAD", "/v1/verify" + seg, []),
        ("GET", "/v1/verify" + seg, [("X-Original-URI", seg)]),
        ("GET", "/v1/verify" + tampered, []),
        ("GET", "/v1/verify" + seg.replace("seg-1.ts", "%2e%2e/x.ts"), []),
        ("GET", "/v1/verify" + seg + "#frag", []),
        ("GET", "/v1/verify/" + seg, []),
        ("GET", "/v1/verify%2F" + seg.lstrip("/"), []),
        ("GET", "/v1/verifyx", [("X-Original-URI", seg)]),
        ("GET", "/v1/verify#x", [("X-Original-URI", seg)]),
        ("GET", "//v1/verify", [("X-Original-URI", seg)]),
        ("GET", "/V1/verify", [("X-Original-URI", seg)]),
        ("GET", "http://127.0.0.1/v1/verify", [("X-Original-URI", seg)]),
        ("POST", "/v1/verify", [("X-Original-URI", seg), ("Content-Length", "0")]),
        ("POST", "/v1/verify" + seg, [("Content-Length", "2")]),
        ("DELETE", "/v1/verify" + seg, []),
        ("PUT", "/v1/verify", [("X-Original-URI", seg)]),
        ("OPTIONS", "/v1/verify", [("X-Original-URI", seg)]),
        ("get", "/v1/verify", [("X-Original-URI", seg)]),
        ("CONNECT", "/v1/verify", [("X-Original-URI", seg)]),
        ("GET", "/healthz", []),
        ("GET", "/v1/media/m1", []),
    ]
    out = []
    for method, target, headers in cases:
        pairs = [("X-Forwarded-For", "203.0.113.9") if name == "XFF" else (name, value) for name, value in headers]
        lines = [f"{method} {target} HTTP/1.1", "Host: gw"] + [f"{name}: {value}" for name, value in pairs]
        body = "ok" if headers == [("Content-Length", "2")] else ""
        out.append(("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n" + body).encode("utf-8", "surrogateescape"))
    out.append(f"GET /v1/verify HTTP/1.0\r\nX-Original-URI: {seg}\r\n\r\n".encode())
    out.append(f"HEAD /v1/verify{seg} HTTP/1.0\r\n\r\n".encode())
    out.append(
        f"GET /v1/verify HTTP/1.0\r\nConnection: keep-alive\r\nX-Original-URI: {seg}\r\n\r\n"
        f"GET /v1/verify HTTP/1.1\r\nX-Original-URI: {seg}\r\nConnection: close\r\n\r\n".encode()
    )
    # Kept alive (HTTP/1.1's default): several answers on one connection, pipelined, the last one closing it.
    keep = [f"GET /v1/verify HTTP/1.1\r\nHost: gw\r\nX-Original-URI: {seg}\r\n\r\n",
            f"HEAD /v1/verify{seg} HTTP/1.1\r\nHost: gw\r\n\r\n",
            f"GET /v1/verify HTTP/1.1\r\nHost: gw\r\nX-Original-URI: {tampered}\r\n\r\n",
            f"GET /v1/verify HTTP/1.1\r\nHost: gw\r\nX-Original-URI: {seg}\r\nX-Request-Id: r-1\r\n\r\n",
            f"GET /v1/verify{seg} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"]  # fmt: skip
    out.append("".join(keep).encode())
    return out


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request's answer and what it left behind."""

    response: bytes
    verify_counts: dict[tuple[str, ...], int]
    decisions: tuple[int, int]
    log: list[str]


async def _records_after(world: World, seq: int) -> list[Any]:
    await world.services.behind.flush()
    return await world.services.store.audit.search(AuditQuery(event="url:redeemed", after_seq=seq, limit=1000))


async def _run(world: World, port: int, media: str, caplog: pytest.LogCaptureFixture) -> tuple[list[Seen], list[Any]]:
    services = world.services
    uri, ip_uri = await _sign(world, media), await _sign(world, media, "203.0.113.9")
    last = max((r.seq or 0 for r in await _records_after(world, 0)), default=0)
    seen = []
    for request in _requests(uri, ip_uri):
        counts, decisions = dict(services.metrics.verify.counts), services.verifier.decisions
        hits, misses = decisions.hits, decisions.misses
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gateway"):
            response = await _exchange(port, request)
        after = services.metrics.verify.counts
        seen.append(Seen(
            response=_normalised(response),
            verify_counts={key: n - counts.get(key, 0) for key, n in after.items() if n != counts.get(key, 0)},
            decisions=(decisions.hits - hits, decisions.misses - misses),
            log=[_normalised(r.getMessage().encode()).decode() for r in caplog.records
                 if r.name.startswith("gateway")],
        ))  # fmt: skip
    records = [(r.kid, r.client_ip, r.user_agent, r.actor, _normalised((r.request_id or "").encode()))
               for r in await _records_after(world, last)]  # fmt: skip
    return seen, records


async def test_the_direct_path_answers_as_the_router_and_middlewares_do(
    served: tuple[World, TestClient, int], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _, port = served
    taken: list[bool] = []
    takes = direct.takes

    def counted(request: Any) -> bool:
        taken.append(takes(request))
        return taken[-1]

    monkeypatch.setattr(direct, "takes", counted)
    fast, fast_records = await _run(world, port, "m1", caplog)
    monkeypatch.setattr(direct, "takes", lambda request: False)
    slow, slow_records = await _run(world, port, "m2", caplog)
    for index, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert a == b, f"request {index}: {_requests('/U', '/I')[index]!r}"
    assert fast_records == slow_records
    assert sum(taken) >= 30  # the direct path did answer most of them
    if world.services.config.tls_require_client_cert != ("verify",):  # else every verify answer is that 403
        assert sum(s.response.startswith(b"HTTP/1.1 200") for s in fast) >= 3
        assert fast_records  # first redemptions were recorded
