"""The edge feed (GET /v1/edge/state) and redemption reports (POST /v1/edge/redemptions) through the app.

Who may call (a bearer token, or off: 404), what a full state and a delta hold, the long poll answering as
soon as the view moves, HMAC secrets never sent without mutual TLS, a stale view never passed on as
current, and reported first uses recorded as /v1/verify records them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from gateway.config import ConfigError, load_config
from gateway.edge.feed import ChangeLog
from gateway.errors import Unauthenticated
from gateway.keys.material import b64url
from gateway.model import KeyAlgorithm, Permission, PrincipalKind, Visibility
from gateway.services import open_services
from gateway.store.base import AuditQuery
from gateway.web.app import create_app
from gateway.web.clientcert import certificate_names
from gateway.web.edge import _authorise
from tests.http_support import raw_http
from tests.support import ADMIN, Clock, World, init_data_dir

TOKEN = "edge-feed-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def edge(
    tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[TestClient, World]]:
    """The app with [edge] as the (indirect) parameter; a principal 'web' with an Ed25519 and an HMAC key."""
    config = await asyncio.to_thread(init_data_dir, tmp_path)
    (tmp_path / "keys" / "edge.token").write_text(TOKEN + "\n")
    with (tmp_path / "gateway.toml").open("a") as toml:
        toml.write("\n[edge]\n" + getattr(request, "param", 'token_file = "keys/edge.token"') + "\n")
    services = await open_services(load_config(config.data_dir, environ={}), clock=Clock())
    world = World(services, services.clock)  # type: ignore[arg-type]
    await world.principal("web", Permission.SIGN)
    await services.admin.create_key(ADMIN, "web", KeyAlgorithm.HMAC_SHA256, services.clock())
    client = await aiohttp_client(create_app(services, close_services=False))
    yield client, world
    await client.close()
    await services.close()


async def _state(client: TestClient, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/v1/edge/state{query}", headers=AUTH)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_the_feed_needs_its_token(edge: tuple[TestClient, World]) -> None:
    client, _ = edge
    assert (await client.get("/v1/edge/state")).status == 401
    wrong = await client.get("/v1/edge/state", headers={"Authorization": "Bearer edge-feed-token-000000000"})
    assert (wrong.status, (await wrong.json())["error"]) == (401, "unauthenticated")
    assert (await client.post("/v1/edge/redemptions", json={"redemptions": []})).status == 401


@pytest.mark.parametrize("edge", ["max_wait = 5"], indirect=True)
async def test_the_feed_is_off_without_a_token_or_mutual_tls(edge: tuple[TestClient, World]) -> None:
    client, _ = edge
    assert (await client.get("/v1/edge/state", headers=AUTH)).status == 404


async def test_the_full_state_has_public_halves_and_no_hmac_secret(edge: tuple[TestClient, World]) -> None:
    client, world = edge
    state = await _state(client)
    view = world.services.state.view
    keys = {key["kid"]: key for key in state["keys"]}
    by_algorithm = {key["algorithm"]: key for key in keys.values() if key["principal"] == "web"}
    ed = view.keys[by_algorithm["ed25519"]["kid"]]
    assert by_algorithm["ed25519"] == {
        "kid": ed.kid, "algorithm": "ed25519", "principal": "web", "not_after": None, "revoked": False,
        "public": b64url(ed.public_key or b""),
    }  # fmt: skip
    assert "secret" not in by_algorithm["hmac-sha256"]  # only over mutual TLS, and only when enabled
    assert (state["version"], state["full"]) == (view.seq, True)
    assert {"id": "web", "disabled": False} in state["principals"]
    assert state["revocations"] == {"links": [], "grants": []}
    assert state["max_expiry_ahead"] == 3600 + 60 + 60


async def test_a_delta_names_what_changed_since_the_version(edge: tuple[TestClient, World]) -> None:
    client, world = edge
    version = (await _state(client))["version"]
    assert await _state(client, f"?since={version}") == {
        "version": version, "full": False, "age": pytest.approx(0, abs=5), "max_expiry_ahead": 3720,
        "keys": [], "principals": [],
    }  # fmt: skip
    kid = next(k for k in world.services.state.view.keys_of("web") if k.algorithm is KeyAlgorithm.ED25519).kid
    await world.services.admin.revoke_key(ADMIN, kid, "leaked", world.clock())
    await world.media("m1", visibility=Visibility.UNLISTED)
    await world.services.admin.revoke_links(ADMIN, "m1", "leaked", world.clock())
    delta = await _state(client, f"?since={version}")
    assert delta["full"] is False and [(k["kid"], k["revoked"]) for k in delta["keys"]] == [(kid, True)]
    at = world.clock()
    assert sorted(delta["revocations"]["links"]) == [["/t/m1.jpg", False, at], ["/v/m1/", True, at],
                                                     ["/v/m1/master.m3u8", False, at]]  # fmt: skip


async def test_the_long_poll_answers_as_soon_as_the_view_moves(edge: tuple[TestClient, World]) -> None:
    client, world = edge
    version = (await _state(client))["version"]
    waiting = asyncio.ensure_future(_state(client, f"?since={version}&wait=5"))
    await asyncio.sleep(0)
    assert not waiting.done()
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    delta = await asyncio.wait_for(waiting, 5)
    assert delta["principals"] == [{"id": "web", "disabled": True}] and delta["version"] > version


async def test_a_since_the_gateway_cannot_answer_gets_the_full_state(edge: tuple[TestClient, World]) -> None:
    client, world = edge
    world.services.edge_changes.reset(world.services.state.view.seq)  # as after a restart
    assert (await _state(client, "?since=1"))["full"] is True
    assert (await _state(client, "?since=999999"))["full"] is True  # another replica's future: start again


async def test_a_stale_view_is_never_passed_on_as_current(
    edge: tuple[TestClient, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, world = edge
    monkeypatch.setattr(world.services.state, "current", lambda: False)  # the store unreachable for a while
    response = await client.get("/v1/edge/state", headers=AUTH)
    assert (response.status, (await response.json())["error"]) == (503, "state_stale")


@pytest.mark.parametrize("query", ["?since=x", "?since=-1", "?wait=99", "?wait=nan"])
async def test_bad_parameters_are_a_400(edge: tuple[TestClient, World], query: str) -> None:
    client, _ = edge
    response = await client.get(f"/v1/edge/state{query}", headers=AUTH)
    assert response.status == 400


async def test_reported_first_uses_are_recorded_once_per_token_and_network(edge: tuple[TestClient, World]) -> None:
    client, world = edge
    await world.media("m1", visibility=Visibility.UNLISTED)
    body = {"media_id": "m1", "rendition": "video", "scope": "prefix"}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    uri = url.removeprefix("https://cdn.example.com")
    reports = [
        {"url": uri, "client_ip": "198.51.100.7", "at": world.clock()},
        {"url": uri.replace("master.m3u8", "seg-1.ts"), "client_ip": "198.51.100.9", "at": world.clock()},
        {"url": uri, "client_ip": "203.0.113.5", "at": world.clock()},
        {"url": "/v/m1/master.m3u8?gw_kid=gwk_unknown", "client_ip": "203.0.113.5", "at": world.clock()},
        {"url": uri, "client_ip": "not-an-address", "at": world.clock()},
    ]
    response = await client.post("/v1/edge/redemptions", json={"redemptions": reports}, headers=AUTH)
    assert await response.json() == {"recorded": 2, "repeated": 1, "refused": 2}
    await world.services.behind.flush()  # redemptions are written behind, as at /v1/verify
    records = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert sorted(r.client_ip or "" for r in records) == ["198.51.100.0/24", "203.0.113.0/24"]


def test_the_change_log_forgets_the_oldest_and_says_so() -> None:
    log = ChangeLog(capacity=2)
    log.reset(10)
    for seq in (11, 12, 13):
        log.add(seq, "key", f"k{seq}")
    assert log.since(10) is None  # 11 was forgotten
    assert log.since(11) == [(12, "key", "k12"), (13, "key", "k13")]
    assert log.since(13) == []


async def test_a_report_from_long_ago_or_from_the_future_writes_nothing(edge: tuple[TestClient, World]) -> None:
    """An edge reports first uses within a second or so: a report dated an hour back or ahead of the clock's skew
    would put a forged time into the audit log, so it is refused."""
    client, world = edge
    await world.media("m1", visibility=Visibility.UNLISTED)
    body = {"media_id": "m1", "rendition": "video", "scope": "prefix"}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    world.clock.advance(3600)  # an hour after it was issued: "an hour ago" is when it was issued
    uri, now = url.removeprefix("https://cdn.example.com"), world.clock()
    fresh = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    reports = [
        {"url": uri, "client_ip": "198.51.100.7", "at": 1.0},
        {"url": uri, "client_ip": "198.51.100.8", "at": now - 3601},
        {"url": uri, "client_ip": "198.51.100.9", "at": now + 6},
        {"url": uri, "client_ip": "203.0.113.5", "at": 32503680000.0},  # the year 3000
    ]
    response = await client.post("/v1/edge/redemptions", json={"redemptions": reports}, headers=AUTH)
    assert await response.json() == {"recorded": 0, "repeated": 0, "refused": 4}
    assert await world.services.store.audit.search(AuditQuery(event="url:redeemed")) == []
    within = [
        {"url": uri, "client_ip": "198.51.100.7", "at": now - 3600},
        {"url": fresh.removeprefix("https://cdn.example.com"), "client_ip": "203.0.113.5", "at": now + 5},
    ]
    response = await client.post("/v1/edge/redemptions", json={"redemptions": within}, headers=AUTH)
    assert await response.json() == {"recorded": 2, "repeated": 0, "refused": 0}


def _peer(cert: dict[str, Any] | None) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: cert if name == "peercert" else default
    request = make_mocked_request("GET", "/v1/edge/state", transport=transport)
    return request


BACKEND_CERT = {"subject": ((("commonName", "backend"),),), "subjectAltName": (("DNS", "backend.internal"),)}
NGINX_CERT = {"subject": ((("commonName", "nginx"),),)}
SAN_CERT = {"subject": ((("organizationName", "edge"),),), "subjectAltName": (("DNS", "nginx"),)}


def test_the_names_of_a_certificate_are_its_common_and_dns_names() -> None:
    assert certificate_names(_peer(BACKEND_CERT)) == {"backend", "backend.internal"}
    assert certificate_names(_peer(SAN_CERT)) == {"nginx"}
    assert certificate_names(_peer(None)) == frozenset()


@pytest.mark.parametrize(
    ("cert", "over_mtls"), [(NGINX_CERT, True), (SAN_CERT, True), (BACKEND_CERT, None), (None, None)]
)
def test_over_mutual_tls_only_the_edges_certificate_reads_the_feed(
    tmp_path: Path, cert: dict[str, Any] | None, over_mtls: bool | None
) -> None:
    """The CA vouches for backends and proxies too: a backend's certificate must not read HMAC secrets."""
    init_data_dir(tmp_path)
    mtls = {"edge_mtls": True, "edge_client_names": ("nginx",), "edge_hmac_secrets": True}
    config = dataclasses.replace(load_config(tmp_path, environ={}), **mtls)
    services = mock.Mock(config=config, edge_token=None)
    if over_mtls is None:
        with pytest.raises(Unauthenticated, match=r"a client certificate named in edge\.client_names"):
            _authorise(_peer(cert), services)
    else:
        assert _authorise(_peer(cert), services) is over_mtls


