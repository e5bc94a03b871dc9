"""``gateway.client`` against the live app over real HTTP (aiohttp's TestServer on a loopback port): the blocking
client (in a thread, as a backend would call it) and the asyncio client, with the test's clock shared by both sides
and an injected ``sleep`` that moves that clock, so retries are waited out without waiting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.access.credential_file import CredentialFile
from gateway.client import (
    AsyncGatewayClient,
    Forbidden,
    GatewayClient,
    InvalidRequest,
    NotFound,
    RateLimited,
    RetryPolicy,
    SignedUrl,
    StateStale,
    TransportError,
    Unauthenticated,
)
from gateway.client.api import retry_after
from gateway.config import Config, load_config
from gateway.model import Permission, Visibility
from gateway.services import Services
from gateway.store.base import AuditQuery
from gateway.web.app import create_app
from tests.support import Clock, World, init_data_dir


@pytest.fixture
def config(tmp_path: Path) -> Config:
    init_data_dir(tmp_path)
    with (tmp_path / "gateway.toml").open("a") as toml:
        # Reconciled with the store once a minute of real time: never during a test, so only the clock refills.
        toml.write("\n[limits]\nprincipal_rate = 1\nprincipal_burst = 2\nsync_every = 60\n")
    return load_config(tmp_path, environ={})


@pytest.fixture
async def server(services: Services) -> AsyncIterator[str]:
    running = TestServer(create_app(services, close_services=False), host="127.0.0.1")
    await running.start_server()
    yield f"http://127.0.0.1:{running.port}"
    await running.close()


@pytest.fixture
async def web(world: World) -> CredentialFile:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    await world.principal("root", Permission.ADMIN, key=None)
    await world.media("m1", owner="alice", visibility=Visibility.PRIVATE)
    await world.media("pub", visibility=Visibility.PUBLIC)
    return credential(world, "web")


def credential(world: World, principal: str) -> CredentialFile:
    credential_id, seed = world.seeds[principal]
    return CredentialFile(principal, credential_id, seed, world.services.config.api_audience)


@pytest.fixture
def blocking() -> Iterator[Callable[..., GatewayClient]]:
    """Makes blocking clients, and closes them (and their kept-alive connections) after the test."""
    made: list[GatewayClient] = []

    def make(base_url: str, **settings: Any) -> GatewayClient:
        made.append(GatewayClient(base_url, **settings))
        return made[-1]

    yield make
    for client in made:
        client.close()


class Sleeps:
    """The client's sleep: records each delay and moves the shared clock instead of waiting."""

    def __init__(self, clock: Clock, then: Callable[[], None] = lambda: None) -> None:
        self.clock, self.then, self.delays = clock, then, list[float]()

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        self.then()

    async def wait(self, seconds: float) -> None:
        self(seconds)


async def issued(services: Services) -> int:
    return len(await services.store.audit.search(AuditQuery(event="url:issued", limit=10_000)))


async def test_the_blocking_client_signs_reuses_and_renews_against_the_live_app(
    world: World, server: str, web: CredentialFile, tmp_path: Path, blocking: Callable[..., GatewayClient]
) -> None:
    path = tmp_path / "web.json"
    path.write_text(web.to_json())
    client = blocking(server, credential=str(path), clock=world.clock, sleep=Sleeps(world.clock))
    viewer = world.viewer_token("alice")
    first = await asyncio.to_thread(client.sign, "m1", "video", viewer_token=viewer, scope="prefix", form="path")
    assert (first.media_id, first.rendition, first.profile) == ("m1", "video", "native")
    assert first.url.startswith("https://cdn.example.com/_t/") and first.url.endswith("/v/m1/master.m3u8")
    assert first.expires_at == int(world.clock()) + 60 + 300  # the cache window, then the default ttl
    verified = await _verify(server, first.url.removeprefix("https://cdn.example.com").replace("master", "seg"))
    assert verified == 200

    world.clock.advance(179)  # under half of its 360 s: the same URL, the same issuance, no call
    again = await asyncio.to_thread(client.sign, "m1", "video", viewer_token=viewer, scope="prefix", form="path")
    assert again == first and await issued(world.services) == 1
    other = await asyncio.to_thread(client.sign, "m1", "thumbnail", viewer_token=viewer)
    assert other.issuance_id != first.issuance_id  # another request is another URL
    world.clock.advance(2)  # half its lifetime has passed: a fresh one (and a principal token minted again)
    renewed = await asyncio.to_thread(client.sign, "m1", "video", viewer_token=viewer, scope="prefix", form="path")
    assert renewed.issuance_id != first.issuance_id and await issued(world.services) == 3


