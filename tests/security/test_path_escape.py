"""Attack: a prefix (HLS) token escapes its directory by a path spelling the verifier and the origin read apart.

A viewer holds the prefix token for the unlisted item ``a`` (``/v/a/``) and
asks for the private item ``other`` through ``/v/a/../other/…`` in some
spelling: literal, percent-encoded in any case, double-encoded, ``..;``,
encoded or back slashes, fullwidth or overlong dots. nginx, a CDN or an
origin resolves it to ``/v/other/…``. The verifier's one canonical-path gate
refuses every such spelling with ``non-canonical-path`` before any dialect
compares a prefix, in every dialect.
"""

from __future__ import annotations

import asyncio
import logging
import string
from collections.abc import AsyncIterator
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Config
from gateway.errors import VerificationFailed
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.signing.profiles import Profile
from gateway.signing.verification import Verifier
from gateway.state.view import StateView
from gateway.web.app import create_app
from tests.dialect_fixtures import (
    ATTRIBUTION,
    MEDIA_PATH,
    PREFIX_PROFILES,
    Setup,
    open_deployment,
    origin_form,
    setups,
)
from tests.nginx_server import raw_get
from tests.support import Clock, World

# /v/a/../other/master.m3u8, spelled as different parsers read it.
ESCAPES = {
    "literal": "/v/a/../other/master.m3u8",
    "dot-then-dotdot": "/v/a/./../other/master.m3u8",
    "encoded-lower": "/v/a/%2e%2e/other/master.m3u8",
    "encoded-upper": "/v/a/%2E%2E/other/master.m3u8",
    "encoded-mixed": "/v/a/.%2E/other/master.m3u8",
    "double-encoded": "/v/a/%252e%252e/other/master.m3u8",
    "java-path-parameter": "/v/a/..;/other/master.m3u8",
    "encoded-slash": "/v/a/..%2Fother/master.m3u8",
    "encoded-slash-lower": "/v/a/%2e%2e%2fother/master.m3u8",
    "double-encoded-slash": "/v/a/..%252Fother/master.m3u8",
    "backslash": "/v/a/..\\other/master.m3u8",
    "encoded-backslash": "/v/a/..%5Cother/master.m3u8",
    "fullwidth-dots": "/v/a/%EF%BC%8E%EF%BC%8E/other/master.m3u8",
    "two-dot-leader": "/v/a/%E2%80%A5/other/master.m3u8",
    "overlong-utf8-dots": "/v/a/%C0%AE%C0%AE/other/master.m3u8",
    "empty-segment": "/v/a//../other/master.m3u8",
    "trailing-space-dots": "/v/a/..%20/other/master.m3u8",
}
# Reading another directory in canonical spelling is refused by the dialect itself.
SIBLING_REASON = {
    "native": "outside-prefix",
    "cf": "outside-prefix",
    "gcdn": "outside-prefix",
    "mcdn": "outside-prefix",
    "akamai": "outside-prefix",
    "bunny": "outside-prefix",
    "bunnydir": "bad-signature",
    "wowza": "bad-signature-or-wrong-ip",
}


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


