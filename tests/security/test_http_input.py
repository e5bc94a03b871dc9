"""Hostile bytes at the HTTP edge, sent over a real socket: every answer is the JSON error body, never a 500,
never aiohttp's plain-text page, and nothing malformed reaches the audit log."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.model import Permission
from gateway.services import Services
from gateway.web.app import create_app
from tests.http_support import GatewayTestServer, raw_http
from tests.support import World

MALFORMED = "malformed HTTP request"


@pytest.fixture
async def live(services: Services, aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(GatewayTestServer(create_app(services, close_services=False)))


@pytest.fixture
async def web(world: World) -> World:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    await world.media("m1")
    return world


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("request_bytes", "message"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
         f"{MALFORMED}: the request line or a header is too long"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 9000 + b"\r\n\r\n",
         f"{MALFORMED}: the request line or a header is too long"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
         f"{MALFORMED}: the request line or a header is too long"),
        (b"GARBAGE\r\n\r\n", f"{MALFORMED}: the request line is malformed"),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", f"{MALFORMED}: the request line is malformed"),
        (b"POST /v1/sign HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", MALFORMED),
        (b"POST /v1/sign HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", MALFORMED),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", MALFORMED),
        (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", MALFORMED),
    ],
    ids=["long-header", "long-authorization", "long-request-line", "garbage", "http-9.9", "cl-and-te", "two-cl",
         "no-colon", "200-headers"],
)  # fmt: skip
async def test_what_aiohttp_refuses_itself_is_a_json_400(
    live: TestClient, caplog: pytest.LogCaptureFixture, request_bytes: bytes, message: str
) -> None:
    assert live.server.port is not None
    response = await raw_http(live.server.port, request_bytes)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"error": "invalid_request", "message": message}
    _no_tracebacks(caplog)


_NON_ASCII_TOKEN = b"Bearer eyJ\xff\xfe\xc3\xa9.e30.sig"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Authorization: " + _NON_ASCII_TOKEN + b"\r\n\r\n{}",
        b"GET /v1/media/m1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + _NON_ASCII_TOKEN + b"\r\n\r\n",
        b"GET /m/m1/video HTTP/1.1\r\nHost: x\r\nAuthorization: " + _NON_ASCII_TOKEN + b"\r\n\r\n",
        b"GET /m/m1/video HTTP/1.1\r\nHost: x\r\nCookie: gw_viewer=eyJ\xff\xfe.e30.sig\r\n\r\n",
        b"GET /m/m1/video HTTP/1.1\r\nHost: x\r\nCookie: gw_viewer=\xed\xa0\x80.e30.sig\r\n\r\n",
    ],
    ids=["sign", "media", "page-header", "page-cookie", "page-cookie-surrogate"],
)
async def test_non_ascii_tokens_are_a_json_401(
    live: TestClient, web: World, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    assert live.server.port is not None
    response = await raw_http(
        live.server.port, request_bytes.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    )
    assert response.status == 401
    assert response.json() == {"error": "unauthenticated", "message": "malformed token: not three base64url segments"}
    _no_tracebacks(caplog)


async def test_a_body_that_does_not_match_its_content_encoding_is_a_json_400(
    live: TestClient, web: World, caplog: pytest.LogCaptureFixture
) -> None:
    assert live.server.port is not None
    token = web.token("web").encode()
    request = (
        b"POST /v1/sign HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 4\r\nAuthorization: Bearer " + token + b"\r\n\r\nabcd"
    )
    response = await raw_http(live.server.port, request)
    assert response.status == 400
    assert response.json() == {
        "error": "invalid_request",
        "message": "the body could not be read: its encoding or framing is malformed",
    }
    _no_tracebacks(caplog)


BAD_IDS = ["a%1B%5B31mred", "a%0Aforged%20line", "a%00b", "%E2%80%AEevil", "a" * 129, "a%7Fb", "-leading-dash"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("media_id", BAD_IDS)
async def test_bad_media_ids_are_400_before_the_store_or_the_log(
    live: TestClient, web: World, method: str, media_id: str
) -> None:
    item = {"owner": "alice", "workspace": "w1", "visibility": "private", "renditions": {"video": "/v/x.m3u8"}}
    logged = len(await web.services.store.audit.tail(1000))
    response = await live.request(
        method, f"/v1/media/{media_id}", json=item if method == "PUT" else None, headers=web.auth("web")
    )
    assert response.status == 400
    body = await response.json()
    assert body == {"error": "invalid_request", "message": "media_id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -"}
    assert len(await web.services.store.audit.tail(1000)) == logged


@pytest.mark.e2e
async def test_gatewayctl_serve_answers_parse_errors_in_json(tmp_path: Path) -> None:
    """The real server process, not a test harness: ``serve`` must run the app behind the JSON-error Runner."""
    ctl = [sys.executable, "-m", "gateway.cli.main"]
    subprocess.run([*ctl, "init", "--data-dir", str(tmp_path)], check=True, capture_output=True)
    proc = subprocess.Popen([*ctl, "serve", "--data-dir", str(tmp_path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=30)
        port = int(re.search(r"serving on http://127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        response = await raw_http(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert (response.status, response.json()) == (
            400, {"error": "invalid_request", "message": f"{MALFORMED}: the request line or a header is too long"},
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


async def test_a_verify_path_with_an_encoded_line_break_is_denied_not_an_unknown_route(live: TestClient) -> None:
    """Found by schemathesis: the Envoy form's route did not match a tail with "%0A", answering 404."""
    response = await live.get("/v1/verify/v/a%0A.m3u8?gw_exp=1")
    assert response.status == 403
    assert await response.json() == {"error": "denied", "message": "the signed URL is not valid"}