def test_mutual_tls_for_the_feed_names_the_edges_certificate(tmp_path: Path) -> None:
    init_data_dir(tmp_path)
    with (tmp_path / "gateway.toml").open("a") as toml:
        toml.write('\n[tls]\ncert_file = "c.pem"\nkey_file = "k.pem"\nclient_ca_file = "ca.pem"\n[edge]\nmtls = true\n')
    with pytest.raises(ConfigError, match=r"edge.mtls needs edge.client_names"):
        load_config(tmp_path, environ={})


@pytest.mark.parametrize("token", [b"\xff\xfe", b"\xc3(" + TOKEN.encode(), TOKEN.encode() + b"\x80"])
async def test_a_token_that_is_not_utf8_is_refused_as_unauthenticated(
    edge: tuple[TestClient, World], token: bytes
) -> None:
    """Bytes aiohttp cannot decode reach the check as lone surrogates: it answered 500 with a traceback."""
    client, _ = edge
    for path in (b"/v1/edge/state", b"/v1/edge/redemptions"):
        method = b"GET" if path.endswith(b"state") else b"POST"
        answer = await raw_http(client.port, method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                + token + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")  # fmt: skip
        assert (answer.status, answer.json()["error"]) == (401, "unauthenticated")


async def test_a_report_records_only_what_the_key_really_signed(edge: tuple[TestClient, World]) -> None:
    """Holding the edge's token must not let a caller write made-up first uses against a key: each reported URL's
    signature is checked (as of when the edge allowed it) before anything is recorded (red team N2)."""
    client, world = edge
    await world.media("m1", visibility=Visibility.UNLISTED)
    await world.media("m2", visibility=Visibility.UNLISTED)
    signed = await client.post("/v1/sign", json={"media_id": "m1", "rendition": "video"}, headers=world.auth("web"))
    uri, now = (await signed.json())["url"].removeprefix("https://cdn.example.com"), world.clock()
    body = {"media_id": "m1", "rendition": "video", "client_ip": "198.51.100.7"}
    bound = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    bound_uri = (await bound.json())["url"].removeprefix("https://cdn.example.com")
    signature = uri.rsplit("gw_sig=", 1)[1]
    expires = int(uri.split("gw_exp=", 1)[1].split("&", 1)[0])
    forged = [
        {"url": uri.replace(signature, signature[::-1]), "client_ip": "198.51.100.7", "at": now},  # not its signature
        {"url": uri.replace("/v/m1/", "/v/m2/"), "client_ip": "198.51.100.7", "at": now},  # another media's path
        {"url": uri, "client_ip": "198.51.100.7", "at": float(expires)},  # allowed after it expired
        {"url": bound_uri, "client_ip": "203.0.113.5", "at": now},  # bound to another address
        {"url": uri, "client_ip": "2001:db8::1%\u0000", "at": now},  # a zone id: arbitrary text in the address
        {"url": uri + "#0", "client_ip": "198.51.100.7", "at": now},  # another spelling of the same URL, each...
        {"url": "https://evil.example" + uri, "client_ip": "198.51.100.7", "at": now},  # ...a first use of its own
        {"url": "@evil" + uri, "client_ip": "198.51.100.7", "at": now},
        {"url": uri, "client_ip": "198.51.100.7", "at": now - 61},  # allowed before it was issued
    ]
    response = await client.post("/v1/edge/redemptions", json={"redemptions": forged}, headers=AUTH)
    assert await response.json() == {"recorded": 0, "repeated": 0, "refused": len(forged)}
    kid = uri.split("gw_kid=", 1)[1].split("&", 1)[0]
    await world.services.admin.revoke_key(ADMIN, kid, "compromised", world.clock())
    genuine = [
        {"url": uri, "client_ip": "198.51.100.7", "at": now},
        {"url": bound_uri, "client_ip": "198.51.100.7", "at": now},
    ]
    response = await client.post("/v1/edge/redemptions", json={"redemptions": genuine}, headers=AUTH)
    assert await response.json() == {"recorded": 2, "repeated": 0, "refused": 0}  # used before the revocation
    world.clock.advance(6)  # longer after the revocation than an edge's state may lag: no edge allowed this
    late = [{"url": uri, "client_ip": "203.0.113.5", "at": world.clock()}]
    response = await client.post("/v1/edge/redemptions", json={"redemptions": late}, headers=AUTH)
    assert await response.json() == {"recorded": 0, "repeated": 0, "refused": 1}
    await world.services.behind.flush()
    records = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert [(r.kid, r.client_ip) for r in records] == [(kid, "198.51.100.0/24")] * 2


def _spellings(uri: str) -> list[str]:
    """One signed URL, spelled as its verifiers accept it: as issued, its parameters reversed, empty '&' parts."""
    path, query = uri.split("?", 1)
    pairs = query.split("&")
    return [uri, f"{path}?{'&'.join(reversed(pairs))}", f"{path}?&{query}&&", f"{path}?{'&&'.join(pairs)}"]


async def _signed(client: TestClient, world: World, **body: object) -> str:
    response = await client.post("/v1/sign", json={"rendition": "video", **body}, headers=world.auth("web"))
    assert response.status == 200, await response.text()
    url: str = (await response.json())["url"]
    return url.removeprefix("https://cdn.example.com")


async def _redeemed(world: World) -> list[str]:
    await world.services.behind.flush()
    return [r.kid or "" for r in await world.services.store.audit.search(AuditQuery(event="url:redeemed"))]


async def test_one_url_however_spelled_is_one_first_use_at_verify_and_from_the_edge(
    edge: tuple[TestClient, World],
) -> None:
    """The signature covers the parameters, not their order or empty '&' parts: each spelling verifies, and each
    must count as the one URL it is, or anyone could write a first use per spelling (red team round 8, F1)."""
    client, world = edge
    await world.media("m1", visibility=Visibility.UNLISTED)
    plain, prefix = (
        await _signed(client, world, media_id="m1"),
        await _signed(client, world, media_id="m1", scope="prefix"),
    )
    for uri in (plain, prefix.replace("master.m3u8", "seg-1.ts")):
        for spelled in _spellings(uri):
            response = await client.get("/v1/verify" + spelled, headers={"X-Forwarded-For": "198.51.100.7"})
            assert response.status == 200, spelled
    assert len(await _redeemed(world)) == 2  # one per token, from this network
    now = world.clock()
    reports = [{"url": s, "client_ip": "203.0.113.5", "at": now} for uri in (plain, prefix) for s in _spellings(uri)]
    response = await client.post("/v1/edge/redemptions", json={"redemptions": reports}, headers=AUTH)
    assert await response.json() == {"recorded": 2, "repeated": 6, "refused": 0}
    assert len(await _redeemed(world)) == 4


@pytest.mark.parametrize("ended", ["links revoked", "media deleted", "grant revoked", "key expired"])
async def test_a_use_reported_for_when_no_verifier_would_allow_it_is_refused(
    edge: tuple[TestClient, World], ended: str
) -> None:
    """Everything /v1/verify checks, as of the reported time: a use just after the URL stopped working (within an
    edge's lag) is still a use; one long after it is no use an edge allowed (red team round 8, F2)."""
    client, world = edge
    admin, clock = world.services.admin, world.clock
    await world.media("m1", visibility=Visibility.UNLISTED)
    if ended == "grant revoked":
        await world.principal("eng", Permission.SIGN, kind=PrincipalKind.ENGINEER)
        grant = await admin.add_grant(ADMIN, "eng", "m1", "ticket 1", 3600, clock())
        signed = await client.post("/v1/sign", json={"media_id": "m1", "rendition": "video"}, headers=world.auth("eng"))
        uri = (await signed.json())["url"].removeprefix("https://cdn.example.com")
        await admin.revoke_grant(ADMIN, grant.id, clock())
    elif ended == "key expired":
        await world.principal("short", Permission.SIGN, key=None)
        await admin.create_key(ADMIN, "short", KeyAlgorithm.ED25519, clock(), not_after=clock() + 30)
        await world.services.state.catch_up()
        signed = await client.post(
            "/v1/sign", json={"media_id": "m1", "rendition": "video"}, headers=world.auth("short")
        )
        uri = (await signed.json())["url"].removeprefix("https://cdn.example.com")
        clock.advance(30)
    else:
        uri = await _signed(client, world, media_id="m1")
        stop = admin.revoke_links(ADMIN, "m1", "leaked", clock()) if ended == "links revoked" else None
        await (stop or admin.delete_media(ADMIN, "m1", clock()))
    await world.services.state.catch_up()
    assert (await client.get("/v1/verify" + uri)).status == 403  # no verifier allows it now
    at = clock()
    late = [{"url": uri, "client_ip": "198.51.100.7", "at": at}, {"url": uri, "client_ip": "198.51.100.8", "at": at}]
    clock.advance(10)
    late[1]["at"] = clock()  # the second: 10 s after the end, beyond any edge's lag
    response = await client.post("/v1/edge/redemptions", json={"redemptions": late}, headers=AUTH)
    assert await response.json() == {"recorded": 1, "repeated": 0, "refused": 1}


async def test_a_use_dated_before_the_url_was_issued_is_refused(edge: tuple[TestClient, World]) -> None:
    """``gw_iat`` is the issue time rounded down to the cache window: a use before it is before the URL existed
    (beyond a few seconds of clock skew between the edge and the gateway; red team round 8, F3)."""
    client, world = edge
    await world.media("m1", visibility=Visibility.UNLISTED)
    world.clock.advance(40)  # inside a cache window: the URL's gw_iat lies before the issuance
    uri = await _signed(client, world, media_id="m1")
    issued = int(uri.split("gw_iat=", 1)[1].split("&", 1)[0])
    reports = [{"url": uri, "client_ip": f"198.51.100.{n}", "at": issued + offset}
               for n, offset in enumerate((-6, -4))]  # fmt: skip
    response = await client.post("/v1/edge/redemptions", json={"redemptions": reports}, headers=AUTH)
    assert await response.json() == {"recorded": 1, "repeated": 0, "refused": 1}
