"""Abuse limits over HTTP: per principal, per key, per client network on page URLs; 429 with Retry-After;
the trip audited; and one bucket shared by two replicas on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.audit.records import AuditRecord
from gateway.config import Config, load_config
from gateway.limits.buckets import Bucket, Rule, retry_after
from gateway.limits.limiter import Limiter, Rules
from gateway.model import Permission, Visibility
from gateway.services import Services, open_services
from gateway.store.base import AuditQuery
from gateway.web.app import create_app
from tests.support import Clock, World, init_data_dir

LIMITS = {"principal_rate": 1, "principal_burst": 3, "key_rate": 0.5, "key_burst": 5, "redirect_rate": 0.25,
          "redirect_burst": 2, "sync_every": 0.05}  # fmt: skip


def _with_limits(data_dir: Path, **limits: float) -> Config:
    lines = ["", "[limits]", *(f"{name} = {value}" for name, value in limits.items()), ""]
    with (data_dir / "gateway.toml").open("a") as toml:
        toml.write("\n".join(lines))
    return load_config(data_dir, environ={})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    init_data_dir(tmp_path)
    return _with_limits(tmp_path, **LIMITS)


@pytest.fixture
async def web(world: World, client: TestClient) -> World:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1", visibility=Visibility.PUBLIC)
    return world


async def _sign(client: TestClient, headers: dict[str, str], items: int = 1) -> tuple[int, dict[str, str], Any]:
    if items == 1:
        body: dict[str, Any] = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
        response = await client.post("/v1/sign", json=body, headers=headers)
    else:
        batch = [{"media_id": "m1", "rendition": "thumbnail"}] * items
        response = await client.post("/v1/sign/batch", json={"items": batch, "viewer": {"id": "a"}}, headers=headers)
    return response.status, dict(response.headers), await response.json()


async def _trips(services: Services, count: int = 1) -> list[AuditRecord]:
    """The limit:exceeded records, once there are ``count`` (written within a sync period of the trip)."""
    deadline = time.monotonic() + 10
    while len(found := await services.store.audit.search(AuditQuery(event="limit:exceeded"))) < count:
        assert time.monotonic() < deadline, f"{len(found)} limit:exceeded record(s)"
        await asyncio.sleep(0.05)
    return found


async def test_a_principal_over_its_burst_gets_429_with_retry_after(client: TestClient, web: World) -> None:
    auth = web.auth("web")
    assert [(await _sign(client, auth))[0] for _ in range(3)] == [200, 200, 200]
    status, headers, body = await _sign(client, auth)
    assert (status, headers["Retry-After"]) == (429, "1")
    assert body == {"error": "rate_limited", "message": "too many requests for this principal: at most 1/s (burst 3)"}
    # The trip record is written by the limiter's periodic task: wait for it before refusing again, so the count
    # it carries does not depend on when that task happens to run.
    [trip] = await _trips(web.services)
    assert (trip.actor, trip.reason, trip.kid) == ("web", "rate-limited", None)
    assert trip.detail == {"scope": "principal", "refused": 1, "since": web.clock(), "rate": 1.0, "burst": 3}
    assert (await _sign(client, auth))[0] == 429
    # Refused requests issue nothing and leave no url:* record of their own: the trip record counts them.
    assert len(await web.services.store.audit.search(AuditQuery(event="url:issued"))) == 3
    web.clock.advance(1)
    assert (await _sign(client, auth))[0] == 200
    assert (await _sign(client, auth))[0] == 429


async def test_one_trip_record_per_minute_counts_every_refusal(client: TestClient, web: World) -> None:
    auth = web.auth("web")
    for _ in range(3):
        await _sign(client, auth)
    assert (await _sign(client, auth))[0] == 429
    await _trips(web.services)
    for _ in range(4):
        assert (await _sign(client, auth))[0] == 429
    await asyncio.sleep(0.3)  # several sync periods: still one record within the minute
    assert len(await _trips(web.services)) == 1
    web.clock.advance(60)  # a minute on: the refusals since the first record are recorded
    first, second = await _trips(web.services, 2)
    assert (first.detail["refused"], second.detail["refused"]) == (1, 4)
    assert second.detail["since"] == first.time


async def test_a_key_is_limited_across_the_principals_requests(client: TestClient, web: World) -> None:
    """A batch takes one principal token per item (refused whole above the burst) and one key token per URL signed."""
    web.services.limits.rules = dataclasses.replace(web.services.limits.rules, principal=Rule(100, 100))
    auth = web.auth("web")
    status, _, body = await _sign(client, auth, items=5)
    assert status == 200 and [r["status"] for r in body["results"]] == [200] * 5
    status, headers, body = await _sign(client, auth)
    assert (status, headers["Retry-After"], body["error"]) == (429, "2", "rate_limited")
    assert body["message"] == "too many requests for this key: at most 0.5/s (burst 5)"
    [trip] = await _trips(web.services)
    kid = (await web.services.store.keys.all("web"))[0].kid
    assert (trip.actor, trip.kid, trip.detail["scope"], trip.detail["refused"]) == ("gateway:limits", kid, "key", 1)


async def test_page_redirects_are_limited_per_client_network(client: TestClient, web: World) -> None:
    viewer = {"Authorization": f"Bearer {web.viewer_token('bob')}"}
    elsewhere = {**viewer, "X-Forwarded-For": "198.51.100.7"}  # loopback is a trusted proxy (init)

    async def page(headers: dict[str, str]) -> tuple[int, str | None]:
        response = await client.get("/m/m1/video", headers=headers, allow_redirects=False)
        return response.status, response.headers.get("Retry-After")

    assert [await page(viewer) for _ in range(2)] == [(302, None), (302, None)]
    assert await page(viewer) == (429, "4")
    assert await page(elsewhere) == (302, None)  # another /24: its own bucket
    [trip] = await _trips(web.services)
    assert (trip.actor, trip.reason, trip.client_ip, trip.detail["scope"], trip.detail["refused"]) == (
        "gateway:limits", "rate-limited", "127.0.0.0/24", "network", 1,
    )  # fmt: skip
    assert trip.retention == "viewer"  # a viewer network: kept as long as viewer data, masked like every IP


async def test_page_redirects_do_not_spend_the_pages_principals_buckets(client: TestClient, web: World) -> None:
    """The pages principal signs every viewer's redirect: only the per-network bucket limits them."""
    viewer = {"Authorization": f"Bearer {web.viewer_token('bob')}"}
    for n in range(8):  # more than the principal (3) and key (5) bursts, from 8 networks
        headers = {**viewer, "X-Forwarded-For": f"198.51.{n}.7"}
        assert (await client.get("/m/m1/video", headers=headers, allow_redirects=False)).status == 302
    assert web.services.limits.exempt == frozenset({"pages"})


