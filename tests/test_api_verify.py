"""GET /v1/verify for nginx auth_request and Envoy ext_authz, and instant revocation."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.audit.records import AuditEvent, AuditRecord, url_digest
from gateway.config import Config
from gateway.model import Permission
from gateway.signing.dialects.base import SignRequest
from gateway.store.base import AuditQuery
from gateway.web.app import create_app
from tests.audit_support import db, verify
from tests.support import ADMIN, Clock, World


@pytest.fixture
async def signed(world: World, client: TestClient) -> tuple[World, str]:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "scope": "prefix"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    url = (await response.json())["url"]
    return world, url.removeprefix("https://cdn.example.com")


async def _verify(client: TestClient, uri: str, **headers: str) -> int:
    response = await client.get("/v1/verify", headers={"X-Original-URI": uri, **headers})
    if response.status != 200:
        assert (await response.json()) == {"error": "denied", "message": "the signed URL is not valid"}
    return response.status


async def test_nginx_style_allow_and_deny(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    assert await _verify(client, uri) == 200
    assert await _verify(client, uri.replace("master.m3u8", "seg-1.ts")) == 200
    assert await _verify(client, uri.replace("/v/m1/", "/v/m10/")) == 403
    assert await _verify(client, uri.replace("gw_exp=", "gw_exp=1")) == 403
    assert await _verify(client, "/v/m1/master.m3u8") == 403
    assert await _verify(client, "garbage") == 403
    world.clock.advance(361)  # the cache window, then the default ttl
    assert await _verify(client, uri) == 403


async def test_envoy_style_path_prefix(client: TestClient, signed: tuple[World, str]) -> None:
    _, uri = signed
    assert (await client.get("/v1/verify" + uri)).status == 200
    assert (await client.head("/v1/verify" + uri)).status == 200
    assert (await client.post("/v1/verify" + uri.replace("gw_sig=", "gw_sig=x"))).status == 403


async def test_no_uri_is_a_clear_400(client: TestClient, signed: tuple[World, str]) -> None:
    response = await client.get("/v1/verify")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_unknown_profile_header_is_denied(client: TestClient, signed: tuple[World, str]) -> None:
    _, uri = signed
    assert await _verify(client, uri, **{"X-Gateway-Profile": "nope"}) == 403


async def test_revocation_applies_to_the_next_request(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    kid = uri.split("gw_kid=")[1].split("&")[0]
    assert await _verify(client, uri) == 200
    await world.services.admin.revoke_key(ADMIN, kid, "laptop stolen", world.clock())
    assert await _verify(client, uri) == 403
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 403


async def test_revocation_by_another_connection_is_seen(client: TestClient, signed: tuple[World, str]) -> None:
    """A revocation committed elsewhere (gatewayctl, another replica) applies without restart, at the server's
    next poll of the change feed (every 5 ms on SQLite)."""
    import asyncio
    import time

    from gateway.services import open_services

    world, uri = signed
    kid = uri.split("gw_kid=")[1].split("&")[0]
    assert (await client.get("/readyz")).status == 200  # reads after a probe still see others' commits
    assert await _verify(client, uri) == 200
    other = await open_services(world.services.config, clock=world.clock)
    try:
        await other.admin.revoke_key(ADMIN, kid, "compromised", world.clock())
    finally:
        await other.close()
    revoked = time.monotonic()
    while await _verify(client, uri) != 403:
        assert time.monotonic() - revoked < 0.5, "the revocation did not reach the server within 0.5 s"
        await asyncio.sleep(0.001)


async def test_disabled_principal_urls_stop_verifying(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    assert await _verify(client, uri) == 403


async def test_rotation_keeps_old_urls_valid(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    await world.services.admin.rotate_key(ADMIN, "web", world.clock())
    assert await _verify(client, uri) == 200


async def test_ip_bound_url_uses_forwarded_for_only_from_trusted_proxies(
    client: TestClient, signed: tuple[World, str]
) -> None:
    world, _ = signed
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "client_ip": "203.0.113.9"}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    uri = url.removeprefix("https://cdn.example.com")
    # the test client connects from 127.0.0.1, which init's config trusts as a proxy
    assert await _verify(client, uri, **{"X-Forwarded-For": "203.0.113.9"}) == 200
    assert await _verify(client, uri, **{"X-Forwarded-For": "198.51.100.1"}) == 403
    assert await _verify(client, uri) == 403


@pytest.mark.parametrize("bound", ["::ffff:203.0.113.9", "::ffff:203.0.113.0/120"])
async def test_a_url_bound_to_an_ipv4_mapped_address_verifies_from_that_client(
    client: TestClient, signed: tuple[World, str], bound: str
) -> None:
    """Red team round 5: a backend on a dual-stack socket sees its viewers as ::ffff:a.b.c.d; a URL bound that way
    carried gw_ip=::ffff:cb00:7109/128, while verify resolves that client to 203.0.113.9: never usable."""
    world, _ = signed
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "client_ip": bound}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    expected = "203.0.113.9/32" if bound.endswith(".9") else "203.0.113.0/24"
    assert f"gw_ip={expected}&" in url
    uri = url.removeprefix("https://cdn.example.com")
    for client_address in ("203.0.113.9", "::ffff:203.0.113.9"):
        assert await _verify(client, uri, **{"X-Forwarded-For": client_address}) == 200
    assert await _verify(client, uri, **{"X-Forwarded-For": "198.51.100.1"}) == 403


async def test_redemptions_are_logged_once_per_token_and_network(client: TestClient, signed: tuple[World, str]) -> None:
    world, uri = signed
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.1", "203.0.113.5"):
        assert await _verify(client, uri, **{"X-Forwarded-For": ip}) == 200
    await world.services.behind.flush()  # written behind: within a second, not before the answer
    redeemed = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert [r.client_ip for r in redeemed] == ["198.51.100.0/24", "203.0.113.0/24"]
    assert all(r.kid and r.expires_at for r in redeemed)


async def test_a_redemption_that_cannot_be_logged_yet_is_kept_until_it_can(
    client: TestClient, signed: tuple[World, str]
) -> None:
    """Issue 18, decision 5: verify does not wait for the redemption's fsync (it was 503 when that failed);
    the record is written behind and survives a failed commit to be written when the database is back."""
    import sqlite3

    from gateway.store.base import AuditQuery

    world, uri = signed
    conn = sqlite3.connect(world.services.config.sqlite_path, isolation_level=None)
    conn.execute("CREATE TRIGGER audit_fails BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    response = await client.get("/v1/verify", headers={"X-Original-URI": uri, "X-Forwarded-For": "192.0.2.1"})
    assert response.status == 200
    await world.services.behind.flush()  # fails for the audit record: it stays queued (with its raw-log entry)
    assert world.services.behind.waiting() == 1  # what the database took (the other raw-log entry) is written
    conn.execute("DROP TRIGGER audit_fails")
    conn.close()
    await world.services.behind.flush()
    [redeemed] = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert redeemed.client_ip == "192.0.2.0/24"
    assert world.services.behind.waiting() == 0 and world.services.behind.dropped == {"raw": 0, "redemption": 0}


async def _reason(client: TestClient, caplog: pytest.LogCaptureFixture, uri: str) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.get("/v1/verify", headers={"X-Original-URI": uri})
    denials = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    return response.status, denials[-1] if denials else ""


async def test_an_absolute_uri_is_verified_on_the_profiles_own_host(
    config: Config, clock: Clock, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The host of an absolute-form X-Original-URI is the client's text: only its path and query count.

    Cloud CDN signs the host, and one key may serve several hosts: a URL signed for another
    property must not verify here because the client wrote that host into the request line.
    """
    from tests.dialect_fixtures import open_deployment, origin_form
    from tests.security.test_path_escape import prefix_token, verify

    world = await open_deployment(config.data_dir, clock)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    try:
        url = (await prefix_token(client, world, "gcdn", scope="path"))["url"]
        assert url.startswith("https://gcdn.example.com/")
        assert await verify(client, caplog, url, "gcdn") == (200, "")
        assert await verify(client, caplog, origin_form(url), "gcdn") == (200, "")
        google = world.services.profiles.get("gcdn").dialect
        [key] = [k for k in await world.services.store.keys.all("web") if k.external_id == "my-key"]
        material = await world.services.keyring.verification_material(key, "my-key")
        other = SignRequest("https://other-property.example/v/a/master.m3u8", int(clock()) + 300)
        elsewhere = google.sign(other, material).url
        assert await verify(client, caplog, elsewhere, "gcdn") == (403, "bad-signature")
    finally:
        await client.close()  # the app's shutdown uses the services: close it first
        await world.services.close()


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://[::1/v/m1/master.m3u8?gw_exp=1", "malformed"),  # unterminated IPv6 host: the host is dropped
        ("http://[::1]x/v/m1/master.m3u8?gw_exp=1", "malformed"),
        ("/v/m1/master.m3u8?gw_exp=1&x=[", "malformed"),
        ("/v/m1/m\u00e4ster.m3u8?gw_exp=1", "malformed"),  # non-ASCII
        ("/v/m1/master.m3u8?x=\u00e4", "malformed"),
        ("garbage", "non-canonical-path"),
        ("https://cdn.example.com", "non-canonical-path"),
        ("//evil.example/v/m1/master.m3u8", "non-canonical-path"),
        ("/v/m1/master.m3u8#/../../m2/x", "malformed"),  # a fragment: never sent by a client
    ],
)
async def test_a_malformed_original_uri_is_a_clean_deny(
    client: TestClient, signed: tuple[World, str], caplog: pytest.LogCaptureFixture, uri: str, reason: str
) -> None:
    assert await _reason(client, caplog, uri) == (403, reason)


