"""Principal and viewer JWTs, including the classic JWT attacks."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.access import tokens
from gateway.errors import Unauthenticated
from gateway.keys.material import ed25519_public

NOW = 1_800_000_000.0
SEED = bytes(range(32))
PUBLIC = ed25519_public(SEED)


def _mint(**overrides: object) -> str:
    args = {"credential_id": "gwc_abc", "principal_id": "svc", "private_seed": SEED,
            "audience": "media-gateway", "now": NOW, "ttl": 600}  # fmt: skip
    args.update(overrides)
    return tokens.mint_principal_token(**args)  # type: ignore[arg-type]


def _check(token: str, now: float = NOW, principal: str = "svc") -> dict:
    return tokens.principal_claims(token, principal, PUBLIC, "media-gateway", now, 3600)


def test_a_fresh_token_is_accepted() -> None:
    assert _check(_mint())["sub"] == "svc"
    assert tokens.unverified_key_id(_mint()) == "gwc_abc"


@pytest.mark.parametrize(
    ("token_args", "now", "message"),
    [
        ({}, NOW + 700, "expired"),
        ({"now": NOW + 600}, NOW, "not valid yet"),
        ({"audience": "other"}, NOW, "(?i)audience"),
        ({"ttl": 7200}, NOW, "lifetime"),
    ],
)
def test_time_and_audience_are_enforced(token_args: dict, now: float, message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        _check(_mint(**token_args), now)


def test_a_token_for_one_principal_is_not_accepted_for_another() -> None:
    with pytest.raises(Unauthenticated):
        _check(_mint(), principal="admin")


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"gwc_abc"}').rstrip(b"=").decode()
    claims = {"iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": NOW, "exp": NOW + 60}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated):
        _check(f"{header}.{body}.")


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    # algorithm confusion: an attacker HMACs with the (public) verification key
    claims = {"iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": NOW, "exp": NOW + 60}
    forged = jwt.encode(claims, PUBLIC, algorithm="HS256", headers={"kid": "gwc_abc"})
    with pytest.raises(Unauthenticated):
        _check(forged)


def test_a_token_without_exp_is_refused() -> None:
    claims = {"iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": NOW}
    token = jwt.encode(claims, Ed25519PrivateKey.from_private_bytes(SEED), algorithm="EdDSA")
    with pytest.raises(Unauthenticated, match="exp"):
        _check(token)


def test_a_token_signed_by_another_key_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        _check(_mint(private_seed=bytes(32)))


def test_garbage_has_no_key_id() -> None:
    with pytest.raises(Unauthenticated):
        tokens.unverified_key_id("not.a.jwt")


def _viewer(token: str, now: float = NOW):  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    return tokens.viewer_from_token(
        token, key, algorithms=["EdDSA"], issuer="idp", audience="app", workspaces_claim="ws", now=now
    )


def _viewer_token(**claims: object) -> str:
    base = {"iss": "idp", "aud": "app", "sub": "alice", "ws": ["w1"], "iat": NOW, "exp": NOW + 60}
    base.update(claims)
    return jwt.encode(
        {k: v for k, v in base.items() if v is not None},
        Ed25519PrivateKey.from_private_bytes(SEED),
        algorithm="EdDSA",
    )


def test_viewer_token_gives_subject_and_workspaces() -> None:
    viewer = _viewer(_viewer_token())
    assert viewer.subject == "alice" and viewer.workspaces == {"w1"} and viewer.source == "token"


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "evil"},
        {"aud": "other"},
        {"sub": None},
        {"sub": "a b"},
        {"ws": "w1"},
        {"ws": ["bad space"]},
        {"exp": None},
    ],
    ids=["issuer", "audience", "no-sub", "bad-sub", "ws-not-list", "bad-ws", "no-exp"],
)
def test_bad_viewer_tokens_are_refused(claims: dict) -> None:
    with pytest.raises(Unauthenticated):
        _viewer(_viewer_token(**claims))


def test_expired_viewer_token_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="expired"):
        _viewer(_viewer_token(), now=NOW + 120)
