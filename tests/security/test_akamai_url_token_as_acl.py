"""Attack: an Akamai URL-mode token re-presented as an ACL token (``acl=*``) opens every path.

A URL-mode token signs ``…~data=…~url=<path>`` and does not send ``url``.
When the media path holds ``~acl=*``, that message is also the message of a
token that *sends* ``url=<path up to ~>~acl=*``: its HMAC matches and it is
read as an ACL token for every path. The signer refuses ``~`` and ``!`` (the
ACL separator) in a URL-mode path (400 at /v1/sign), and the verifier
refuses a presented ``url`` field, or any field a token never carries.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.errors import InvalidInput, VerificationFailed
from gateway.model import Rendition, Visibility
from gateway.signing.dialects import akamai
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.web.app import create_app
from tests.dialect_fixtures import open_deployment
from tests.security.test_path_escape import prefix_token, verify
from tests.support import ADMIN, Clock, World

SECRET = bytes.fromhex("eee7e9157f81b2f6d471bf2c")  # the deployment's akamai profile secret
PUBLIC_PATH = "/v/pub/master.m3u8~acl=*"  # an unlisted item's path that holds the ACL field
SECRET_PATH = "/v/other/master.m3u8"  # item "other": private to alice
NOW = 1_800_000_000


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    paths = {Rendition.VIDEO: PUBLIC_PATH, Rendition.THUMBNAIL: "/t/pub.jpg"}
    await world.services.admin.put_media(ADMIN, "pub", "alice", "w1", Visibility.UNLISTED, paths, clock())
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


def _as_acl_token(token: str) -> str:
    """The URL-mode token with the signed-but-unsent url field written out: ``…~url=/v/pub/master.m3u8~acl=*``."""
    fields, _, mac = token.rpartition("~hmac=")
    return f"{fields}~url={PUBLIC_PATH}~hmac={mac}"


async def test_the_gateway_refuses_to_sign_a_url_token_for_a_path_holding_a_delimiter(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    body = {"media_id": "pub", "rendition": "video", "viewer": {"id": "bob"}, "scope": "path", "profile": "akamai"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert (response.status, await response.json()) == (400, {
        "error": "invalid_request",
        "message": "an Akamai URL token cannot sign a path containing '~' or '!' (token delimiters)",
    })  # fmt: skip


async def test_a_url_token_written_out_as_an_acl_token_opens_nothing(
    deployment: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """The token the gateway signed for the path before the fix (``generate_token``: the format, no policy),
    attributed to web's key as the gateway attributes every Akamai token."""
    world, client = deployment
    signed = (await prefix_token(client, world, "akamai", scope="path"))["url"]  # item "a": no delimiter
    kid = signed.split("~data=", 1)[1].split("~", 1)[0]
    token = akamai.generate_token(SECRET, expires=int(world.clock()) + 300, starts=int(world.clock()),
                                  url=PUBLIC_PATH, data=kid)  # fmt: skip
    forged = _as_acl_token(token)
    assert forged.count("~acl=*~hmac=") == 1
    assert await verify(client, caplog, f"{SECRET_PATH}?__token__={forged}", "akamai") == (403, "malformed")
    cookie = {"Cookie": f"__token__={forged}"}
    assert await verify(client, caplog, SECRET_PATH, "akamai", **cookie) == (403, "malformed")


@pytest.mark.parametrize("path", ["/v/a~acl=*", "/v/a!b", "/v/a~x"])
def test_the_dialect_refuses_delimiters_in_a_url_mode_path(path: str) -> None:
    dialect = akamai.AkamaiDialect()
    key = dialect.load_key(SECRET.hex().encode(), None)
    with pytest.raises(InvalidInput, match="'~' or '!'"):
        dialect.sign(SignRequest(f"https://media.example.com{path}", NOW + 300), key)


def _maced(fields: str) -> str:
    mac = hmac.new(SECRET, fields.encode(), hashlib.sha256).hexdigest()
    return f"https://media.example.com/v/a/x.ts?__token__={fields}~hmac={mac}"


@pytest.mark.parametrize("extra", ["url=/v/a", "salt=pepper", "colour=red"])
def test_a_field_a_token_never_carries_is_malformed(extra: str) -> None:
    """Even a correctly MACed token: ``url`` and ``salt`` are signed, never sent; other names are not Akamai's."""
    dialect = akamai.AkamaiDialect()
    key = dialect.load_key(SECRET.hex().encode(), None)
    fields = f"exp={NOW + 300}~acl=/v/a/*"
    assert dialect.verify(Redemption(_maced(fields), NOW), key).expires == NOW + 300
    with pytest.raises(VerificationFailed) as refused:
        dialect.verify(Redemption(_maced(f"{fields}~{extra}"), NOW), key)
    assert refused.value.reason == "malformed"