def test_no_limit_is_configured_by_default(tmp_path: Path) -> None:
    rules = Rules.from_config(Config(data_dir=tmp_path))
    assert not rules.any and Limiter(rules).rules.principal == Rule(0, 0)


def test_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = Bucket.full(Rule(rate=2, burst=3), now=0)
    assert [bucket.take(1, 0) for _ in range(4)] == [0, 0, 0, 0.5]
    assert bucket.take(1, 0.5) == 0  # one token back after half a second
    assert bucket.take(3, 100) == 0  # never more than the burst saved up
    assert bucket.take(1, 100) == 0.5
    assert (retry_after(0.5), retry_after(1.0), retry_after(1.01)) == (1, 1, 2)


def test_adopting_the_shared_level_keeps_what_was_taken_since_the_report() -> None:
    bucket = Bucket.full(Rule(rate=1, burst=10), now=0)
    for _ in range(4):
        bucket.take(1, 0)
    assert bucket.drain() == 4
    bucket.take(1, 0)  # taken while the report was on its way
    bucket.adopt(shared_level=-2, at=0)  # the others took 8 meanwhile
    assert bucket.level == -3 and bucket.take(1, 0) == 4


# Two replicas, one PostgreSQL database, one bucket.


@pytest.fixture
async def replicas(tmp_path: Path, postgres_url: str, clock: Clock, aiohttp_client: Any) -> AsyncIterator[
    tuple[World, TestClient, TestClient]
]:  # fmt: skip
    data = tmp_path / "pg"
    data.mkdir()
    (data / "gateway.toml").write_text(f'[database]\nurl = "{postgres_url}"\n')  # init keeps it
    config = _with_limits(data, principal_rate=1, principal_burst=3, sync_every=0.05)
    await asyncio.to_thread(init_data_dir, data)
    one, two = await open_services(config, clock), await open_services(config, clock)
    try:
        world = World(one, clock)
        await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
        await world.media("m1", visibility=Visibility.PUBLIC)
        await two.state.catch_up()
        clients = [await aiohttp_client(create_app(s, close_services=False)) for s in (one, two)]
        yield world, clients[0], clients[1]
        for client in clients:
            await client.close()  # the apps' own cleanup still needs the stores
    finally:
        await one.close()
        await two.close()


async def test_two_replicas_share_one_bucket(replicas: tuple[World, TestClient, TestClient]) -> None:
    world, one, two = replicas
    assert world.services.limits.shared
    auth = world.auth("web")
    assert [(await _sign(one, auth))[0] for _ in range(3)] == [200, 200, 200]
    assert (await _sign(one, auth))[0] == 429
    await asyncio.sleep(0.3)  # replica one has reported its use
    # Replica two had never seen the bucket: it may spend what it last saw (a full one) until it reconciles
    # (the bound in gateway.limits.buckets); then the shared level, 3 - 3 - 1 = -1, holds on both replicas.
    assert (await _sign(two, auth))[0] == 200
    await asyncio.sleep(0.3)
    for client in (one, two):
        status, headers, body = await _sign(client, auth)
        assert (status, headers["Retry-After"], body["error"]) == (429, "2", "rate_limited")
    world.clock.advance(2)  # refilled to 1, shared: one more request in all, on either replica
    await asyncio.sleep(0.3)
    assert (await _sign(two, auth))[0] == 200
    await asyncio.sleep(0.3)
    assert [(await _sign(c, auth))[0] for c in (one, two)] == [429, 429]
