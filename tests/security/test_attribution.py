"""Attack: attribution read from a field the signature does not cover.

With an nginx secure_link expression that does not hash ``$arg_gw_kid``, a
client appends any active key id to a URL and is let in after its own key is
revoked, and the redemption is logged against someone else. A dialect now
declares whether its signature covers the key id (``attribution_covered``);
a profile that cannot is refused at start-up unless marked unattributable,
and then /v1/verify refuses its URLs. The old default expression also joined
values without separators, so ``/x.mp4`` from 127.0.0.1 and ``/x.mp41`` from
27.0.0.1 hashed alike. The real-nginx half is in tests/test_nginx_real.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.errors import ConfigError, VerificationFailed
from gateway.model import KeyAlgorithm, Permission
from gateway.services import open_services
from gateway.signing.dialects import default_registry
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.signing.dialects.nginx_secure_link import DEFAULT_EXPRESSION, NginxSecureLinkDialect
from gateway.web.app import create_app
from tests.dialect_fixtures import install_profiles, open_deployment, origin_form
from tests.security.test_path_escape import prefix_token, verify
from tests.support import ADMIN, Clock, World

UNSIGNED_KID = "$secure_link_expires$uri$remote_addr $secret"  # nginx's documented example


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    await world.principal("other", Permission.SIGN)  # a second principal with an active key
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


async def _kid(world: World, principal: str) -> str:
    [key] = [k for k in await world.services.store.keys.all(principal) if k.external_id is None]
    return key.kid


async def test_a_revoked_principal_cannot_borrow_another_key_id(
    deployment: tuple[World, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    world, client = deployment
    signed = await prefix_token(client, world, "nginx", scope="path", client_ip="127.0.0.1")
    uri, own, borrowed = origin_form(signed["url"]), signed["kid"], await _kid(world, "other")
    await world.services.admin.revoke_key(ADMIN, own, "laptop stolen", world.clock())
    without = uri.replace(f"gw_kid={own}&", "").replace(f"&gw_kid={own}", "")
    assert await verify(client, caplog, f"{without}&gw_kid={borrowed}", "nginx") == (403, "bad-signature-or-wrong-ip")
    assert await verify(client, caplog, uri, "nginx") == (403, "key-revoked")
    swapped = uri.replace(f"gw_kid={own}", f"gw_kid={borrowed}")
    assert await verify(client, caplog, swapped, "nginx") == (403, "bad-signature-or-wrong-ip")
    assert await verify(client, caplog, f"{uri}&gw_kid={borrowed}", "nginx") == (403, "malformed")
    assert await verify(client, caplog, f"{uri}&GW_KID={borrowed}", "nginx") == (403, "malformed")  # nginx: any case
    assert f"gw_kid={own}" in uri  # the default expression signs the key id
    await world.services.admin.create_key(ADMIN, "web", KeyAlgorithm.ED25519, world.clock())
    fresh = await prefix_token(client, world, "nginx", scope="path", client_ip="127.0.0.1")
    assert await verify(client, caplog, origin_form(fresh["url"]), "nginx") == (200, "")


def _with_nginx_profile(data_dir: Path, lines: str) -> None:
    profile = f'\n[profiles.nginx2]\ndialect = "nginx"\nbase_url = "https://n.example.com"\n{lines}'
    install_profiles(data_dir, ("native", "nginx2"), extra=profile)


async def test_a_profile_whose_signature_cannot_cover_the_key_id_does_not_start(config: Config) -> None:
    _with_nginx_profile(
        config.data_dir, f'secret_file = "keys/profiles/nginx.key"\noptions = {{ expression = "{UNSIGNED_KID}" }}\n'
    )
    with pytest.raises(ConfigError, match=r"^profiles\.nginx2\.options\.expression: .*unattributable = true"):
        await open_services(load_config(config.data_dir, environ={}))


async def test_nimble_must_be_marked_unattributable(config: Config) -> None:
    with (config.data_dir / "gateway.toml").open("a") as file:
        file.write('\n[profiles.live]\ndialect = "nimble"\nbase_url = "https://l.example.com"\nsecret_file = "k"\n')
    (config.data_dir / "k").write_text("defaultpassword\n")
    (config.data_dir / "k").chmod(0o600)
    with pytest.raises(ConfigError, match=r"^profiles\.live\.dialect: nimble URLs"):
        await open_services(load_config(config.data_dir, environ={}))


async def test_an_unattributable_profile_is_refused_at_verify_even_with_a_key_id_appended(
    config: Config, clock: Clock, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    extra = 'secret_file = "keys/profiles/nginx.key"\nunattributable = true\n'
    extra += f'options = {{ expression = "{UNSIGNED_KID}" }}\n'
    _with_nginx_profile(config.data_dir, extra)
    services = await open_services(load_config(config.data_dir, environ={}), clock=clock)
    try:
        world = World(services, clock)
        await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
        await world.media("a")
        client = await aiohttp_client(create_app(services, close_services=False))
        body = {"media_id": "a", "rendition": "video", "viewer": {"id": "alice"}, "profile": "nginx2",
                "client_ip": "127.0.0.1"}  # fmt: skip
        signed = await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json()
        uri = origin_form(signed["url"])
        assert "gw_kid" not in uri  # nothing would sign it
        assert await verify(client, caplog, f"{uri}&gw_kid={signed['kid']}", "nginx2") == (403, "unattributable")
    finally:
        await services.close()


def test_the_dialects_declare_what_their_signature_covers() -> None:
    covered = {d.name: d.attribution_covered({}) for d in default_registry().all()}
    assert covered == {
        "akamai": True, "bunny": True, "cloudfront": True, "google-cdn": True, "media-cdn": True,
        "native": True, "nginx": True, "nimble": False, "s3": True, "wowza": True,
    }  # fmt: skip
    nginx = NginxSecureLinkDialect()
    assert not nginx.attribution_covered({"expression": UNSIGNED_KID})
    assert not nginx.attribution_covered({"expression": "$uri $arg_gw_kidx $secret"})
    assert nginx.attribution_covered({"expression": "$uri $arg_GW_KID $secret"})


def test_an_unsigned_key_id_is_never_reported() -> None:
    nginx = NginxSecureLinkDialect()
    key = nginx.load_key(b"s3cr3t", None)
    options = {"expression": UNSIGNED_KID}
    url = nginx.sign(SignRequest("https://n/v/a.mp4", 1_800_000_300, ip="127.0.0.1", options=options), key).url
    verified = nginx.verify(Redemption(url + "&gw_kid=gwk_someone", 1_800_000_000, "127.0.0.1", options=options), key)
    assert (verified.expires, verified.attribution) == (1_800_000_300, None)


@pytest.mark.parametrize(
    ("path", "client", "shifted_path", "shifted_client"),
    [
        ("/x.mp4", "127.0.0.1", "/x.mp41", "27.0.0.1"),
        ("/v/a/seg-1", "10.0.0.1", "/v/a/seg-11", "0.0.0.1"),
    ],
)
def test_the_default_expression_is_injective(path: str, client: str, shifted_path: str, shifted_client: str) -> None:
    """Values joined without separators let a URL move characters from the path into the address."""
    nginx = NginxSecureLinkDialect()
    key = nginx.load_key(b"s3cr3t", None)
    request = SignRequest(f"https://n{path}", 1_800_000_300, ip=client, attribution="gwk_alice0001")
    url = nginx.sign(request, key).url
    assert nginx.verify(Redemption(url, 1_800_000_000, client), key).attribution == "gwk_alice0001"
    shifted = url.replace(path + "?", shifted_path + "?")
    with pytest.raises(VerificationFailed) as refused:
        nginx.verify(Redemption(shifted, 1_800_000_000, shifted_client), key)
    assert refused.value.reason == "bad-signature-or-wrong-ip"
    assert DEFAULT_EXPRESSION == "$secure_link_expires $arg_gw_kid $remote_addr $uri $secret"
