"""Attack: a signature parameter given twice (issue 17, "test gaps found by planting bugs").

A URL that names a signed parameter twice has two readings: the verifier may read the first copy while a cache, a
CDN or the origin reads the last. Every format refuses it as ``malformed`` — even when both copies carry the same
value (a second spelling of one signed URL) and even when the signature over the first copy is good. Planting
each bug back went unnoticed by the whole suite before these tests: the duplicate check dropped from the native
query parser (``native._add_param``), and the repeated-parameter refusal dropped from the CDN dialects' shared
helper (``_common.single``, used by Akamai, CloudFront, Google Cloud CDN, Media CDN, nginx secure_link, Nimble
and Wowza).
"""

from __future__ import annotations

import base64

import pytest

from gateway.errors import VerificationFailed
from gateway.signing.dialects import _common
from gateway.signing.dialects.base import SignRequest
from gateway.signing.dialects.native import NativeDialect
from tests.dialect_fixtures import ATTACK_NOW as NOW
from tests.dialect_fixtures import attack_url, setups, verdict

SETUPS = {s.name: s for s in setups()}
# The query parameters each format's verifier reads from a URL it signed (the same names in every setup).
SIGNATURE_PARAMS = {
    "native": ["gw_exp", "gw_iat", "gw_kid", "gw_sig"],
    "cloudfront-rsa": ["Expires", "Signature", "Key-Pair-Id"],
    "cloudfront-ecdsa-sha256": ["Expires", "Signature", "Key-Pair-Id", "Hash-Algorithm"],
    "google-cdn": ["Expires", "KeyName", "Signature"],
    "media-cdn-ed25519": ["edge-cache-token"],
    "media-cdn-hmac": ["edge-cache-token"],
    "akamai": ["__token__"],
    "nginx": ["md5", "expires"],
    "wowza": ["wowzatokenendtime", "wowzatokengwkid", "wowzatokenhash"],
    "nimble": ["wmsAuthSign"],
    "bunny": ["token", "expires"],
}
USES_SHARED_HELPER = ["cloudfront-rsa", "cloudfront-ecdsa-sha256", "google-cdn", "media-cdn-ed25519",
                      "media-cdn-hmac", "akamai", "nginx", "wowza", "nimble"]  # fmt: skip


def _pairs(url: str) -> list[tuple[str, str]]:
    return _common.query_pairs(url)


def _with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    return url.partition("?")[0] + "?" + "&".join(f"{n}={v}" for n, v in pairs)


def _other(value: str) -> str:
    """Another value of the same shape (a digit or letter changed), so only the repetition is wrong."""
    last = value[-1:] or "x"
    swap = {"0": "1", "A": "B", "=": "="}.get(last, "0" if last != "0" else "1")
    if value.endswith("="):  # padded base64: change a data character, keep the padding
        body = value.rstrip("=")
        return body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + value[len(body) :]
    return value[:-1] + swap


def _repeats(url: str, name: str) -> dict[str, str]:
    pairs = _pairs(url)
    index = next(i for i, (n, _) in enumerate(pairs) if n == name)
    value = pairs[index][1]
    return {
        "same value right after": _with_query(url, [*pairs[: index + 1], (name, value), *pairs[index + 1 :]]),
        "same value first": _with_query(url, [(name, value), *pairs]),
        "same value last": _with_query(url, [*pairs, (name, value)]),
        "another value last": _with_query(url, [*pairs, (name, _other(value))]),
        "another value first": _with_query(url, [(name, _other(value)), *pairs]),
    }


CASES = [(setup, name) for setup, names in SIGNATURE_PARAMS.items() for name in names]


@pytest.mark.parametrize(("setup_name", "name"), CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_a_repeated_signature_parameter_is_malformed_in_every_format(setup_name: str, name: str) -> None:
    setup = SETUPS[setup_name]
    url = attack_url(setup)
    assert verdict(setup, url) == "accepted"
    assert [n for n, _ in _pairs(url)].count(name) == 1, url
    for how, repeated in _repeats(url, name).items():
        assert verdict(setup, repeated) == "malformed", (how, repeated)


def test_every_dialect_reading_query_parameters_is_covered() -> None:
    """A setup added to tests/dialect_fixtures.py must say which parameters its verifier reads."""
    assert set(SIGNATURE_PARAMS) == set(SETUPS) - {"bunny-directory"}  # a Bunny path token has no query to repeat


@pytest.mark.parametrize("value", ["1", "same"])
def test_the_shared_helper_refuses_a_name_given_twice(value: str) -> None:
    """``single`` itself: the helper every format but native, Bunny and S3 reads its parameters with."""
    with pytest.raises(VerificationFailed) as refused:
        _common.single([("Expires", "1"), ("Other", "x"), ("Expires", value)], "Expires")
    assert refused.value.reason == "malformed"
    with pytest.raises(VerificationFailed) as missing:
        _common.required([("Other", "x"), ("Other", "y")], "Expires")
    assert missing.value.reason == "malformed"
    assert _common.single([("Other", "x"), ("Other", "y"), ("Expires", value)], "Expires") == value
    assert _common.single([("Other", "x")], "Expires") is None


# --- the native format: query form and path tokens ---------------------------------------------------------------

native = NativeDialect()


@pytest.mark.parametrize("name", ["gw_exp", "gw_iat", "gw_nbf", "gw_ip", "gw_pfx", "gw_kid", "gw_sig"])
def test_native_refuses_each_gw_parameter_given_twice_even_with_the_same_value(name: str) -> None:
    setup = SETUPS["native"]
    request = SignRequest("https://cdn.example.com/v/abc/x.ts", NOW + 300, ip="203.0.113.0/24", starts=NOW - 5,
                          prefix="/v/abc/", issued_at=NOW)  # fmt: skip
    url = native.sign(request, setup.key).url
    assert verdict(setup, url) == "accepted"
    for how, repeated in _repeats(url, name).items():
        assert verdict(setup, repeated) == "malformed", (how, repeated)


def _token_segment(url: str) -> str:
    return url.split("/_t/", 1)[1].split("/", 1)[0]


def test_a_native_path_token_repeating_a_parameter_is_malformed() -> None:
    setup = SETUPS["native"]
    request = SignRequest("https://cdn.example.com/v/abc/x.ts", NOW + 300, prefix="/v/abc/", issued_at=NOW,
                          path_token=True)  # fmt: skip
    url = native.sign(request, setup.key).url
    assert verdict(setup, url) == "accepted"
    segment = _token_segment(url)
    text = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()
    pairs = [tuple(p.split("=", 1)) for p in text.split("&")]
    for name, _value in pairs:
        doubled = "&".join(f"{n}={v}" + (f"&{n}={v}" if n == name else "") for n, v in pairs)
        forged = base64.urlsafe_b64encode(doubled.encode()).rstrip(b"=").decode()
        assert verdict(setup, url.replace(segment, forged)) == "malformed", name
    # A gw_ parameter in the query beside a path token: two tokens, one URL.
    for name, value in pairs:
        assert verdict(setup, f"{url}?{name}={value}") == "malformed", name
