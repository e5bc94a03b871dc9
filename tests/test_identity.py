"""Who is calling: a token's signature is checked once while it lasts; its credential and principal always."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from gateway.access.identity import Identity, JwksViewerKeys, NoViewerKeys, PemViewerKey, bearer, viewer_keys_from
from gateway.errors import ConfigError, Unauthenticated
from gateway.model import Permission
from tests.support import ADMIN, World


async def _refusal(world: World, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        await world.services.identity.principal(token, world.clock())
    return refused.value.message


async def test_a_principal_token_is_verified_once_then_remembered_until_it_expires(world: World) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    identity = world.services.identity
    token = world.token("web", ttl=600)
    assert (await identity.principal(token, world.clock())).id == "web"
    assert (await identity.principal(token, world.clock())).id == "web"
    assert (identity.principal_tokens.hits, identity.principal_tokens.misses) == (1, 1)
    world.clock.advance(600 + 29)  # inside the 30 s leeway: still good, from memory
    assert (await identity.principal(token, world.clock())).id == "web"
    world.clock.advance(1)
    assert await _refusal(world, token) == "token has expired"


async def test_a_remembered_token_is_refused_once_its_credential_is_revoked_or_principal_disabled(
    world: World,
) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    await world.principal("app", Permission.SIGN, key=None)
    identity = world.services.identity
    web, app = world.token("web"), world.token("app")
    await identity.principal(web, world.clock())
    await identity.principal(app, world.clock())
    credential_id = world.seeds["web"][0]
    await world.services.admin.revoke_credential(ADMIN, credential_id, "leaked", world.clock())
    assert await _refusal(world, web) == "unknown or revoked credential"
    await world.services.admin.disable_principal(ADMIN, "app", world.clock())
    assert await _refusal(world, app) == "principal is disabled"


async def test_a_tampered_token_is_not_taken_for_a_remembered_one(world: World) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    token = world.token("web")
    await world.services.identity.principal(token, world.clock())
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BA'}"
    assert (await _refusal(world, forged)).startswith("invalid token")


async def test_a_viewer_token_is_remembered_with_its_viewer(world: World) -> None:
    identity = world.services.identity
    token = world.viewer_token("bob", "acme", ttl=60)
    first = await identity.viewer(token, world.clock())
    assert (first.subject, first.workspaces) == ("bob", frozenset({"acme"}))
    assert await identity.viewer(token, world.clock()) == first
    assert identity.viewer_tokens.hits == 1
    world.clock.advance(60 + 30)
    with pytest.raises(Unauthenticated, match="token has expired"):
        await identity.viewer(token, world.clock())


# --- where viewer tokens' keys come from (gateway.access.identity.viewer_keys_from) ---------------------------------


def _viewer_config(tmp_path: Path, jwks_url: str | None = None, public_key_file: str | None = None) -> Any:
    return SimpleNamespace(viewer=SimpleNamespace(jwks_url=jwks_url, public_key_file=public_key_file),
                           data_dir=tmp_path)  # fmt: skip


def _write_public_key(path: Path, key: Any) -> None:
    path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


async def test_viewer_keys_come_from_the_jwks_url_first_then_a_pem_file_relative_to_the_data_dir(
    tmp_path: Path,
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    _write_public_key(tmp_path / "idp.pem", key)
    jwks = viewer_keys_from(_viewer_config(tmp_path, "https://idp.example/jwks", "idp.pem"))
    assert isinstance(jwks, JwksViewerKeys)
    pem = viewer_keys_from(_viewer_config(tmp_path, None, "idp.pem"))
    assert isinstance(pem, PemViewerKey)
    assert (await pem.key_for("any")).public_bytes(Encoding.Raw, PublicFormat.Raw) == key.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw
    )
    absolute = viewer_keys_from(_viewer_config(tmp_path / "elsewhere", None, str(tmp_path / "idp.pem")))
    assert isinstance(absolute, PemViewerKey)
    assert isinstance(viewer_keys_from(_viewer_config(tmp_path)), NoViewerKeys)


def test_a_viewer_key_file_that_is_no_signing_public_key_is_a_config_error(tmp_path: Path) -> None:
    _write_public_key(tmp_path / "x25519.pem", x25519.X25519PrivateKey.generate())
    with pytest.raises(ConfigError, match=r"x25519\.pem is not an RSA, EC or EdDSA public key$"):
        PemViewerKey(tmp_path / "x25519.pem")
    with pytest.raises(ConfigError, match=r"^viewer\.public_key_file: cannot load .*missing\.pem"):
        PemViewerKey(tmp_path / "missing.pem")


@pytest.mark.parametrize(("header", "token"), [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  abc ", "abc")])
def test_bearer_reads_the_token_of_the_bearer_scheme(header: str, token: str) -> None:
    assert bearer(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic abc", "Bearerabc", "abc",
                                    "Bear abc", "B abc", "Bearerx abc", "xBearer abc", " abc"])  # fmt: skip
def test_bearer_refuses_anything_else_with_one_message(header: str | None) -> None:
    with pytest.raises(Unauthenticated, match=r"^a Bearer token is required$"):
        bearer(header)


async def test_a_fresh_token_of_a_revoked_or_unknown_credential_is_refused_before_its_signature(world: World) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    token = world.token("web")
    await world.services.admin.revoke_credential(ADMIN, world.seeds["web"][0], "leaked", world.clock())
    assert await _refusal(world, token) == "unknown or revoked credential"  # never verified before
    world.seeds["ghost"] = ("gwc_ghost", world.seeds["web"][1])
    assert await _refusal(world, world.token("ghost")) == "unknown or revoked credential"


async def test_a_remembered_token_whose_credential_or_principal_left_the_view_is_refused(world: World) -> None:
    """The view is rebuilt from the store (a restore, a replica catching up): never a 500 for what it lacks."""
    await world.principal("web", Permission.SIGN, key=None)
    await world.principal("app", Permission.SIGN, key=None)
    identity, view = world.services.identity, world.services.state.view
    web, app = world.token("web"), world.token("app")
    await identity.principal(web, world.clock())
    await identity.principal(app, world.clock())
    del view.credentials[world.seeds["web"][0]]
    assert await _refusal(world, web) == "unknown or revoked credential"
    del view.principals["app"]
    assert await _refusal(world, app) == "principal is disabled"


class _CountingKeys:
    def __init__(self, key: Any) -> None:
        self.key, self.calls = key, 0

    async def key_for(self, token: str) -> Any:
        self.calls += 1
        return self.key


async def test_a_viewer_token_is_verified_once_while_it_lasts(world: World) -> None:
    config = world.services.config
    public = load_pem_private_key(config.dev_idp_key_path.read_bytes(), None).public_key()
    keys = _CountingKeys(public)
    identity = Identity(world.services.state, config, keys)
    token = world.viewer_token("alice", "w1")
    first = await identity.viewer(token, world.clock())
    assert first == await identity.viewer(token, world.clock())
    assert (first.subject, first.workspaces, keys.calls) == ("alice", frozenset({"w1"}), 1)


async def test_viewer_tokens_need_a_configured_issuer(world: World) -> None:
    config = world.services.config
    unconfigured = dataclasses.replace(config, viewer=dataclasses.replace(config.viewer, issuer=""))
    public = load_pem_private_key(config.dev_idp_key_path.read_bytes(), None).public_key()
    identity = Identity(world.services.state, unconfigured, _CountingKeys(public))  # keys there, issuer not
    with pytest.raises(Unauthenticated, match=r"^viewer tokens are not configured \(viewer\.issuer\)$"):
        await identity.viewer(world.viewer_token("alice"), world.clock())


@pytest.mark.parametrize("subject", ["we", "webx", "", "Web", "xweb"])
async def test_a_principal_token_s_subject_is_its_issuer_exactly(world: World, subject: str) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    credential_id, seed = world.seeds["web"]
    now = int(world.clock())
    claims = {"iss": "web", "sub": subject, "aud": world.services.config.api_audience, "iat": now, "exp": now + 600,
              "jti": "x"}  # fmt: skip
    token = jwt.encode(claims, Ed25519PrivateKey.from_private_bytes(seed), algorithm="EdDSA",
                       headers={"kid": credential_id})  # fmt: skip
    assert await _refusal(world, token) == "token subject does not match its issuer"
