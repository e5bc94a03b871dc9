"""A grant's end is the URL's end (issue 17, finding 1).

Attack: an engineer with a 1-minute break-glass grant signs with ``ttl: 3600``; after the grant expires, or is
revoked, the prefix URL kept opening the private video for the hour. Now a URL issued under a grant expires no
later than the grant, and revoking the grant stops the URLs issued under it (their signed issue time against
the revocation: ``grant-revoked``), on every replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.errors import VerificationFailed
from gateway.model import Permission, PrincipalKind, Visibility
from gateway.services import Services, open_services
from gateway.signing.dialects.base import Redemption
from gateway.web.app import create_app
from tests.dialect_fixtures import open_deployment
from tests.support import ADMIN, Clock, World, init_data_dir

GRANT_SECONDS = 60


async def _engineer_with_grant(world: World, seconds: float = GRANT_SECONDS) -> str:
    """Engineer ``eve`` with a grant on alice's private item ``m1``; the grant's id."""
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.media("m1", owner="alice", visibility=Visibility.PRIVATE)
    grant = await world.services.admin.add_grant(ADMIN, "eve", "m1", "incident 7: break-glass", seconds, world.clock())
    return grant.id


async def _sign(client: TestClient, world: World, principal: str, **body: Any) -> tuple[int, dict[str, Any]]:
    request = {"media_id": "m1", "rendition": "video", **body}
    response = await client.post("/v1/sign", json=request, headers=world.auth(principal))
    return response.status, await response.json()


async def _reason(services: Services, url: str, at: float) -> str | None:
    """None when the verifier accepts ``url`` at ``at``, else its precise refusal."""
    redemption = Redemption(url, at, "127.0.0.1")
    try:
        await services.verifier.verify(redemption, services.profiles.get(None))
    except VerificationFailed as refused:
        return refused.reason
    return None


async def test_a_url_issued_under_a_grant_ends_with_the_grant(world: World, client: TestClient) -> None:
    await _engineer_with_grant(world)
    status, issued = await _sign(client, world, "eve", ttl=3600, scope="prefix")
    grant_ends = world.clock() + GRANT_SECONDS
    assert (status, issued["expires_at"]) == (200, int(grant_ends))
    segment = issued["url"].replace("master.m3u8", "seg1.ts")
    assert await _reason(world.services, segment, grant_ends - 1) is None
    assert await _reason(world.services, segment, grant_ends) == "expired"
    [record] = [r for r in await world.services.store.audit.tail(5) if r.event.value == "url:issued"]
    assert (record.expires_at, record.reason) == (int(grant_ends), "grant")


async def test_a_short_ttl_under_a_grant_is_kept(world: World, client: TestClient) -> None:
    await _engineer_with_grant(world, 120)
    status, issued = await _sign(client, world, "eve", ttl=30)
    assert (status, issued["expires_at"]) == (200, int(world.clock()) + 60 + 30)  # the cache window, then the ttl


async def test_revoking_the_grant_stops_its_urls_and_only_the_grantees(world: World, client: TestClient) -> None:
    grant_id = await _engineer_with_grant(world, seconds=3600)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    _, under_grant = await _sign(client, world, "eve", scope="prefix")
    _, owners = await _sign(client, world, "web", scope="prefix", viewer={"id": "alice"})
    world.clock.advance(5)
    await world.services.admin.revoke_grant(ADMIN, grant_id, world.clock())
    for url in (under_grant["url"], under_grant["url"].replace("master.m3u8", "seg9.ts")):
        assert await _reason(world.services, url, world.clock()) == "grant-revoked"
    assert await _reason(world.services, owners["url"], world.clock()) is None  # alice's own link is not touched
    status, refused = await _sign(client, world, "eve")
    assert (status, refused["error"]) == (403, "forbidden")  # and no new URL under a revoked grant


async def test_a_new_grant_after_a_revoked_one_issues_urls_that_verify(world: World, client: TestClient) -> None:
    grant_id = await _engineer_with_grant(world, seconds=3600)
    await world.services.admin.revoke_grant(ADMIN, grant_id, world.clock())
    world.clock.advance(1)
    await world.services.admin.add_grant(ADMIN, "eve", "m1", "incident 8", 600, world.clock())
    _, issued = await _sign(client, world, "eve")
    assert await _reason(world.services, issued["url"], world.clock()) is None


async def test_a_grant_that_ends_within_the_second_issues_nothing(world: World, client: TestClient) -> None:
    await _engineer_with_grant(world, seconds=0.5)
    status, refused = await _sign(client, world, "eve")
    assert (status, refused["error"]) == (403, "forbidden")
    assert refused["message"].endswith("ends before a URL could be valid")
    [record] = [r for r in await world.services.store.audit.tail(5) if r.event.value == "url:denied"]
    assert record.reason == "grant-ending"


@pytest.fixture
async def every_profile(config: Any, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()
    await world.services.close()


@pytest.mark.parametrize("profile", ["gcdn", "bunny", "nginx"])
async def test_a_format_that_cannot_sign_its_issue_time_issues_nothing_under_a_grant(
    every_profile: tuple[World, TestClient], profile: str
) -> None:
    """Its URL could not be stopped by revoking the grant: refused, with the reason and what to do."""
    world, client = every_profile
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.services.admin.add_grant(ADMIN, "eve", "other", "ticket 9", 600, world.clock())
    body = {"media_id": "other", "rendition": "video", "profile": profile, "client_ip": "127.0.0.1"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("eve"))
    answer = await response.json()
    assert (response.status, answer["error"]) == (403, "forbidden"), answer
    assert "cannot sign an issue time" in answer["message"]
    [record] = [r for r in await world.services.store.audit.tail(5) if r.event.value == "url:denied"]
    assert record.reason == "grant-needs-issue-time"


async def test_the_wmsauth_minute_never_outlasts_the_grant(every_profile: tuple[World, TestClient]) -> None:
    """WMSAuth counts validity in whole minutes: under a 150 s grant a URL lasts two minutes, not three."""
    world, client = every_profile
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.services.admin.add_grant(ADMIN, "eve", "other", "ticket 9", 150, world.clock())
    body = {"media_id": "other", "rendition": "video", "profile": "nimble", "client_ip": "127.0.0.1", "ttl": 3600}
    response = await client.post("/v1/sign", json=body, headers=world.auth("eve"))
    assert (response.status, (await response.json())["expires_at"]) == (200, int(world.clock()) + 120)


# Every replica: a grant revoked on one replica stops the URL on another (PostgreSQL, the change feed).


@pytest.fixture
async def replicas(tmp_path: Path, postgres_url: str, clock: Clock) -> AsyncIterator[tuple[World, Services]]:
    data = tmp_path / "pg"
    data.mkdir()
    (data / "gateway.toml").write_text(f'[database]\nurl = "{postgres_url}"\n')  # init keeps it
    config = await asyncio.to_thread(init_data_dir, data)
    one, two = await open_services(config, clock), await open_services(config, clock)
    try:
        yield World(one, clock), two
    finally:
        await one.close()
        await two.close()


async def test_a_grant_revoked_on_one_replica_stops_its_urls_on_another(
    replicas: tuple[World, Services], aiohttp_client: Any
) -> None:
    world, other = replicas
    grant_id = await _engineer_with_grant(world, seconds=3600)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    _, issued = await _sign(client, world, "eve", scope="prefix")
    await other.state.catch_up()
    assert await _reason(other, issued["url"], world.clock()) is None
    world.clock.advance(2)
    await world.services.admin.revoke_grant(ADMIN, grant_id, world.clock())
    await other.state.catch_up()  # what its change-feed poll does within milliseconds
    assert await _reason(other, issued["url"].replace("master.m3u8", "seg3.ts"), world.clock()) == "grant-revoked"
    await client.close()
