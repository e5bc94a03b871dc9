"""Principal and viewer JWTs, including the classic JWT attacks."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings

from gateway.access import tokens
from gateway.config import VIEWER_ALGORITHMS
from gateway.errors import Unauthenticated
from gateway.keys.material import ed25519_public
from tests import jwt_strategies
from tests.http_support import b64
from tests.jwt_strategies import EXAMPLES

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


# ---- strict reading: time claims are finite numbers, no claim is read two ways, the key fits the algorithm

_ED_KEY = Ed25519PrivateKey.from_private_bytes(SEED)
_RSA_KEY = rsa.generate_private_key(65537, 2048)
_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _signed_raw(payload: bytes, header: bytes = b'{"alg":"EdDSA","kid":"gwc_abc"}') -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    return f"{signing_input}.{b64(_ED_KEY.sign(signing_input.encode()))}"


@pytest.mark.parametrize(
    ("literal", "why"),
    [("NaN", "NaN is not a JSON number"), ("Infinity", "Infinity is not a JSON number"),
     ("-Infinity", "-Infinity is not a JSON number"), ("1e999", "1e999 does not fit a finite number")],
)  # fmt: skip
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_non_finite_time_claims_are_refused(claim: str, literal: str, why: str) -> None:
    times = {"exp": int(NOW) + 60, "iat": int(NOW), "nbf": int(NOW), claim: "@"}
    claims = {"iss": "svc", "sub": "svc", "aud": "media-gateway", **times}
    token = _signed_raw(json.dumps(claims).replace('"@"', literal).encode())
    with pytest.raises(Unauthenticated) as refused:
        _check(token)
    assert refused.value.message == f"malformed token: the payload is not strict JSON: {why}"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400, 2**53, "60", True, [1]])
def test_check_times_wants_finite_bounded_numbers(value: object) -> None:
    with pytest.raises(Unauthenticated) as refused:
        tokens.check_times({"exp": value, "iat": NOW}, NOW, None)
    assert refused.value.message == "invalid token: exp must be a finite number of seconds"


def test_duplicate_claims_are_refused() -> None:
    token = _signed_raw(b'{"iss":"svc","sub":"svc","aud":"media-gateway","iat":1,"exp":1,"exp":9999999999}')
    with pytest.raises(Unauthenticated) as refused:
        _check(token)
    assert refused.value.message == "malformed token: the payload is not strict JSON: duplicate key 'exp'"


def test_a_header_read_two_ways_is_refused_before_any_lookup() -> None:
    token = _signed_raw(b"{}", header=b'{"alg":"EdDSA","kid":"gwc_abc","kid":"gwc_other"}')
    with pytest.raises(Unauthenticated) as refused:
        tokens.unverified_key_id(token)
    assert refused.value.message == "malformed token: the header is not strict JSON: duplicate key 'kid'"


@pytest.mark.parametrize(
    ("alg", "signer", "key"),
    [
        ("RS256", _RSA_KEY, _ED_KEY.public_key()),
        ("ES256", _EC_KEY, _ED_KEY.public_key()),
        ("PS256", _RSA_KEY, _EC_KEY.public_key()),
        ("EdDSA", _ED_KEY, _RSA_KEY.public_key()),
        ("ES256", _EC_KEY, _RSA_KEY.public_key()),
    ],
    ids=["RS256-vs-Ed25519", "ES256-vs-Ed25519", "PS256-vs-EC", "EdDSA-vs-RSA", "ES256-vs-RSA"],
)
def test_an_allowed_algorithm_with_a_key_of_another_family_is_a_401(alg: str, signer: object, key: object) -> None:
    claims = {"iss": "idp", "aud": "app", "sub": "alice", "iat": NOW, "exp": NOW + 60}
    token = jwt.encode(claims, signer, algorithm=alg)  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated) as refused:
        tokens.viewer_from_token(
            token, key, algorithms=VIEWER_ALGORITHMS, issuer="idp", audience="app",  # type: ignore[arg-type]
            workspaces_claim="ws", now=NOW,
        )  # fmt: skip
    assert refused.value.message == "invalid token: the key does not fit the token's algorithm"


def test_every_configurable_viewer_algorithm_is_a_public_key_algorithm_pyjwt_knows() -> None:
    supported = jwt.algorithms.get_default_algorithms()
    for name in VIEWER_ALGORITHMS:
        algorithm = supported[name]
        assert not isinstance(algorithm, jwt.algorithms.HMACAlgorithm | jwt.algorithms.NoneAlgorithm), name
        assert name[:2] in {"RS", "PS", "ES", "Ed"}, name  # a key family tokens._FAMILIES knows


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("a" * (tokens.MAX_TOKEN_LENGTH + 1), f"token too large: more than {tokens.MAX_TOKEN_LENGTH} characters"),
        ("eyJ\udcff.e30.x", "malformed token: not three base64url segments"),
        ("eyJhbGciOiJFZERTQSJ9.e30.x=", "malformed token: not three base64url segments"),
        ("W10.e30.x", "malformed token: the header is not a JSON object"),
        ("a.e30.x", "malformed token: the header is not base64url"),
    ],
    ids=["oversize", "surrogate", "padding", "array-header", "bad-base64"],
)
def test_malformed_tokens_are_refused_by_shape(token: str, message: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        tokens.unverified_header(token)
    assert refused.value.message == message


# ---- fuzzing the JWT edge: whatever arrives, the answer is claims or Unauthenticated (a 401), nothing else


def _viewer_reader(key: object) -> object:
    return lambda token: tokens.viewer_from_token(
        token, key, algorithms=VIEWER_ALGORITHMS, issuer="idp", audience="app", workspaces_claim="ws", now=NOW
    )


_READERS = (
    tokens.unverified_key_id,
    lambda token: tokens.principal_claims(token, "svc", PUBLIC, "media-gateway", NOW, 3600),
    *(_viewer_reader(key) for key in (_ED_KEY.public_key(), _RSA_KEY.public_key(), _EC_KEY.public_key())),
)


def _every_reader(token: str) -> None:
    for read in _READERS:
        try:
            read(token)  # type: ignore[operator]
        except Unauthenticated as refused:
            assert refused.status == 401 and refused.message
            assert refused.message.isprintable()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jwt_strategies.tokens(_ED_KEY))
def test_fuzz_any_token_is_claims_or_a_401(token: str) -> None:
    _every_reader(token)


def test_what_pyjwt_quotes_from_the_token_comes_back_escaped() -> None:
    """Found by the fuzz test: pyjwt names an unknown "crit" extension verbatim, terminal escapes included."""
    token = _signed_raw(b"{}", header=b'{"alg":"EdDSA","kid":"gwc_abc","crit":["\\u001b[2J"]}')
    with pytest.raises(Unauthenticated) as refused:
        _check(token)
    assert refused.value.message == "invalid token: Unsupported critical extension: \\x1b[2J"
