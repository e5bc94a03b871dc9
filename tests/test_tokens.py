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


def _refusal(token: str, now: float = NOW, principal: str = "svc") -> str:
    with pytest.raises(Unauthenticated) as refused:
        _check(token, now, principal)
    return refused.value.message


def test_a_token_for_one_principal_is_not_accepted_for_another() -> None:
    assert _refusal(_mint(), principal="admin") == "invalid token: wrong issuer"


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"gwc_abc"}').rstrip(b"=").decode()
    claims = {"iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": NOW, "exp": NOW + 60}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert _refusal(f"{header}.{body}.") == "invalid token: algorithm not allowed"


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    # algorithm confusion: an attacker HMACs with the (public) verification key
    claims = {"iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": NOW, "exp": NOW + 60}
    forged = jwt.encode(claims, PUBLIC, algorithm="HS256", headers={"kid": "gwc_abc"})
    assert _refusal(forged) == "invalid token: algorithm not allowed"


def test_a_token_without_exp_is_refused() -> None:
    claims = {"iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": NOW}
    token = jwt.encode(claims, Ed25519PrivateKey.from_private_bytes(SEED), algorithm="EdDSA")
    with pytest.raises(Unauthenticated, match="exp"):
        _check(token)


def test_a_token_signed_by_another_key_is_refused() -> None:
    assert _refusal(_mint(private_seed=bytes(32))) == "invalid token: bad signature"


def test_garbage_has_no_key_id() -> None:
    with pytest.raises(Unauthenticated) as refused:
        tokens.unverified_key_id("not.a.jwt")
    assert refused.value.message.startswith("malformed token: the header is not strict JSON: ")


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


_NAME_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ : @ -"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iss": "evil"}, "invalid token: wrong issuer"),
        ({"iss": None}, "invalid token: no iss claim"),
        ({"aud": "other"}, "invalid token: wrong audience"),
        ({"sub": None}, "invalid token: no sub claim"),
        ({"sub": "a b"}, f"invalid token: viewer subject {_NAME_RULE}"),
        ({"ws": "w1"}, "invalid token: ws must be a list"),
        ({"ws": ["bad space"]}, f"invalid token: workspace {_NAME_RULE}"),
        ({"exp": None}, "invalid token: no exp claim"),
        ({"iat": None}, "invalid token: no iat claim"),
    ],
    ids=["issuer", "no-issuer", "audience", "no-sub", "bad-sub", "ws-not-list", "bad-ws", "no-exp", "no-iat"],
)
def test_bad_viewer_tokens_are_refused(claims: dict, message: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        _viewer(_viewer_token(**claims))
    assert refused.value.message == message


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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400, 2**53, -(2**53), "60", True, [1]])
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


# ---- each claim by its own test, at its exact boundary (the clock-skew leeway is 30 seconds)


def _principal_token(**claims: object) -> str:
    base = {"iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": NOW, "exp": NOW + 600, **claims}
    return jwt.encode({k: v for k, v in base.items() if v is not None}, _ED_KEY, algorithm="EdDSA")


def test_exp_is_honoured_to_the_second_after_the_leeway() -> None:
    token = _principal_token(exp=NOW + 60)
    assert _check(token, now=NOW + 89.5)["exp"] == NOW + 60
    assert _refusal(token, now=NOW + 90) == "token has expired"


def test_nbf_in_the_future_is_refused_beyond_the_leeway_only() -> None:
    token = _principal_token(nbf=NOW + 100)
    assert _refusal(token, now=NOW + 69) == "token is not valid yet"
    assert _check(token, now=NOW + 70)["nbf"] == NOW + 100


def test_iat_in_the_future_is_refused_beyond_the_leeway_only() -> None:
    token = _principal_token(iat=NOW + 100, exp=NOW + 600)
    assert _refusal(token, now=NOW + 69) == "token is not valid yet"
    assert _check(token, now=NOW + 70)["iat"] == NOW + 100


def test_a_principal_token_without_iat_or_sub_is_refused() -> None:
    assert _refusal(_principal_token(iat=None)) == "invalid token: no iat claim"
    assert _refusal(_principal_token(sub=None)) == "invalid token: no sub claim"


def test_a_principal_token_whose_subject_is_not_its_issuer_is_refused() -> None:
    """iss is checked by pyjwt against the principal; sub must name the same principal."""
    assert _refusal(_principal_token(sub="admin")) == "token subject does not match its issuer"


def test_the_lifetime_limit_is_inclusive() -> None:
    assert _check(_principal_token(exp=NOW + 3600))["exp"] == NOW + 3600
    assert _refusal(_principal_token(exp=NOW + 3601)) == "token lifetime exceeds 3600 seconds"


