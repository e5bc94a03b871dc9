"""Attack: crash /v1/sign (a 500 and a traceback per request) with input a dialect cannot take.

A CIDR where a format binds one exact address (Bunny, Akamai, Wowza, nginx,
WMSAuth), an address that is not one, a prefix or URL that is not a
canonical path: each is a 400 naming the problem, never a 500.
"""

from __future__ import annotations

import contextlib
import string
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Config
from gateway.errors import InvalidInput
from gateway.signing.dialects.base import SignRequest
from gateway.web.app import create_app
from tests.dialect_fixtures import ATTRIBUTION, Setup, open_deployment, setups
from tests.support import Clock, World


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


@pytest.mark.parametrize("profile", ["bunny", "bunnydir", "akamai", "wowza", "nginx", "nimble"])
@pytest.mark.parametrize("client_ip", ["203.0.113.0/24", "2001:db8::/64"])
async def test_a_network_where_one_address_is_bound_is_a_400(
    deployment: tuple[World, TestClient], profile: str, client_ip: str
) -> None:
    world, client = deployment
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "profile": profile, "client_ip": client_ip}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert (response.status, (await response.json())["error"]) == (400, "invalid_request")
    assert "one exact client address, not a network" in (await response.json())["message"]


@pytest.mark.parametrize("profile", ["native", "cf", "mcdn", "bunny", "akamai", "wowza", "nginx", "nimble"])
async def test_an_address_that_is_not_one_is_a_400(deployment: tuple[World, TestClient], profile: str) -> None:
    world, client = deployment
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "profile": profile, "client_ip": "1.2.3"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert (response.status, (await response.json())["error"]) == (400, "invalid_request")


_ips = st.one_of(
    st.none(),
    st.ip_addresses().map(str),
    st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses().map(str), st.integers(min_value=0, max_value=129)),
    st.text(max_size=20),
    st.sampled_from(["", " ", "203.0.113.7,198.51.100.1", "::ffff:1.2.3.4", "1.2.3.4%eth0", "fe80::1%1"]),
)
_paths = st.one_of(
    st.lists(st.text(alphabet=string.ascii_letters + "-._~%!;*?#/\\é", min_size=1, max_size=6), max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    ),
    st.text(max_size=20),
)


@pytest.mark.parametrize("setup", setups(), ids=lambda s: s.name)
@settings(max_examples=150, deadline=None)
@given(ip=_ips, path=_paths, prefix=st.one_of(st.none(), _paths), starts=st.one_of(st.none(), st.just(1_799_999_000)))
def test_sign_raises_only_invalid_input(
    setup: Setup, ip: str | None, path: str, prefix: str | None, starts: int | None
) -> None:
    request = SignRequest(
        url=f"https://cdn.example.com{path}", expires=1_800_000_300, starts=starts, ip=ip, prefix=prefix,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION, issued_at=1_800_000_000,
        options=setup.options,
    )  # fmt: skip
    with contextlib.suppress(InvalidInput):  # a 400; anything else would be a 500
        setup.dialect.sign(request, setup.key)