async def prefix_token(client: TestClient, world: World, profile: str, **extra: str) -> dict[str, Any]:
    """The prefix token a viewer (bob) gets for the unlisted item 'a' (``extra`` changes the request)."""
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "scope": "prefix", "profile": profile}
    body.update(extra)
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def verify(
    client: TestClient, caplog: pytest.LogCaptureFixture, uri: str, profile: str, **headers: str
) -> tuple[int, str]:
    """(status, logged refusal reason) of /v1/verify."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        response = await client.get(
            "/v1/verify", headers={"X-Original-URI": uri, "X-Gateway-Profile": profile, **headers}
        )
    denials = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    return response.status, denials[-1] if denials else ""


@pytest.mark.parametrize("profile", PREFIX_PROFILES)
async def test_prefix_token_never_leaves_its_directory_in_any_spelling(
    deployment: tuple[World, TestClient], caplog: pytest.LogCaptureFixture, profile: str
) -> None:
    world, client = deployment
    uri = origin_form((await prefix_token(client, world, profile))["url"])
    assert await verify(client, caplog, uri.replace(MEDIA_PATH, "/v/a/seg-1.ts"), profile) == (200, "")
    refused = {
        name: await verify(client, caplog, uri.replace(MEDIA_PATH, path), profile) for name, path in ESCAPES.items()
    }
    assert refused == dict.fromkeys(ESCAPES, (403, "non-canonical-path"))
    sibling = uri.replace(MEDIA_PATH, "/v/other/master.m3u8")
    assert await verify(client, caplog, sibling, profile) == (403, SIBLING_REASON[profile])


@pytest.mark.parametrize("profile", ["cf", "gcdn", "mcdn", "akamai"])
async def test_prefix_cookie_never_leaves_its_directory(
    deployment: tuple[World, TestClient], caplog: pytest.LogCaptureFixture, profile: str
) -> None:
    world, client = deployment
    cookies = (await prefix_token(client, world, profile))["cookies"]
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    assert await verify(client, caplog, "/v/a/seg-1.ts", profile, Cookie=cookie) == (200, "")
    for name, path in ESCAPES.items():
        assert await verify(client, caplog, path, profile, Cookie=cookie) == (403, "non-canonical-path"), name


# --- The same through the Verifier, for random prefixes and random escape spellings ---------------

_DOTS = [".", "%2e", "%2E", "%252e", "%252E", "%c0%ae", "%C0%AE", "%e0%80%ae", "%EF%BC%8E", "%ef%bc%8e",
         "%E2%80%A4", "%E2%80%A5", "%EF%B9%92", "%u002e"]  # fmt: skip
_SEPARATORS = ["/", "%2f", "%2F", "%252f", "%252F", "\\", "%5c", "%5C", "%EF%BC%8F", "%E2%88%95", "//"]
_SUFFIXES = ["", ";", ";jsessionid=1", "%3B", "%00", "%20", "%09"]
_segment = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=6)
_prefixes = st.lists(_segment, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts) + "/")
_dot_segments = st.builds(
    lambda dots, suffix: "".join(dots) + suffix,
    st.lists(st.sampled_from(_DOTS), min_size=1, max_size=3),
    st.sampled_from(_SUFFIXES),
)
SETUPS = [s for s in setups() if s.name != "nginx"]  # nginx secure_link has no prefix tokens


class _Keyring:
    """Hands the setup's own key to the verifier (the gate is what is under test)."""

    def __init__(self, setup: Setup) -> None:
        self._setup = setup

    def active_key(self, kid: str, now: float, by_external: bool = False) -> SimpleNamespace:
        return SimpleNamespace(kid=kid, principal_id="web")

    async def verification_material(self, key: object, presented: str) -> object:
        return self._setup.key


def _profile(setup: Setup) -> Profile:
    keyed = setup.dialect.capabilities.key_id_field is not None
    attributable = setup.dialect.attribution_covered(setup.options)
    options = MappingProxyType(dict(setup.options))
    return Profile(setup.name, setup.dialect, "https://cdn.example.com", options, None if keyed else setup.key,
                   attributable)  # fmt: skip


async def _reason(setup: Setup, url: str) -> str:
    fresh = SimpleNamespace(current=lambda: True, view=StateView())  # a current view that revoked nothing
    verifier = Verifier(_Keyring(setup), fresh, 3600)  # type: ignore[arg-type]
    try:
        await verifier.verify(Redemption(url, 1_800_000_030, "203.0.113.7", options=setup.options), _profile(setup))
    except VerificationFailed as refused:
        return refused.reason
    return "accepted"