def test_check_times_without_a_lifetime_limit_accepts_any_lifetime() -> None:
    tokens.check_times({"iat": NOW, "exp": NOW + 10**9}, NOW, None)  # refusal would raise


@pytest.mark.parametrize(
    ("claims", "window"),
    [
        ({"iat": NOW, "exp": NOW + 60}, (NOW - 30, NOW + 90)),
        ({"iat": NOW, "nbf": NOW + 10, "exp": NOW + 60}, (NOW - 20, NOW + 90)),
        ({"iat": NOW, "nbf": NOW - 10, "exp": NOW + 60}, (NOW - 30, NOW + 90)),  # the later of iat and nbf
    ],
    ids=["iat-only", "nbf-later", "nbf-earlier"],
)
def test_valid_window_is_exactly_what_check_times_accepts(claims: dict, window: tuple[float, float]) -> None:
    start, end = tokens.valid_window(claims)
    assert (start, end) == window
    tokens.check_times(claims, start, None)
    tokens.check_times(claims, end - 0.5, None)
    for outside in (start - 0.5, end):
        with pytest.raises(Unauthenticated):
            tokens.check_times(claims, outside, None)


def test_minted_tokens_carry_exactly_the_documented_claims() -> None:
    claims = jwt.decode(_mint(), options={"verify_signature": False})
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": "svc", "sub": "svc", "aud": "media-gateway", "iat": int(NOW), "exp": int(NOW) + 600,
    }  # fmt: skip
    assert jwt.get_unverified_header(_mint())["kid"] == "gwc_abc"
    assert len(claims["jti"]) == 16 and claims["jti"] != jwt.decode(_mint(), options={"verify_signature": False})["jti"]
    with pytest.raises(ValueError, match="not a credential id"):
        _mint(credential_id="gwk_abc")


def test_a_token_of_8192_characters_is_read_and_one_more_is_refused() -> None:
    """8 KiB, the usual header limit: the number is part of the contract (docs, error message)."""
    with pytest.raises(Unauthenticated) as refused:
        tokens.unverified_header("a" * 8193)
    assert refused.value.message == "token too large: more than 8192 characters"
    header_only = _principal_token()
    assert tokens.unverified_header(header_only + "A" * (8192 - len(header_only)))["alg"] == "EdDSA"


def test_the_leeway_is_the_gateways_own_not_pyjwts() -> None:
    """pyjwt's own time checks (with its wall clock and no leeway) stay off: only ``check_times`` decides.

    Times here are relative to the real clock, which pyjwt would read: a token that expired 10 seconds ago,
    or becomes valid in 10 seconds, is inside the gateway's 30-second leeway and must be accepted.
    """
    import time

    now = time.time()
    for claims in ({"exp": now - 10, "iat": now - 60}, {"nbf": now + 10, "iat": now}, {"iat": now + 10}):
        token = _principal_token(**{"iat": now - 60, "exp": now + 600, **claims})
        assert _check(token, now=now)["sub"] == "svc"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b'{"alg":"EdDSA"}', "bearer token has no key id"),
        (b'{"alg":"EdDSA","kid":""}', "bearer token has no key id"),
        (b'{"alg":"EdDSA","kid":5}', "bearer token has no key id"),
        (b'{"alg":"EdDSA","kid":["gwc_abc"]}', "bearer token has no key id"),
        (b'{"alg":"EdDSA","kid":"gwk_abc"}', "unknown or revoked credential"),
        (b'{"alg":"EdDSA","kid":"gwc_abc/../x"}', "unknown or revoked credential"),
    ],
    ids=["none", "empty", "number", "list", "a-signing-key-id", "injection"],
)
def test_the_key_id_must_be_a_credential_id_before_any_lookup(header: bytes, message: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        tokens.unverified_key_id(_signed_raw(b"{}", header=header))
    assert refused.value.message == message


def test_an_algorithm_that_is_not_a_string_is_not_allowed() -> None:
    token = _signed_raw(b'{"iss":"svc","sub":"svc","aud":"media-gateway","iat":1,"exp":2}', header=b'{"alg":5}')
    assert _refusal(token) == "invalid token: algorithm not allowed"


def test_a_payload_that_is_no_object_is_malformed() -> None:
    assert _refusal(_signed_raw(b"[1]")) == "malformed token: the payload is not a JSON object"


def test_what_pyjwt_quotes_is_cut_at_200_characters() -> None:
    name = "x" * 300
    token = _signed_raw(b"{}", header=b'{"alg":"EdDSA","kid":"gwc_abc","crit":["' + name.encode() + b'"]}')
    message = _refusal(token)
    assert message == "invalid token: " + ("Unsupported critical extension: " + name)[:200]