async def test_each_signed_url_gets_its_first_redemption_logged_even_with_the_same_key_and_expiry(
    client: TestClient, world: World
) -> None:
    """Red team: redemptions were remembered by (key, expiry, network), so two URLs a key signed in the same second
    (two items' page redirects) shared one record and the second item's use went unlogged."""
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    uris = []
    for media_id in ("m1", "m2"):
        await world.media(media_id)
        body = {"media_id": media_id, "rendition": "video", "viewer": {"id": "alice"}}
        response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
        uris.append((await response.json())["url"].removeprefix("https://cdn.example.com"))
    for uri in uris * 2:
        assert await _verify(client, uri) == 200
    await world.services.behind.flush()
    redeemed = [r for r in await world.services.store.audit.tail(10) if r.event.value == "url:redeemed"]
    assert len(redeemed) == 2 and len({r.url_sha256 for r in redeemed}) == 2
    assert {r.user_agent for r in redeemed} == {None}  # no subject to seal it under: kept in the raw log only


async def test_a_new_url_s_redemption_is_recorded_exactly_and_the_log_still_verifies(
    client: TestClient, world: World
) -> None:
    """Every field of a first redemption's record and its raw entry (issue 18 builds the record without
    AuditRecord's __init__), and ``audit verify`` over the log it joined, checkpointed."""
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    signed = await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json()
    uri = signed["url"].removeprefix("https://cdn.example.com")
    headers = {"User-Agent": "player/1", "X-Request-Id": "req-verify-1"}
    assert await _verify(client, uri, **headers) == 200
    await world.services.behind.flush()
    [record] = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert record == AuditRecord(
        time=world.clock(), event=AuditEvent.URL_REDEEMED, actor="web", request_id="req-verify-1",
        kid=signed["kid"], url_sha256=url_digest(signed["url"]), expires_at=signed["expires_at"], decision="allow",
        client_ip="127.0.0.0/24", detail={"profile": "native"}, retention="viewer", seq=record.seq,
    )  # fmt: skip
    raw = db(world.services).execute(
        "SELECT time, request_id, kid, client_ip, user_agent FROM raw_log WHERE event = 'url:redeemed'"
    )
    assert raw.fetchall() == [(world.clock(), "req-verify-1", signed["kid"], "127.0.0.1", "player/1")]
    await world.services.checkpointer.write(world.clock())
    report = await verify(world.services)
    assert report.ok and report.records == record.seq, report.problem