def _sign_prefix(setup: Setup, prefix: str) -> str:
    request = SignRequest(
        url=f"https://cdn.example.com{prefix}index.m3u8", expires=1_800_000_300,
        ip="203.0.113.7" if setup.needs_ip else None, prefix=prefix, issued_at=1_800_000_000,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION, options=setup.options,
    )  # fmt: skip
    return setup.dialect.sign(request, setup.key).url


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
@settings(max_examples=150, deadline=None)
@given(
    prefix=_prefixes,
    dots=_dot_segments,
    separator=st.sampled_from(_SEPARATORS),
    target=st.sampled_from(["secret/master.m3u8", "x.ts", ""]),
)
async def test_every_dialect_refuses_every_escape_spelling(
    setup: Setup, prefix: str, dots: str, separator: str, target: str
) -> None:
    url = _sign_prefix(setup, prefix)
    inside = url.replace(f"{prefix}index.m3u8", f"{prefix}seg-1.ts")
    assert await _reason(setup, inside) == ("unattributable" if setup.name == "nimble" else "accepted")
    escaped = url.replace(f"{prefix}index.m3u8", f"{prefix}{dots}{separator}{target}")
    assert await _reason(setup, escaped) == "non-canonical-path"


# --- The same rule at signing time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/v/x/../other/master.m3u8", "dot segments"),
        ("/v/x/%2e%2e/other/master.m3u8", "dot segments"),  # respelled to '..', then refused
        ("/v/x/..;/other/master.m3u8", "%3B"),
        ("/v/x%2Fother/master.m3u8", "%2F"),
        ("/v/x/%252e%252e/master.m3u8", "%25"),
        ("/v/x/\uff0e\uff0e/master.m3u8", "U+FF0E"),
    ],
)
async def test_a_media_path_that_escapes_is_refused_when_registered(
    deployment: tuple[World, TestClient], path: str, problem: str
) -> None:
    world, client = deployment
    body = {"owner": "bob", "workspace": "w1", "visibility": "unlisted", "renditions": {"video": path}}
    response = await client.put("/v1/media/x", json=body, headers=world.auth("web"))
    answer = await response.json()
    assert (response.status, answer["error"]) == (400, "invalid_request")
    assert problem in answer["message"]


async def test_a_directory_is_never_signed_as_a_file(deployment: tuple[World, TestClient]) -> None:
    """Bunny's directory tokens and Wowza's stream tokens hash a directory like a file of the same name."""
    world, client = deployment
    body = {"owner": "bob", "workspace": "w1", "visibility": "unlisted", "renditions": {"video": "/v/dir/"}}
    assert (await client.put("/v1/media/d", json=body, headers=world.auth("web"))).status == 200
    for profile in ("bunnydir", "wowza", "native"):
        sign = {"media_id": "d", "rendition": "video", "viewer": {"id": "bob"}, "profile": profile}
        response = await client.post("/v1/sign", json=sign, headers=world.auth("web"))
        answer = await response.json()
        assert (response.status, answer["message"]) == (
            400,
            "media item 'd': a rendition path names a file, not a directory",
        )


async def test_the_envoy_form_refuses_every_escape_spelling(
    deployment: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Envoy appends the original path to /v1/verify; sent raw, as Envoy does (a client library would tidy it)."""
    world, client = deployment
    uri = origin_form((await prefix_token(client, world, "cf"))["url"])
    server = TestServer(create_app(world.services, close_services=False), host="127.0.0.1")
    await server.start_server()
    try:
        base, profile = f"http://127.0.0.1:{server.port}", {"X-Gateway-Profile": "cf"}
        inside = await asyncio.to_thread(raw_get, base, "/v1/verify" + uri.replace(MEDIA_PATH, "/v/a/x.ts"), profile)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gateway.verify"):
            for path in ESCAPES.values():
                target = "/v1/verify" + uri.replace(MEDIA_PATH, path)
                assert (await asyncio.to_thread(raw_get, base, target, profile))[0] == 403, path
    finally:
        await server.close()
    assert inside[0] == 200
    reasons = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    assert reasons == ["non-canonical-path"] * len(ESCAPES)
