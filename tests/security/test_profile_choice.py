"""Attack: the client chooses the verification profile (X-Gateway-Profile) and picks a weaker dialect.

A deployment that verifies only native URLs must not be talked into
verifying, say, an nginx secure_link URL because the request says so. The
profile is the deployment's: the first of ``verify.profiles``, or the one a
*trusted proxy* names, and only if listed (``profile-not-allowed`` otherwise).
The real-nginx half (the shipped snippet overwrites the client's header) is
in tests/test_nginx_real.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.services import open_services
from gateway.web.app import create_app
from tests.dialect_fixtures import MEDIA_PATH, open_deployment, origin_form
from tests.security.test_path_escape import prefix_token, verify
from tests.support import Clock, World


@pytest.fixture
async def native_only(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    """Every dialect configured for signing, but /v1/verify limited to the default: native."""
    world = await open_deployment(config.data_dir, clock, verify=())
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


async def _untrusted(world: World, aiohttp_client: Any) -> TestClient:
    """The same deployment, seen from a peer that is not a trusted proxy."""
    config = load_config(world.services.config.data_dir, environ={"GATEWAY_PROXY_TRUSTED": "192.0.2.0/24"})
    services = await open_services(config, clock=world.clock)
    client: TestClient = await aiohttp_client(create_app(services))
    return client


async def test_a_client_cannot_switch_a_native_only_deployment_to_another_dialect(
    native_only: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = native_only
    for profile in ("akamai", "bunny", "cf"):
        uri = origin_form((await prefix_token(client, world, profile))["url"])
        assert await verify(client, caplog, uri, profile) == (403, "profile-not-allowed"), profile
    nginx = await prefix_token(client, world, "nginx", scope="path", client_ip="127.0.0.1")
    assert await verify(client, caplog, origin_form(nginx["url"]), "nginx") == (403, "profile-not-allowed")
    native = origin_form((await prefix_token(client, world, "native"))["url"])
    assert await verify(client, caplog, native, "native") == (200, "")


async def test_without_a_header_the_deployment_default_is_used(
    native_only: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = native_only
    native = origin_form((await prefix_token(client, world, "native"))["url"])
    akamai = origin_form((await prefix_token(client, world, "akamai"))["url"])
    assert await verify(client, caplog, native, "native") == (200, "")
    headers = {"X-Original-URI": native}
    assert (await client.get("/v1/verify", headers=headers)).status == 200
    response = await client.get("/v1/verify", headers={"X-Original-URI": akamai})
    assert response.status == 403  # read as a native URL: not one


async def test_only_a_trusted_proxy_may_name_the_profile(
    config: Config, clock: Clock, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world = await open_deployment(config.data_dir, clock)  # every profile may be verified...
    try:
        trusted = await aiohttp_client(create_app(world.services, close_services=False))
        uri = origin_form((await prefix_token(trusted, world, "akamai"))["url"])
        assert await verify(trusted, caplog, uri, "akamai") == (200, "")
        untrusted = await _untrusted(world, aiohttp_client)  # ...but only when a trusted proxy says which
        assert await _verify_path(untrusted, caplog, uri, "akamai") == (403, "profile-not-allowed")
        assert await _verify_path(untrusted, caplog, uri, "native") == (403, "profile-not-allowed")
        response = await untrusted.get("/v1/verify" + uri)
        assert response.status == 403  # no header from an untrusted peer: the default (native) profile
        # nor may an untrusted peer say what to verify (red team F8: Envoy forwarding a client's header)
        assert await verify(untrusted, caplog, uri, "akamai") == (403, "untrusted-original-uri")
    finally:
        await world.services.close()


async def _verify_path(client: TestClient, caplog: pytest.LogCaptureFixture, uri: str, profile: str) -> tuple[int, str]:
    """(status, logged refusal reason) of /v1/verify in Envoy's path form."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.get("/v1/verify" + uri, headers={"X-Gateway-Profile": profile})
    denials = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    return response.status, denials[-1] if denials else ""


async def test_a_header_beside_a_path_tail_is_refused_as_ambiguous(
    native_only: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """A client header naming a good URL must not stand in for the path the proxy actually serves."""
    world, client = native_only
    uri = origin_form((await prefix_token(client, world, "native"))["url"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.get("/v1/verify/v/secret/master.m3u8", headers={"X-Original-URI": uri})
    assert response.status == 403
    assert [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"] == [
        "ambiguous-uri"
    ]


async def test_an_envoy_style_request_names_the_profile_the_same_way(
    native_only: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = native_only
    uri = origin_form((await prefix_token(client, world, "native"))["url"])
    assert (await client.get("/v1/verify" + uri)).status == 200
    assert (await client.get("/v1/verify" + uri, headers={"X-Gateway-Profile": "native"})).status == 200
    akamai = origin_form((await prefix_token(client, world, "akamai"))["url"])
    assert (await client.get("/v1/verify" + akamai, headers={"X-Gateway-Profile": "akamai"})).status == 403
    assert uri.startswith(MEDIA_PATH)


def test_verify_profiles_must_name_configured_profiles(tmp_path: Path) -> None:
    from tests.support import init_data_dir

    init_data_dir(tmp_path)
    with (tmp_path / "gateway.toml").open("a") as config:
        config.write('\n[verify]\nprofiles = ["native", "cdn-that-does-not-exist"]\n')
    with pytest.raises(ConfigError, match=r"verify\.profiles: no profile named 'cdn-that-does-not-exist'"):
        from gateway.signing.dialects import default_registry
        from gateway.signing.profiles import load_profiles

        load_profiles(load_config(tmp_path, environ={}), default_registry())