async def _method_reason(
    client: TestClient, caplog: pytest.LogCaptureFixture, method: str, path: str, **headers: str
) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.request(method, path, headers=headers)
    denials = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    return response.status, denials[-1] if denials else ""


DENIED = (403, "method-not-allowed")


@pytest.mark.parametrize("method", ["DELETE", "PUT", "POST", "PATCH", "PROPFIND", "OPTIONS", "get", "Get"])
async def test_a_valid_url_is_refused_for_any_method_but_a_read(
    client: TestClient, signed: tuple[World, str], caplog: pytest.LogCaptureFixture, method: str
) -> None:
    _, uri = signed
    named = {"X-Original-URI": uri, "X-Original-Method": method}  # nginx: the auth subrequest names it
    assert await _method_reason(client, caplog, "GET", "/v1/verify", **named) == DENIED
    if method.isupper():  # Envoy: the check request's own method (aiohttp's client upper-cases one)
        assert await _method_reason(client, caplog, method, "/v1/verify" + uri) == DENIED
        # a header cannot widen what the request's own method refuses
        widening = {"X-Original-Method": "GET"}
        assert await _method_reason(client, caplog, method, "/v1/verify" + uri, **widening) == DENIED
        assert await _method_reason(client, caplog, method, "/v1/verify", **{"X-Original-URI": uri}) == DENIED


async def test_reads_pass_and_the_method_refusal_is_counted(
    client: TestClient, signed: tuple[World, str], caplog: pytest.LogCaptureFixture
) -> None:
    world, uri = signed
    for method in ("GET", "HEAD"):
        assert await _method_reason(client, caplog, method, "/v1/verify" + uri) == (200, "")
        named = {"X-Original-URI": uri, "X-Original-Method": method}
        assert await _method_reason(client, caplog, "GET", "/v1/verify", **named) == (200, "")
    counted = 'reason="method-not-allowed"'
    assert counted not in world.services.metrics.exposition().decode()
    named = {"X-Original-URI": uri, "X-Original-Method": "DELETE"}
    assert await _method_reason(client, caplog, "GET", "/v1/verify", **named) == DENIED
    assert counted in world.services.metrics.exposition().decode()