async def _verify(server: str, uri: str) -> int:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server}/v1/verify", headers={"X-Original-URI": uri}) as response,
    ):
        return response.status


async def test_errors_arrive_as_their_own_exception_classes(
    world: World, server: str, web: CredentialFile, blocking: Callable[..., GatewayClient]
) -> None:
    client = blocking(server, credential=web, clock=world.clock, sleep=Sleeps(world.clock))
    cases: dict[str, Callable[[], Any]] = {
        "viewer may not": lambda: client.sign("m1", "video", viewer_token=world.viewer_token("eve")),
        "no such item": lambda: client.sign("nope", "video"),
        "bad ttl": lambda: client.sign("pub", "video", ttl=0),
        "path token for a file": lambda: client.sign("pub", "video", form="path"),
    }
    raised = {}
    for name, call in cases.items():
        with pytest.raises(Exception) as caught:
            await asyncio.to_thread(call)
        raised[name] = (type(caught.value), caught.value.status, caught.value.code)  # type: ignore[attr-defined]
    assert raised == {
        "viewer may not": (Forbidden, 403, "forbidden"),
        "no such item": (NotFound, 404, "not_found"),
        "bad ttl": (InvalidRequest, 400, "invalid_request"),
        "path token for a file": (InvalidRequest, 400, "invalid_request"),
    }
    stranger = blocking(server, token="not-a-token", sleep=Sleeps(world.clock))
    with pytest.raises(Unauthenticated) as caught:
        await asyncio.to_thread(stranger.sign, "pub", "video")
    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")


async def test_a_429_is_retried_after_the_seconds_the_gateway_asks_for(
    world: World, server: str, web: CredentialFile, blocking: Callable[..., GatewayClient]
) -> None:
    sleeps = Sleeps(world.clock)
    client = blocking(server, credential=web, clock=world.clock, sleep=sleeps, reuse_fraction=0)
    for _ in range(2):  # the principal's burst
        await asyncio.to_thread(client.sign, "pub", "video")
    third = await asyncio.to_thread(client.sign, "pub", "video")  # 429, Retry-After: 1, then allowed
    assert isinstance(third, SignedUrl) and sleeps.delays == [1.0]
    patient = blocking(server, credential=web, clock=world.clock, sleep=sleeps, retry=RetryPolicy(attempts=1))
    with pytest.raises(RateLimited) as caught:  # the bucket is empty again, and this client tries once
        await asyncio.to_thread(patient.sign, "pub", "video")
    assert (caught.value.status, caught.value.retry_after) == (429, 1.0)


