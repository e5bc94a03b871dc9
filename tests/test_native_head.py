"""The native signer spelled once per key (``_head``: the string to sign's first fields and ``gw_kid``, memoised
per key, so a batch's URLs share them) and one format string per URL (issue 18).

It is held to the signer it replaced, kept here as the reference: ``string_to_sign`` and the parameter list
joined field by field (as ``params_text`` spells a path token), over many random requests — queries to keep
and sort, prefixes and path tokens, addresses and networks of both families, start times, both key types, and
requests the signer refuses (a URL outside its prefix, a path token without a prefix, a reserved path, times out
of range, a ``gw_`` parameter already in the URL). A refusal is the same error with the same message.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInput
from gateway.keys.material import KeyMaterial, b64url, ed25519_public
from gateway.model import KeyAlgorithm
from gateway.netaddr import parse_network
from gateway.signing import path_tokens
from gateway.signing.dialects.base import Signed, SignRequest
from gateway.signing.dialects.native import (
    NativeDialect,
    _issue_time,
    _pfx_text,
    _unsigned,
    params_text,
    string_to_sign,
)
from gateway.signing.paths import canonical_prefix, canonical_query

SEED = bytes(range(32))
ED = KeyMaterial("gwk_manyed25519aaaaaaa", KeyAlgorithm.ED25519, ed25519_public(SEED), SEED)
ED2 = KeyMaterial("gwk_manyed25519bbbbbbb", KeyAlgorithm.ED25519, ed25519_public(SEED[::-1]), SEED[::-1])
HS = KeyMaterial("gwk_manyhmac256aaaaaaa", KeyAlgorithm.HMAC_SHA256, None, b"k" * 32)
native = NativeDialect()


def _reference(request: SignRequest, key: KeyMaterial) -> Signed:
    """The signer as it was before ``_head``: fields joined one by one."""
    base, path, pairs, others = _unsigned(request.url)
    prefix = canonical_prefix(request.prefix) if request.prefix is not None else None
    if prefix is not None and not path.startswith(prefix):
        raise InvalidInput("the URL does not lie under the requested prefix")
    if request.path_token and prefix is None:
        raise InvalidInput("a path token is a prefix token: it needs a prefix (scope 'prefix')")
    ip = str(parse_network(request.ip)) if request.ip else None
    issued_at = _issue_time(request)
    message = string_to_sign(
        algorithm=key.algorithm.value, kid=key.kid, issued_at=issued_at, expires=request.expires,
        starts=request.starts, ip=ip, scope=f"prefix:{prefix}" if prefix is not None else f"path:{path}",
        query="" if prefix is not None else canonical_query(pairs),
    )  # fmt: skip
    params = [("gw_exp", str(request.expires)), ("gw_iat", str(issued_at))]
    params += [("gw_nbf", str(request.starts))] if request.starts is not None else []
    params += [("gw_ip", ip)] if ip else []
    params += [("gw_pfx", _pfx_text(prefix))] if prefix is not None else []
    params += [("gw_kid", key.kid), ("gw_sig", b64url(key.sign(message)))]
    if request.path_token:
        token = b64url(params_text(dict(params)).encode("ascii"))
        return Signed(base + path_tokens.join(token, path) + ("?" + "&".join(others) if others else ""))
    query = "&".join([*others, *(f"{n}={v}" for n, v in params)])
    return Signed(f"{base}{path}?{query}")


HOSTS = ["https://cdn.example.com", "http://edge.example:8080", ""]
PATHS = ["/v/abc/master.m3u8"] * 4 + ["/v/abc/seg%2001.ts", "/v/ab c/é.mp4", "/a/../b.ts", "/_t/x/y.ts", "/v/abc/"]
QUERIES = [""] * 4 + ["b=2&a=1", "z=%7e&a=b+c", "x=1&&y=", "q=a/b?c@d", "gw_exp=1", "a=%zz"]
PREFIXES = [None, None, "/v/abc/", "/v/abc/", "/v/", "/", "/v/abd/", "/v/abc"]
IPS = [None, None, None, "203.0.113.9", "198.51.100.0/24", "2001:db8::1", "2001:db8::/48", "10.1.2.3/8", "nope"]
TIMES = [0, 1, 1_800_000_000, 2**53 - 1, 2**53, -1]


def _random_request(rng: random.Random) -> SignRequest:
    query = rng.choice(QUERIES)
    url = rng.choice(HOSTS) + rng.choice(PATHS) + (f"?{query}" if query else "")
    issued_at = rng.choice(TIMES[:3]) if rng.random() < 0.9 else rng.choice([*TIMES, None])
    expires = (issued_at or 0) + rng.choice([0, 60, 3600, 10**6]) if rng.random() < 0.9 else rng.choice(TIMES)
    prefix = rng.choice(PREFIXES)
    return SignRequest(
        url=url, expires=expires, starts=rng.choice([None, None, issued_at, 5]), ip=rng.choice(IPS), prefix=prefix,
        issued_at=issued_at, path_token=rng.random() < (0.5 if prefix else 0.02),
    )  # fmt: skip


def _answer(sign: object) -> tuple[str, object]:
    if isinstance(sign, InvalidInput):
        return ("refused", str(sign))
    assert isinstance(sign, Signed)
    return ("signed", sign)


def _one(request: SignRequest, key: KeyMaterial, signer: object) -> tuple[str, object]:
    try:
        return _answer(signer(request, key))  # type: ignore[operator]
    except InvalidInput as refused:
        return _answer(refused)


@pytest.mark.parametrize("key", [ED, ED2, HS], ids=["ed25519", "ed25519-other", "hmac"])
def test_sign_gives_the_reference_signers_urls_and_refusals(key: KeyMaterial) -> None:
    rng = random.Random(18)
    signed = refused = 0
    for _ in range(60):
        requests = [_random_request(rng) for _ in range(rng.randint(1, 40))]
        expected = [_one(r, key, _reference) for r in requests]
        assert [_one(r, key, native.sign) for r in requests] == expected
        signed += sum(kind == "signed" for kind, _ in expected)
        refused += sum(kind == "refused" for kind, _ in expected)
    assert signed > 300 and refused > 200, (signed, refused)  # both kinds well exercised


@settings(max_examples=300, deadline=None)
@given(
    path=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="?#"), max_size=30),
    query=st.text(st.characters(min_codepoint=33, max_codepoint=0x7E, exclude_characters="#"), max_size=20),
    times=st.tuples(st.integers(0, 2**53), st.integers(0, 2**53), st.none() | st.integers(0, 2**53)),
    prefix=st.booleans(),
)
def test_arbitrary_paths_and_queries_sign_as_the_reference_does(
    path: str, query: str, times: tuple[int, int, int | None], prefix: bool
) -> None:
    issued_at, expires, starts = times
    request = SignRequest(
        url=f"https://h.example/{path}?{query}", expires=expires, starts=starts, issued_at=issued_at,
        prefix="/" if prefix else None,
    )  # fmt: skip
    expected = _one(request, ED, _reference)
    assert _one(request, ED, native.sign) == expected
