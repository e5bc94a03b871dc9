"""Attack: a Media CDN ``FullPath`` token re-presented with ``FullPath=<its path>`` opens every path.

Media CDN sends ``FullPath`` bare and signs ``FullPath=<request path>``. A
verifier that signs a presented ``FullPath=/v/a/master.m3u8`` field as
written, and only checks that some ``FullPath`` field exists, accepts the
token for the unlisted item ``a`` on the private item ``other`` (in the query
or in ``Edge-Cache-Cookie``). The same class: text in the signed path that
reads as a second field (``/v/a~x`` signs ``FullPath=/v/a`` and a field
``x``), and a token with two scope fields, which only one of is checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.errors import InvalidInput, VerificationFailed
from gateway.signing.dialects import media_cdn
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.web.app import create_app
from tests.dialect_fixtures import MEDIA_PATH, Setup, open_deployment, setups
from tests.security.test_path_escape import prefix_token, verify
from tests.support import Clock, World

SETUPS = {s.name: s for s in setups()}
SECRET_PATH = "/v/other/master.m3u8"  # item "other": private to alice
NOW = 1_800_000_000


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


async def _full_path_token(client: TestClient, world: World) -> str:
    """The ``edge-cache-token`` bob gets for item 'a' with scope "path": a FullPath token."""
    url = (await prefix_token(client, world, "mcdn", scope="path"))["url"]
    token = url.split("edge-cache-token=", 1)[1]
    assert token.startswith("FullPath~Starts=") and "~Data=gwk_" in token
    return token


async def test_a_full_path_token_with_a_written_path_does_not_open_another_item(
    deployment: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = deployment
    token = await _full_path_token(client, world)
    assert await verify(client, caplog, f"{MEDIA_PATH}?edge-cache-token={token}", "mcdn") == (200, "")
    assert await verify(client, caplog, f"{SECRET_PATH}?edge-cache-token={token}", "mcdn") == (403, "bad-signature")
    written = token.replace("FullPath~", f"FullPath={MEDIA_PATH}~", 1)
    assert await verify(client, caplog, f"{SECRET_PATH}?edge-cache-token={written}", "mcdn") == (403, "malformed")
    cookie = {"Cookie": f"Edge-Cache-Cookie={written}"}
    assert await verify(client, caplog, SECRET_PATH, "mcdn", **cookie) == (403, "malformed")
    assert await verify(client, caplog, f"{MEDIA_PATH}?edge-cache-token={written}", "mcdn") == (403, "malformed")


def _reason(setup: Setup, url: str) -> str:
    try:
        setup.dialect.verify(Redemption(url, NOW + 30, options=setup.options), setup.key)
    except VerificationFailed as refused:
        return refused.reason
    return "accepted"


@pytest.mark.parametrize("name", ["media-cdn-ed25519", "media-cdn-hmac"])
def test_a_written_full_path_is_malformed_whatever_path_it_names(name: str) -> None:
    setup = SETUPS[name]
    fields = [f"Starts={NOW}", f"Expires={NOW + 300}", "Data=gwk_a"]
    token = media_cdn.sign_fields(["FullPath", *fields], [f"FullPath={MEDIA_PATH}", *fields], setup.key)
    assert _reason(setup, f"https://cdn.example.com{MEDIA_PATH}?edge-cache-token={token}") == "accepted"
    for path in (MEDIA_PATH, SECRET_PATH):
        written = token.replace("FullPath~", f"FullPath={MEDIA_PATH}~", 1)
        assert _reason(setup, f"https://cdn.example.com{path}?edge-cache-token={written}") == "malformed"


def test_a_path_holding_the_field_separator_is_never_signed() -> None:
    """``/v/other~x`` would sign ``FullPath=/v/other`` followed by a field ``x``: a token for 'other'."""
    setup = SETUPS["media-cdn-hmac"]
    request = SignRequest(url="https://cdn.example.com/v/other~x/master.m3u8", expires=NOW + 300, starts=NOW)
    with pytest.raises(InvalidInput, match="'~'"):
        setup.dialect.sign(request, setup.key)
    with pytest.raises(InvalidInput, match="'~'"):
        media_cdn.token_fields(expires=NOW + 300, path_globs="/v/a/*~URLPrefix=aHR0cHM6Ly9jZG4uZXhhbXBsZS5jb20v")


def test_text_smuggled_into_the_signed_path_is_refused_by_the_verifier() -> None:
    """A token some older signer issued for ``/v/other~x`` is not a token for ``/v/other``, nor for its own path."""
    setup = SETUPS["media-cdn-hmac"]
    fields = [f"Expires={NOW + 300}", "Data=gwk_a"]
    token = media_cdn.sign_fields(["FullPath", *fields], ["FullPath=/v/other~x", *fields], setup.key)
    smuggled = token.replace("FullPath~", "FullPath~x~", 1)
    assert _reason(setup, f"https://cdn.example.com/v/other?edge-cache-token={smuggled}") == "malformed"
    assert _reason(setup, f"https://cdn.example.com/v/other~x?edge-cache-token={token}") == "malformed"


def test_a_token_with_two_scope_fields_is_malformed() -> None:
    """Only one scope would be checked: a path glob beside a prefix, or a full path beside either."""
    setup = SETUPS["media-cdn-ed25519"]
    prefix = "URLPrefix=" + media_cdn.b64url_nopad(b"https://cdn.example.com/v/a/")
    for scopes in ([prefix, "PathGlobs=/*"], ["FullPath", prefix]):
        fields = [*scopes, f"Expires={NOW + 300}"]
        signed = [f"FullPath={SECRET_PATH}" if f == "FullPath" else f for f in fields]
        token = media_cdn.sign_fields(fields, signed, setup.key)
        assert _reason(setup, f"https://cdn.example.com{SECRET_PATH}?edge-cache-token={token}") == "malformed"


def test_a_full_path_token_is_read_at_the_request_path_only() -> None:
    setup = SETUPS["media-cdn-ed25519"]
    url = setup.dialect.sign(SignRequest(f"https://cdn.example.com{MEDIA_PATH}", NOW + 300, starts=NOW), setup.key).url
    assert _reason(setup, url) == "accepted"
    assert _reason(setup, url.replace(MEDIA_PATH, SECRET_PATH)) == "bad-signature"
