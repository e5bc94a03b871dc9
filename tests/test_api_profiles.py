"""CDN profiles over HTTP: each principal's own CDN key, shared secrets with attribution, revocation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.model import KeyAlgorithm, Permission
from gateway.services import Services, open_services
from gateway.web.app import create_app
from tests.support import ADMIN, Clock, World, init_data_dir

PROFILES = """
[profiles.cf]
dialect = "cloudfront"
base_url = "https://d111111abcdef8.cloudfront.net"
options = { hash_algorithm = "SHA256" }

[profiles.akamai]
dialect = "akamai"
base_url = "https://media.example.com"
secret_file = "keys/profiles/akamai.hex"

[profiles.bunny]
dialect = "bunny"
base_url = "https://zone.b-cdn.net"
secret_file = "keys/profiles/bunny.key"

[profiles.nimble]
dialect = "nimble"
base_url = "https://live.example.com"
secret_file = "keys/profiles/nimble.key"
unattributable = true

[verify]
profiles = ["native", "cf", "akamai", "bunny", "nimble"]
"""


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    init_data_dir(tmp_path)
    return tmp_path


@pytest.fixture
async def profiled(initialised: Path, clock: Clock) -> AsyncIterator[Services]:
    tmp_path = initialised
    (tmp_path / "keys" / "profiles").mkdir()
    (tmp_path / "keys" / "profiles" / "akamai.hex").write_text("eee7e9157f81b2f6d471bf2c\n")
    (tmp_path / "keys" / "profiles" / "bunny.key").write_text("SecurityKey\n")
    (tmp_path / "keys" / "profiles" / "nimble.key").write_text("defaultpassword\n")
    for secret in (tmp_path / "keys" / "profiles").iterdir():
        secret.chmod(0o600)  # a shared secret readable by others is refused at start-up
    with (tmp_path / "gateway.toml").open("a") as config:
        config.write(PROFILES)
    services = await open_services(load_config(tmp_path, environ={}), clock=clock)
    yield services
    await services.close()


@pytest.fixture
async def cdn(profiled: Services, clock: Clock, aiohttp_client) -> tuple[World, TestClient]:  # type: ignore[no-untyped-def]
    world = World(profiled, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    return world, await aiohttp_client(create_app(profiled, close_services=False))


async def _sign(client: TestClient, world: World, **body: object):  # type: ignore[no-untyped-def]
    payload = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, **body}
    return await client.post("/v1/sign", json=payload, headers=world.auth("web"))


async def _verify(client: TestClient, url: str, profile: str, **headers: str) -> int:
    response = await client.get("/v1/verify", headers={"X-Original-URI": url, "X-Gateway-Profile": profile, **headers})
    return response.status


async def test_cloudfront_needs_the_principals_own_linked_key(cdn: tuple[World, TestClient]) -> None:
    world, client = cdn
    assert (await _sign(client, world, profile="cf")).status == 403  # only an Ed25519 key so far
    key = await world.services.admin.create_key(ADMIN, "web", KeyAlgorithm.RSA_2048, world.clock())
    assert (await _sign(client, world, profile="cf")).status == 403  # not linked to a CloudFront id yet
    await world.services.admin.link_key(ADMIN, key.kid, "K2JCJMDEHXQW5F", world.clock())
    response = await _sign(client, world, profile="cf", scope="prefix")
    body = await response.json()
    assert response.status == 200 and body["kid"] == key.kid and body["profile"] == "cf"
    assert "Key-Pair-Id=K2JCJMDEHXQW5F" in body["url"] and "Hash-Algorithm=SHA256" in body["url"]
    assert set(body["cookies"]) == {"CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id",
                                    "CloudFront-Hash-Algorithm"}  # fmt: skip
    assert await _verify(client, body["url"], "cf") == 200
    segment = "/v/m1/seg-9.ts"
    cookie = "; ".join(f"{n}={v}" for n, v in body["cookies"].items())
    assert await _verify(client, segment, "cf", Cookie=cookie) == 200
    assert await _verify(client, "/v/m2/seg-9.ts", "cf", Cookie=cookie) == 403
    await world.services.admin.revoke_key(ADMIN, key.kid, "rotated out", world.clock())
    assert await _verify(client, body["url"], "cf") == 403
    assert await _verify(client, segment, "cf", Cookie=cookie) == 403


async def test_shared_secret_formats_carry_and_enforce_the_principals_kid(
    cdn: tuple[World, TestClient],
) -> None:
    world, client = cdn
    for profile in ("akamai", "bunny"):
        body = await (await _sign(client, world, profile=profile, scope="prefix")).json()
        [key] = await world.services.store.keys.all("web")
        assert key.kid in body["url"]  # the kid travels in a signed field
        assert await _verify(client, body["url"], profile) == 200
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    assert await _verify(client, body["url"], "bunny") == 403


async def test_a_format_that_cannot_name_the_principal_is_refused_by_the_verifier(
    cdn: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = cdn
    response = await _sign(client, world, profile="nimble", client_ip="203.0.113.9")
    assert response.status == 200
    url = (await response.json())["url"]
    with caplog.at_level(logging.INFO, logger="gateway.verify"):
        assert await _verify(client, url, "nimble", **{"X-Forwarded-For": "203.0.113.9"}) == 403
    assert caplog.records[-1].getMessage().endswith(": unattributable")


async def test_format_limits_are_clear_400s(cdn: tuple[World, TestClient]) -> None:
    world, client = cdn
    key = await world.services.admin.create_key(ADMIN, "web", KeyAlgorithm.ECDSA_P256, world.clock(), external_id="K9")
    assert key.external_id == "K9"
    response = await _sign(client, world, profile="cf", client_ip="2001:db8::1")
    assert response.status == 400 and "IPv6" in (await response.json())["message"]
    response = await _sign(client, world, profile="nimble")
    assert response.status == 400 and "IP" in (await response.json())["message"]
    assert (await _sign(client, world, profile="nope")).status == 400


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[profiles.x]\ndialect = "akamai"\nbase_url = "https://a"\n', "secret_file is required"),
        (
            '[profiles.x]\ndialect = "cloudfront"\nbase_url = "https://a"\nsecret_file = "k"\n',
            "principal's key",
        ),
        ('[profiles.x]\ndialect = "rtmp"\nbase_url = "https://a"\n', "unknown dialect"),
        (
            '[profiles.x]\ndialect = "akamai"\nbase_url = "https://a"\nsecret_file = "missing"\n',
            "No such file",
        ),
        ('[profiles.x]\ndialect = "akamai"\nbase_url = "https://a"\ncolour = 1\n', "colour"),
        ('[signing]\nprofile = "cf"\n', "no profile named"),
        ('[verify]\nprofiles = ["native", "cf"]\n', "verify.profiles: no profile named 'cf'"),
        (
            '[profiles.x]\ndialect = "akamai"\nbase_url = "https://a"\nsecret_file = "k"\nunattributable = "yes"\n',
            "profiles.x.unattributable must be true or false",
        ),
    ],
)
async def test_bad_profiles_stop_start_up_naming_the_setting(initialised: Path, extra: str, message: str) -> None:
    config = initialised / "gateway.toml"
    text = config.read_text()
    if extra.startswith("[signing]"):  # the file has a [signing] table already: set the key inside it
        config.write_text(text.replace("[signing]\n", extra))
    else:
        config.write_text(text + extra)
    with pytest.raises(ConfigError, match=message):
        await open_services(load_config(initialised, environ={}))


async def test_link_revocation_reaches_every_format_that_signs_its_issue_time(cdn: tuple[World, TestClient]) -> None:
    """CloudFront (DateGreaterThan) and Akamai (st) carry a signed start = issue time: refused once the item's
    links are revoked. Bunny signs none: only its expiry bounds it (docs/dialects.md, "Link revocation")."""
    world, client = cdn
    key = await world.services.admin.create_key(ADMIN, "web", KeyAlgorithm.RSA_2048, world.clock())
    await world.services.admin.link_key(ADMIN, key.kid, "K2JCJMDEHXQW5F", world.clock())
    urls = {profile: (await (await _sign(client, world, profile=profile)).json())["url"]
            for profile in ("cf", "akamai", "bunny")}  # fmt: skip
    assert "Policy=" in urls["cf"] and "st=" in urls["akamai"]
    assert {p: await _verify(client, u, p) for p, u in urls.items()} == {"cf": 200, "akamai": 200, "bunny": 200}
    world.clock.advance(2)
    await world.services.admin.revoke_links(ADMIN, "m1", "leaked", world.clock())
    assert {p: await _verify(client, u, p) for p, u in urls.items()} == {"cf": 403, "akamai": 403, "bunny": 200}


async def test_a_shared_secret_readable_by_others_stops_start_up(initialised: Path, clock: Clock) -> None:
    (initialised / "keys" / "profiles").mkdir()
    secret = initialised / "keys" / "profiles" / "akamai.hex"
    secret.write_text("eee7e9157f81b2f6d471bf2c\n")
    secret.chmod(0o644)
    with (initialised / "gateway.toml").open("a") as config:
        config.write('[profiles.akamai]\ndialect = "akamai"\nbase_url = "https://m.example.com"\n'
                     'secret_file = "keys/profiles/akamai.hex"\n')  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        await open_services(load_config(initialised, environ={}), clock=clock)
    assert refused.value.message == f"profiles.akamai.secret_file: {secret} is readable by others (mode 644); chmod 600"
