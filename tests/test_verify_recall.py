"""A remembered decision answered by ``verify.recall`` (the direct path's synchronous allow) is refused at once
when anything it stood on changes: the same refusal, reason, metric and log line as a fresh verification.

Through the real server (``gateway.web.server.Runner``, direct path on) over real sockets. Each test first
shows the recall answering (a second request allowed without ``verify.decide``), then changes one thing and
expects the next request refused with the exact reason in the metrics and in the deny log line.
``tests/test_verify_direct.py`` compares whole answers with the direct path on and off.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.model import Permission, PrincipalKind, Rendition, SigningKey, Viewer, Visibility
from gateway.services import open_services
from gateway.signing.issuance import SignItem
from gateway.web import verify
from gateway.web.app import create_app
from tests.http_support import GatewayTestServer
from tests.support import ADMIN, Clock, World

BASE = "https://cdn.example.com"
Served = tuple[World, TestClient, SigningKey, list[str]]


@pytest.fixture
async def served(
    config: Config, clock: Clock, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Served]:
    """The world (principal ``web`` and its key, media m1), a client of the real server, and every URI
    ``verify.decide`` (the full path) was asked about."""
    services = await open_services(config, clock=clock)
    world = World(services, clock)
    key = await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    assert key is not None
    await world.media("m1")
    answered: list[str] = []
    full = verify.decide

    async def spied(request: Any, services: Any) -> Any:
        answered.append(request.headers.get("X-Original-URI", request.raw_path))
        return await full(request, services)

    monkeypatch.setattr(verify, "decide", spied)
    server = GatewayTestServer(create_app(services, close_services=False, checkpoints=False))
    await server.start_server()
    client = await aiohttp_client(server)
    yield world, client, key, answered
    await client.close()
    await services.close()


async def _sign(world: World, principal_id: str = "web", media: str = "m1", ip: str | None = None) -> str:
    """A prefix URL for ``media``: ``web`` signs on alice's behalf, anyone else for itself (eve, by a grant)."""
    principal = await world.services.store.principals.get(principal_id)
    assert principal is not None
    item = SignItem(media, Rendition.VIDEO, prefix=True, client_ip=ip)
    viewer = Viewer("alice", source="asserted") if principal_id == "web" else None
    [outcome] = await world.services.issuer.issue(principal, viewer, [item], ADMIN, world.clock())
    assert outcome.issued is not None
    return outcome.issued.url.removeprefix(BASE)


async def _ask(world: World, client: TestClient, uri: str, caplog: pytest.LogCaptureFixture,
               **headers: str) -> tuple[int, dict[tuple[str, ...], int], list[str]]:  # fmt: skip
    """(status, the verify metrics it added, its deny log lines)."""
    before = dict(world.services.metrics.verify.counts)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.get("/v1/verify", headers={"X-Original-URI": uri, **headers})
    after = world.services.metrics.verify.counts
    added = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    return response.status, added, [r.getMessage() for r in caplog.records if r.name == "gateway.verify"]


async def _remembered(world: World, client: TestClient, uri: str, answered: list[str],
                      caplog: pytest.LogCaptureFixture, **headers: str) -> None:  # fmt: skip
    """``uri``'s segments allowed: the first by the full path, the next ones by the recall alone."""
    first, second = uri.replace("master.m3u8", "seg1.ts"), uri.replace("master.m3u8", "seg2.ts")
    assert (await _ask(world, client, first, caplog, **headers))[0] == 200
    assert answered == [first]
    hits = world.services.verifier.decisions.hits
    assert (await _ask(world, client, second, caplog, **headers))[:2] == (200, {("allow", "ok"): 1})
    assert (await _ask(world, client, first, caplog, **headers))[0] == 200
    assert answered == [first]  # recalled: the full path was not asked
    assert world.services.verifier.decisions.hits == hits + 2


async def _refused(world: World, client: TestClient, uri: str, reason: str, caplog: pytest.LogCaptureFixture,
                   **headers: str) -> None:  # fmt: skip
    status, added, lines = await _ask(world, client, uri.replace("master.m3u8", "seg3.ts"), caplog, **headers)
    assert (status, added) == (403, {("deny", reason): 1})
    assert len(lines) == 1 and lines[0].endswith(f": {reason}")


