"""Hypothesis strategies for hostile JWTs: random bytes, random segments, and correctly signed tokens whose header
and claims are anything JSON (and not-quite-JSON: NaN, Infinity, duplicate names) can say."""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from tests.http_support import b64

NOW = 1_800_000_000
# The CI budget per fuzz test; GATEWAY_FUZZ_EXAMPLES=100000 for a long campaign.
EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "300"))

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_TIMES = st.sampled_from([NOW - 3600, NOW - 31, NOW, NOW + 29, NOW + 31, NOW + 600, NOW + 7200]) | st.floats() | _JSON
_HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["EdDSA", "RS256", "ES256", "PS256", "HS256", "none", "NONE", "", "EdDSA\x00"]) | _JSON},
    optional={
        "kid": st.sampled_from(["gwc_abc", "gwc_", "../../etc/passwd", "' OR 1=1 --", "dev-idp"]) | _JSON,
        "typ": _JSON,
        "crit": st.sampled_from([["b64"], ["exp"], []]) | _JSON,
        "b64": st.booleans() | _JSON,
        "jku": st.just("https://evil.example/jwks.json"),
    },
)
_CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from(["svc", "idp", ""]) | _JSON,
        "sub": st.sampled_from(["svc", "alice", "a b", "\x1b[31m"]) | _JSON,
        "aud": st.sampled_from(["media-gateway", "app", ["app", "x"]]) | _JSON,
        "exp": _TIMES,
        "iat": _TIMES,
        "nbf": _TIMES,
        "ws": st.lists(st.sampled_from(["w1", "bad space", ""]), max_size=3) | _JSON,
        "jti": _JSON,
    },
)


def _json_text(value: dict[str, Any], duplicate: tuple[str, Any] | None) -> bytes:
    """JSON as a careless encoder writes it: NaN and Infinity allowed, maybe one name twice."""
    text = json.dumps(value, allow_nan=True)
    if duplicate is not None and text.endswith("}"):
        extra = f"{json.dumps(duplicate[0])}: {json.dumps(duplicate[1], allow_nan=True)}"
        text = text[:-1] + (", " if value else "") + extra + "}"
    return text.encode()


_DUPLICATE = st.none() | st.tuples(st.sampled_from(["exp", "iat", "nbf", "alg", "kid", "sub"]), _JSON)
_HEADER_BYTES = st.builds(_json_text, _HEADERS, _DUPLICATE)
_CLAIM_BYTES = st.builds(_json_text, _CLAIMS, _DUPLICATE)
_SEGMENT = st.one_of(_HEADER_BYTES, _CLAIM_BYTES, st.binary(max_size=80)).map(b64) | st.text(max_size=20)


def _signed(key: Ed25519PrivateKey, header: bytes, claims: bytes) -> str:
    signing_input = f"{b64(header)}.{b64(claims)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


def _flip(token: str, position: int, char: str) -> str:
    position %= max(len(token), 1)
    return token[:position] + char + token[position + 1 :]


def tokens(key: Ed25519PrivateKey) -> st.SearchStrategy[str]:
    """Anything a client can put where a token goes, much of it correctly signed by ``key``."""
    signed = st.builds(_signed, st.just(key), _HEADER_BYTES, _CLAIM_BYTES)
    return st.one_of(
        st.text(max_size=120),
        st.binary(max_size=120).map(lambda raw: raw.decode("utf-8", "surrogateescape")),  # as aiohttp hands bytes over
        st.tuples(_SEGMENT, _SEGMENT, _SEGMENT).map(".".join),
        st.lists(_SEGMENT, max_size=5).map(".".join),
        signed,
        st.builds(_flip, signed, st.integers(0, 10_000), st.characters()),
    )