async def test_a_503_is_retried_with_backoff_until_the_gateway_recovers(
    world: World, server: str, web: CredentialFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = [2]  # the view is stale for two requests (503 state_stale), then proved current again
    monkeypatch.setattr(world.services.state, "current", lambda: stale[0] <= 0)

    def recover() -> None:
        stale[0] -= 1

    sleeps = Sleeps(world.clock, recover)
    with GatewayClient(server, credential=web, clock=world.clock, sleep=sleeps) as client:  # closed on leaving
        signed = await asyncio.to_thread(client.sign, "pub", "video")
        assert signed.media_id == "pub" and len(sleeps.delays) == 2
        assert 0.1 <= sleeps.delays[0] <= 0.2 and 0.2 <= sleeps.delays[1] <= 0.4  # 0.2 s doubling, with jitter
        stale[0] = 99
        with pytest.raises(StateStale) as caught:
            await asyncio.to_thread(client.sign, "pub", "thumbnail")
    assert (caught.value.status, caught.value.code, len(sleeps.delays)) == (503, "state_stale", 5)  # 4 tries in all


async def test_no_answer_is_a_transport_error_after_the_retries(
    world: World, web: CredentialFile, blocking: Callable[..., GatewayClient]
) -> None:
    sleeps = Sleeps(world.clock)
    client = blocking("http://127.0.0.1:9", credential=web, clock=world.clock, sleep=sleeps, timeout=2)
    with pytest.raises(TransportError, match="no answer from the gateway"):
        await asyncio.to_thread(client.sign, "pub", "video")
    assert len(sleeps.delays) == 3


async def test_a_batch_asks_only_for_what_it_cannot_reuse_in_chunks(
    world: World, server: str, web: CredentialFile, blocking: Callable[..., GatewayClient]
) -> None:
    client = blocking(server, credential=web, clock=world.clock, sleep=Sleeps(world.clock), batch_size=2)
    items: list[Any] = [
        {"media_id": "pub", "rendition": "video"},
        {"media_id": "m1", "rendition": "video"},
        {"media_id": "pub", "rendition": "thumbnail", "ttl": 60},
    ]
    viewer = world.viewer_token("bob")
    results = await asyncio.to_thread(client.sign_batch, items, viewer_token=viewer)
    assert [type(r) for r in results] == [SignedUrl, Forbidden, SignedUrl]
    assert (results[1].status, results[1].code) == (403, "forbidden")  # type: ignore[union-attr]
    assert await issued(world.services) == 2
    again = await asyncio.to_thread(client.sign_batch, items, viewer_token=viewer)
    assert again[0] == results[0] and again[2] == results[2] and isinstance(again[1], Forbidden)
    assert await issued(world.services) == 2  # the two URLs were reused; only the refused item was asked again
    denied = await world.services.store.audit.search(AuditQuery(event="url:denied"))
    assert len(denied) == 2


async def test_the_asyncio_client_does_the_same(world: World, server: str, web: CredentialFile) -> None:
    sleeps = Sleeps(world.clock)
    async with AsyncGatewayClient(server, credential=web, clock=world.clock, sleep=sleeps.wait) as client:
        viewer = world.viewer_token("alice")
        first = await client.sign("m1", "video", viewer_token=viewer, scope="prefix")
        assert "gw_pfx=/v/m1/" in first.url
        assert await client.sign("m1", "video", viewer_token=viewer, scope="prefix") == first
        with pytest.raises(NotFound):
            await client.sign("nope", "video")
        # Each issuance takes a token, a refused one too: the burst of 2 is spent, and each call from here on
        # is answered 429 with Retry-After: 1 first, waited out, and then served.
        results = await client.sign_batch([{"media_id": "pub", "rendition": "video"}], viewer={"id": "bob"})
        assert isinstance(results[0], SignedUrl)
        assert (await client.sign("pub", "thumbnail")).media_id == "pub"
        assert sleeps.delays == [1.0, 1.0]
        media = await client.put_media("new", {"owner": "bob", "workspace": "w1", "visibility": "public",
                                               "renditions": {"video": "/v/new/master.m3u8"}})  # fmt: skip
        assert (media["id"], media["prefixes"]) == ("new", {"video": "/v/new/"})
        assert (await client.get_media("new"))["visibility"] == "public"
        assert (await client.revoke_links("new", "test"))["links_revoked_at"] == world.clock()
        await client.delete_media("new")
        with pytest.raises(NotFound):
            await client.get_media("new")
    async with AsyncGatewayClient(server, credential=credential(world, "root"), clock=world.clock) as admin:
        answer = await admin.explain(first.url.replace("/v/m1/master.m3u8", "/v/pub/master.m3u8"))
        assert (answer["verdict"], answer["reason"]) == ("refused", "outside-prefix")


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after("3", 0) == 3.0
    assert retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4.0) == 6.0
    assert retry_after("soon", 0) == 0.0
    assert retry_after(None, 0) == 0.0


def test_a_credential_and_a_token_together_are_refused() -> None:
    with pytest.raises(ValueError, match="give a credential"):
        GatewayClient("http://127.0.0.1:1", token="t", credential=CredentialFile("p", "gwc_x", b"0" * 32, "a"))
    with pytest.raises(ValueError, match="base_url"):
        GatewayClient("ftp://x", token="t")
    assert json.loads(CredentialFile("p", "gwc_x", b"0" * 32, "a").to_json())["principal"] == "p"