Change = Callable[[World, SigningKey], Awaitable[Any]]


async def _revoke_key(world: World, key: SigningKey) -> None:
    await world.services.admin.revoke_key(ADMIN, key.kid, "leaked", world.clock())


async def _disable(world: World, key: SigningKey) -> None:
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())


async def _revoke_links(world: World, key: SigningKey) -> None:
    world.clock.advance(1)  # links revoked in a later second than the URL's issue
    await world.services.admin.revoke_links(ADMIN, "m1", "leaked playlist", world.clock())


async def _delete_media(world: World, key: SigningKey) -> None:
    world.clock.advance(1)
    await world.services.admin.delete_media(ADMIN, "m1", world.clock())


async def _expire_url(world: World, key: SigningKey) -> None:
    world.clock.advance(world.services.config.max_ttl + world.services.config.cache_window + 1)


@pytest.mark.parametrize(
    ("change", "reason"),
    [(_revoke_key, "key-revoked"), (_disable, "principal-disabled"), (_revoke_links, "links-revoked"),
     (_delete_media, "links-revoked"), (_expire_url, "expired")],
)  # fmt: skip
async def test_a_change_between_two_requests_refuses_the_recalled_decision(
    served: Served, caplog: pytest.LogCaptureFixture, change: Change, reason: str
) -> None:
    world, client, key, answered = served
    uri = await _sign(world)
    await _remembered(world, client, uri, answered, caplog)
    await change(world, key)
    await _refused(world, client, uri, reason, caplog)


async def test_a_grant_revoked_between_two_requests_refuses_the_recalled_decision(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world, client, _, answered = served
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.media("m2", owner="alice", visibility=Visibility.PRIVATE)
    grant = await world.services.admin.add_grant(ADMIN, "eve", "m2", "incident 7", 3600, world.clock())
    uri = await _sign(world, "eve", "m2")
    await _remembered(world, client, uri, answered, caplog)
    world.clock.advance(5)
    await world.services.admin.revoke_grant(ADMIN, grant.id, world.clock())
    await _refused(world, client, uri, "grant-revoked", caplog)


async def test_a_stale_view_refuses_the_recalled_decision(
    served: Served, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, client, _, answered = served
    uri = await _sign(world)
    await _remembered(world, client, uri, answered, caplog)
    monkeypatch.setattr(world.services.state, "current", lambda: False)
    await _refused(world, client, uri, "state-stale", caplog)


async def test_an_address_bound_url_is_recalled_for_its_address_only(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world, client, _, answered = served
    uri = await _sign(world, ip="203.0.113.9")  # the test's 127.0.0.1 is a trusted proxy (gatewayctl init)
    await _remembered(world, client, uri, answered, caplog, **{"X-Forwarded-For": "203.0.113.9"})
    await _refused(world, client, uri, "wrong-ip", caplog, **{"X-Forwarded-For": "198.51.100.1"})


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({"X-Original-Method": "POST"}, "method-not-allowed"), ({"X-Gateway-Profile": "nope"}, "profile-not-allowed"),
     ({"X-Original-Method": "get"}, "method-not-allowed")],
)  # fmt: skip
async def test_request_rules_refuse_a_remembered_decision(
    served: Served, caplog: pytest.LogCaptureFixture, headers: dict[str, str], reason: str
) -> None:
    world, client, _, answered = served
    uri = await _sign(world)
    await _remembered(world, client, uri, answered, caplog)
    await _refused(world, client, uri, reason, caplog, **headers)


async def test_a_first_redemption_from_a_new_network_is_recorded_by_the_full_path(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world, client, _, answered = served
    uri = await _sign(world)
    await _remembered(world, client, uri, answered, caplog, **{"X-Forwarded-For": "203.0.113.9"})
    segment = uri.replace("master.m3u8", "seg4.ts")
    assert (await _ask(world, client, segment, caplog, **{"X-Forwarded-For": "198.51.100.1"}))[0] == 200
    assert answered[-1] == segment  # a new network: the full path answered, and recorded it
    await world.services.behind.flush()
    assert (await _ask(world, client, segment, caplog, **{"X-Forwarded-For": "198.51.100.1"}))[0] == 200
    assert len(answered) == 2  # recorded for this network now: recalled