async def test_a_nul_escape_in_a_json_viewer_token_is_a_401(live: TestClient, web: World) -> None:
    body = b'{"media_id": "m1", "rendition": "video", "viewer_token": "\\u0000eyJ.e30.x"}'
    headers = {**web.auth("web"), "Content-Type": "application/json"}
    response = await live.post("/v1/sign", data=body, headers=headers)
    assert response.status == 401
    assert await response.json() == {
        "error": "unauthenticated",
        "message": "malformed token: not three base64url segments",
    }


LONE_SURROGATE = "the body is not valid JSON: a string holds an unpaired UTF-16 surrogate escape: not Unicode text"


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/v1/sign", '{{"media_id": "m1", "rendition": "video", "viewer_token": "{s}eyJ.e30.x"}}'),
        ("PUT", "/v1/media/x", '{{"owner": "alice", "workspace": "w1", "visibility": "private", '
                               '"renditions": {{"video": "/v/x/a{s}.m3u8"}}}}'),
        ("POST", "/v1/media/m1/revoke-links", '{{"reason": "x{s}"}}'),
        ("POST", "/v1/sign", '{{"media_id": "m1", "rendition": "video", "viewer": {{"id": "a", "{s}": 1}}}}'),
    ],
    ids=["viewer-token", "media-path", "revoke-reason", "object-key"],
)  # fmt: skip
@pytest.mark.parametrize("escape", ["\\udd00", "\\ud800", "\\udfff", "\\uDCFF"])
async def test_a_lone_surrogate_anywhere_in_a_body_is_a_400_before_anything_else(
    live: TestClient, web: World, caplog: pytest.LogCaptureFixture, method: str, path: str, template: str, escape: str
) -> None:
    """JSON may spell a lone surrogate; no database or encoder takes one (red team: a 500 and a 503 with the
    database's message). aiohttp's headers never hold one, so only a body can send it."""
    headers = {**web.auth("web"), "Content-Type": "application/json"}
    response = await live.request(method, path, data=template.format(s=escape).encode(), headers=headers)
    assert (response.status, await response.json()) == (400, {"error": "invalid_request", "message": LONE_SURROGATE})
    _no_tracebacks(caplog)


async def test_a_surrogate_pair_is_text_and_accepted(live: TestClient, web: World) -> None:
    body = b'{"reason": "leaked \\ud83d\\ude00"}'
    headers = {**web.auth("web"), "Content-Type": "application/json"}
    response = await live.post("/v1/media/m1/revoke-links", data=body, headers=headers)
    assert response.status == 200
    [record] = [r for r in await web.services.store.audit.tail(2) if r.event.value == "media:links_revoked"]
    assert record.reason == "leaked \U0001f600"
