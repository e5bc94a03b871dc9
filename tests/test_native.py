"""The native GW2 format: published vectors, canonicalisation, the signed issue time, and attempts to break it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial, b64url, b64url_decode, ed25519_public
from gateway.model import KeyAlgorithm
from gateway.signing import path_tokens
from gateway.signing.dialects._common import split_url
from gateway.signing.dialects.base import Capabilities, Redemption, SignRequest, Verified
from gateway.signing.dialects.native import (
    NativeDialect,
    params_text,
    presented_claims,
    string_to_sign,
    token_params,
)
from gateway.signing.paths import canonical_path, canonical_prefix, canonical_query, split_query

VECTORS = json.loads((Path(__file__).parent / "vectors" / "native.json").read_text())
SEED = bytes.fromhex(VECTORS["keys"]["ed25519_seed_hex"])
HMAC_KEY = bytes.fromhex(VECTORS["keys"]["hmac_sha256_key_hex"])
ED = KeyMaterial("gwk_testvectored25519", KeyAlgorithm.ED25519, ed25519_public(SEED), SEED)
HS = KeyMaterial("gwk_testvectorhmac256", KeyAlgorithm.HMAC_SHA256, None, HMAC_KEY)
ED_VERIFY_ONLY = KeyMaterial(ED.kid, ED.algorithm, ED.public, None)
NOW = 1_800_000_100
native = NativeDialect()


def _key(algorithm: str) -> KeyMaterial:
    return ED if algorithm == "ed25519" else HS


def _request(inp: dict[str, object]) -> SignRequest:
    return SignRequest(**inp)  # type: ignore[arg-type]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_signing_reproduces_the_published_vector(vector: dict) -> None:
    assert native.sign(_request(vector["input"]), _key(vector["algorithm"])).url == vector["signed_url"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_published_vector_verifies_with_the_public_half(vector: dict) -> None:
    key = ED_VERIFY_ONLY if vector["algorithm"] == "ed25519" else HS
    ip = "203.0.113.99" if "203.0.113" in vector["input"].get("ip", "") else "2001:db8:1234:ffff::9"
    now = vector["input"]["expires"] - 30
    verified = native.verify(Redemption(vector["signed_url"], now, ip), key)
    assert verified.key_id == vector["kid"]
    assert verified.expires == vector["input"]["expires"]
    assert verified.issued_at == vector["input"]["issued_at"]


def _vector(name: str) -> dict:
    [found] = [v for v in VECTORS["vectors"] if v["name"] == name]
    return found


def test_string_to_sign_matches_the_spec_layout() -> None:
    message = string_to_sign(
        algorithm="ed25519", kid=ED.kid, issued_at=1799999990, expires=1800000300, starts=1800000000,
        ip="203.0.113.0/24", scope="path:/v/abc/master.m3u8", query="",
    )  # fmt: skip
    assert message.decode() == _vector("all-claims-ipv4")["string_to_sign"]


def _signed(**kwargs: object) -> str:
    base = {"url": "https://cdn.example.com/v/abc/master.m3u8", "expires": NOW + 100, "issued_at": NOW - 5}
    return native.sign(SignRequest(**{**base, **kwargs}), ED).url  # type: ignore[arg-type]


def _reason(url: str, client_ip: str | None = None, now: float = NOW) -> str:
    with pytest.raises(VerificationFailed) as caught:
        native.verify(Redemption(url, now, client_ip), ED)
    return caught.value.reason


def test_expired_and_not_yet_valid() -> None:
    url = _signed(starts=NOW + 10)
    assert _reason(url, now=NOW) == "not-yet-valid"
    assert native.verify(Redemption(url, NOW + 10, None), ED).key_id == ED.kid
    assert _reason(url, now=NOW + 100) == "expired"


# What a plain path token signed by _signed verifies to.
PLAIN = Verified(key_id=ED.kid, expires=NOW + 100, issued_at=NOW - 5)


def test_ip_binding_v4_and_v6() -> None:
    v4 = _signed(ip="198.51.100.0/24")
    assert native.verify(Redemption(v4, NOW, "198.51.100.200"), ED) == PLAIN
    assert native.verify(Redemption(v4, NOW, "::ffff:198.51.100.7"), ED) == PLAIN
    assert _reason(v4, "198.51.101.1") == "wrong-ip"
    assert _reason(v4, "::ffff:198.51.101.1") == "wrong-ip"
    assert _reason(v4, None) == "wrong-ip"
    assert _reason(v4, "not-an-address") == "wrong-ip"
    v6 = _signed(ip="2001:db8:aa::/48")
    assert native.verify(Redemption(v6, NOW, "2001:db8:aa:1::1"), ED) == PLAIN
    assert _reason(v6, "2001:db8:ab::1") == "wrong-ip"
    assert _reason(v6, "198.51.100.1") == "wrong-ip"
    assert _reason(v6, "::ffff:198.51.100.1") == "wrong-ip"


def test_prefix_token_opens_segments_but_not_a_sibling_directory() -> None:
    url = _signed(prefix="/v/abc/")
    query = url.split("?", 1)[1]
    prefixed = Verified(key_id=ED.kid, expires=NOW + 100, issued_at=NOW - 5, prefix="/v/abc/")
    assert native.verify(Redemption(f"/v/abc/seg-00001.ts?{query}", NOW, None), ED) == prefixed
    assert native.verify(Redemption(f"/v/abc/720p/seg-1.ts?{query}", NOW, None), ED) == prefixed
    assert native.reuse_key(Redemption(f"/v/abc/x.ts?a=1&{query}", NOW)) == query  # only the gw_ parameters
    assert native.reuse_key(Redemption(_signed(), NOW)) is None  # a path token is reused by its whole URL
    assert _reason(f"/v/abcd/seg-1.ts?{query}") == "outside-prefix"
    assert _reason(f"/v/ab/seg-1.ts?{query}") == "outside-prefix"
    assert _reason(f"/v/abc/../abcd/seg-1.ts?{query}") == "non-canonical-path"
    assert _reason(f"/v/abc/%2e%2e/abcd/x.ts?{query}") == "non-canonical-path"
    assert _reason(f"/v/abc/..%2fabcd/x.ts?{query}") == "non-canonical-path"
    assert _reason(f"/v/abc//x.ts?{query}") == "non-canonical-path"


def test_prefix_must_be_a_directory_and_contain_the_url() -> None:
    with pytest.raises(InvalidInput):
        _signed(prefix="/v/ab")
    with pytest.raises(InvalidInput):
        _signed(prefix="/t/")


def test_path_token_does_not_open_another_path() -> None:
    url = _signed()
    assert _reason(url.replace("master.m3u8", "other.m3u8")) == "bad-signature"


def test_query_parameters_are_covered_for_path_tokens() -> None:
    url = native.sign(
        SignRequest("https://cdn.example.com/v/a.mp4?response-content-disposition=inline", NOW + 9, issued_at=NOW), ED
    ).url
    assert native.verify(Redemption(url, NOW, None), ED) == Verified(key_id=ED.kid, expires=NOW + 9, issued_at=NOW)
    assert _reason(url.replace("inline", "attachment")) == "bad-signature"
    assert _reason(url + "&extra=1") == "bad-signature"


def test_only_the_canonical_spelling_verifies() -> None:
    """One path, one spelling: an escaped unreserved character is a second spelling, refused."""
    url = _signed(url="https://cdn.example.com/v/a%7eb/x.mp4")
    assert url.startswith("https://cdn.example.com/v/a~b/x.mp4?")  # the signer writes the canonical path
    assert native.verify(Redemption(url, NOW, None), ED).key_id == ED.kid
    assert _reason(url.replace("a~b", "a%7Eb")) == "non-canonical-path"


def test_gw_parameters_have_one_spelling() -> None:
    prefixed = _signed(prefix="/v/abc/")
    assert _reason(prefixed.replace("gw_pfx=/v/abc/", "gw_pfx=%2Fv%2Fabc%2F")) == "malformed"
    assert _reason(_signed().replace("gw_exp=", "gw_exp=%3")) == "malformed"


def test_a_prefix_with_query_delimiters_round_trips() -> None:
    url = _signed(url="https://cdn.example.com/v/a&b=c/x.ts", prefix="/v/a&b=c/")
    assert "gw_pfx=/v/a%26b%3Dc/" in url
    verified = native.verify(Redemption(url.replace("/x.ts", "/y.ts"), NOW, None), ED)
    assert verified.key_id == ED.kid


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda u: u.replace("gw_exp=", "gw_exp=9"), "bad-signature"),
        (lambda u: u.replace("gw_kid=gwk_testvectored25519", "gwk_kid=x"), "malformed"),
        (lambda u: u + "&gw_exp=1", "malformed"),
        (lambda u: u.replace("&gw_sig=", "&gw_sig=A"), "bad-signature"),
        (lambda u: u.split("&gw_sig=")[0], "malformed"),
        (lambda u: u + "&gw_unknown=1", "malformed"),
        (lambda u: u.replace("gw_exp=", "gw_exp=-"), "malformed"),
        (lambda u: u.replace("&gw_sig=", "&gw_sig=" + "A" * 86 + "&x="), "bad-signature"),
        (lambda u: u.replace("&gw_sig=", "&gw_sig==&x="), "bad-signature"),
        (lambda u: u.replace("https://cdn.example.com/v/abc/", "https://cdn.example.com/v/abc/x/"), "bad-signature"),
        (lambda u: u.replace("https://cdn.example.com", ""), None),
    ],
    ids=["exp-changed", "kid-removed", "duplicate-param", "sig-garbled", "sig-stripped", "unknown-param",
         "exp-negative", "sig-replaced", "sig-not-base64url", "path-moved", "origin-form-is-the-same-url"],
)  # fmt: skip
def test_each_tampering_has_its_reason(mutate, reason: str | None) -> None:  # type: ignore[no-untyped-def]
    if reason is None:
        assert native.verify(Redemption(mutate(_signed()), NOW, None), ED) == PLAIN
    else:
        assert _reason(mutate(_signed())) == reason


def test_a_url_signed_by_one_key_does_not_verify_under_another_kid() -> None:
    other = KeyMaterial("gwk_other", KeyAlgorithm.ED25519, ED.public, ED.secret)
    url = _signed()
    assert native.verify(Redemption(url, NOW, None), ED) == PLAIN
    with pytest.raises(VerificationFailed) as refused:
        native.verify(Redemption(url, NOW, None), other)
    assert refused.value.reason == "bad-signature"


def test_hmac_url_does_not_verify_as_ed25519_and_back() -> None:
    hs_url = native.sign(SignRequest("https://c/v/a.mp4", NOW + 9, issued_at=NOW), HS).url
    as_ed = KeyMaterial(HS.kid, KeyAlgorithm.ED25519, ED.public, None)
    with pytest.raises(VerificationFailed) as refused:
        native.verify(Redemption(hs_url, NOW, None), as_ed)
    assert refused.value.reason == "bad-signature"
    ed_url = native.sign(SignRequest("https://c/v/a.mp4", NOW + 9, issued_at=NOW), ED).url
    as_hmac = KeyMaterial(ED.kid, KeyAlgorithm.HMAC_SHA256, None, ED.public)
    with pytest.raises(VerificationFailed) as refused:
        native.verify(Redemption(ed_url, NOW, None), as_hmac)
    assert refused.value.reason == "bad-signature"


# --- HMAC-SHA256 keys: the same checks as Ed25519, with a secret on both sides --------------------

HS_URL_INPUT = SignRequest("https://cdn.example.com/v/a.mp4?q=1", NOW + 60, issued_at=NOW - 1)


def _hs_reason(url: str, key: KeyMaterial = HS) -> str:
    with pytest.raises(VerificationFailed) as caught:
        native.verify(Redemption(url, NOW, None), key)
    return caught.value.reason


def test_an_hmac_url_verifies_with_its_secret_and_returns_its_claims() -> None:
    url = native.sign(HS_URL_INPUT, HS).url
    assert native.verify(Redemption(url, NOW, None), HS) == Verified(key_id=HS.kid, expires=NOW + 60, issued_at=NOW - 1)


def test_an_hmac_url_with_any_other_signature_is_refused() -> None:
    url = native.sign(HS_URL_INPUT, HS).url
    signature = url.rsplit("gw_sig=", 1)[1]
    assert _hs_reason(url.replace(signature, b64url(bytes(32)))) == "bad-signature"
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert _hs_reason(url.replace(signature, flipped)) == "bad-signature"
    assert _hs_reason(url.replace(signature, signature[:42])) == "bad-signature"  # a truncated MAC


def test_an_hmac_url_is_refused_under_another_secret_or_without_one() -> None:
    url = native.sign(HS_URL_INPUT, HS).url
    assert _hs_reason(url, KeyMaterial(HS.kid, KeyAlgorithm.HMAC_SHA256, None, bytes(32))) == "bad-signature"
    assert _hs_reason(url, KeyMaterial(HS.kid, KeyAlgorithm.HMAC_SHA256, None, None)) == "bad-signature"


def test_every_signed_hmac_claim_is_covered() -> None:
    url = native.sign(HS_URL_INPUT, HS).url
    assert _hs_reason(url.replace("q=1", "q=2")) == "bad-signature"
    assert _hs_reason(url.replace(f"gw_exp={NOW + 60}", f"gw_exp={NOW + 61}")) == "bad-signature"
    assert _hs_reason(url.replace(f"gw_iat={NOW - 1}", f"gw_iat={NOW - 2}")) == "bad-signature"
    assert _hs_reason(url.replace("/v/a.mp4", "/v/b.mp4")) == "bad-signature"


def test_url_already_carrying_gw_params_is_refused_at_signing() -> None:
    with pytest.raises(InvalidInput):
        _signed(url="https://cdn.example.com/v/a.mp4?gw_exp=1")


# --- GW2: the signed issue time (gw_iat), what a link revocation is compared with ---------------

GW1_URL = (  # docs/native-format.md's GW1 "path-only" vector: correctly signed, but without gw_iat
    "https://cdn.example.com/v/abc/master.m3u8?gw_exp=1800000300&gw_kid=gwk_testvectored25519"
    "&gw_sig=arkrAvW5IKSlL2VWSPwyv9tLsqWQ6a_DKOu2FqYy9wnC3FV3hwAN__P6ed3BZe8iWhCGdMDbyavov4xZ_u8zBg"
)


def test_a_gw1_url_without_an_issue_time_is_malformed() -> None:
    assert _reason(GW1_URL) == "malformed"


def test_the_issue_time_is_signed_and_returned() -> None:
    """Two URLs that differ only in gw_iat: each verifies with its own, and moving one's gw_iat breaks it."""
    earlier, later = _vector("path-only")["signed_url"], _vector("issued-later")["signed_url"]
    assert native.verify(Redemption(later, NOW, None), ED_VERIFY_ONLY).issued_at == 1_800_000_100
    assert native.verify(Redemption(earlier, NOW, None), ED_VERIFY_ONLY).issued_at == 1_800_000_000
    assert _reason(later.replace("gw_iat=1800000100", "gw_iat=1800000000")) == "bad-signature"
    assert _reason(earlier.replace("gw_iat=1800000000", "gw_iat=1800000100")) == "bad-signature"


def test_issue_time_and_start_time_are_separate_claims() -> None:
    url = _signed(issued_at=NOW - 50, starts=NOW - 20)
    assert "&gw_iat=1800000050&gw_nbf=1800000080&" in url
    verified = native.verify(Redemption(url, NOW, None), ED)
    assert (verified.issued_at, verified.expires) == (NOW - 50, NOW + 100)


def _signed_by_hand(issued_at: str, expires: str) -> str:
    """A correctly signed URL carrying exactly these texts: the verifier must refuse by reading them."""
    message = "\n".join(["GW2", "ed25519", ED.kid, issued_at, expires, "", "", "path:/v/a.mp4", ""])
    signature = b64url(ED.sign(message.encode()))
    return f"https://cdn.example.com/v/a.mp4?gw_exp={expires}&gw_iat={issued_at}&gw_kid={ED.kid}&gw_sig={signature}"


def test_an_issue_time_after_the_expiry_is_malformed_even_when_signed() -> None:
    at_expiry = native.verify(Redemption(_signed_by_hand(str(NOW + 100), str(NOW + 100)), NOW, None), ED)
    assert at_expiry == Verified(key_id=ED.kid, expires=NOW + 100, issued_at=NOW + 100)
    assert _reason(_signed_by_hand(str(NOW + 101), str(NOW + 100))) == "malformed"


@pytest.mark.parametrize(
    ("issued_at", "expires"),
    [("01800000000", str(NOW + 100)), (str(NOW), f"0{NOW + 100}"), (str(2**53), str(2**53 + 1)), ("1e9", str(NOW))],
    ids=["iat-leading-zero", "exp-leading-zero", "iat-past-2**53", "iat-not-digits"],
)
def test_numbers_have_one_spelling_even_when_signed(issued_at: str, expires: str) -> None:
    """'0' + a number is the same number: were it accepted, one signed URL would have two spellings."""
    assert _reason(_signed_by_hand(issued_at, expires)) == "malformed"


def test_a_leading_zero_added_to_a_signed_url_is_refused() -> None:
    url = _signed(starts=NOW - 20)
    for name in ("gw_exp", "gw_iat", "gw_nbf"):
        assert _reason(url.replace(f"{name}=", f"{name}=0")) == "malformed", name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issued_at": None}, "signs the issue time"),
        ({"issued_at": NOW + 101}, "after the expiry"),
        ({"issued_at": -1}, "POSIX seconds"),
        ({"expires": 2**53}, "POSIX seconds"),
    ],
    ids=["missing", "after-expiry", "negative", "expiry-past-2**53"],
)
def test_the_signer_refuses_an_issue_time_it_could_not_verify(change: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _signed(**change)


def test_the_spec_page_shows_every_published_vector() -> None:
    """docs/native-format.md and native.json come from the same generator run: they must not drift apart."""
    page = (Path(__file__).parent.parent / "docs" / "native-format.md").read_text()
    assert "# The native signed-URL format (GW2)" in page
    for vector in VECTORS["vectors"]:
        assert f"#### {vector['name']} ({vector['algorithm']})" in page
        assert f"```\n{vector['string_to_sign']}\n```" in page
        assert f"```\n{vector['signed_url']}\n```" in page


# --- what the mutation run (docs/mutation-testing.md) found untested --------------------------------


def test_the_native_dialect_describes_itself_exactly() -> None:
    assert native.capabilities == Capabilities(
        key_types=(KeyAlgorithm.ED25519, KeyAlgorithm.HMAC_SHA256),
        starts=True,
        ip="IPv4/IPv6 CIDR",
        prefix="path prefix (gw_pfx)",
        key_id_field="gw_kid",
        revocation="instant: the gateway's verifier checks the key on every request",
        path_token=True,
    )
    assert native.describe().startswith("gateway native GW2: Ed25519 or HMAC-SHA256;")
    assert native.attribution_covered({}) is True


def test_a_parse_shared_between_calls_cannot_be_changed() -> None:
    """``_parse`` is memoised: one caller changing its result would change what the next one verifies."""
    token = NativeDialect._parse(_signed())
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.path = "/v/other.mp4"  # type: ignore[misc]


def test_load_key_reads_an_ed25519_pem_or_an_hmac_secret_and_nothing_else() -> None:
    pem = (Path(__file__).parent / "vectors" / "native_ed25519_test_key.pem").read_bytes()
    loaded = native.load_key(b"\n  " + pem, "gwk_pem")
    assert (loaded.kid, loaded.algorithm, loaded.public is not None) == ("gwk_pem", KeyAlgorithm.ED25519, True)
    secret = native.load_key(b64url(HMAC_KEY).encode() + b"\n", "gwk_hs")
    assert (secret.kid, secret.algorithm, secret.public, secret.secret) == (
        "gwk_hs", KeyAlgorithm.HMAC_SHA256, None, HMAC_KEY,
    )  # fmt: skip
    rsa_pem = (Path(__file__).parent / "vectors" / "cloudfront_test_key.pem").read_bytes()
    for data, key_id, message in [
        (pem, None, "the native format needs --key-id (the gw_kid)"),
        (pem, "", "the native format needs --key-id (the gw_kid)"),
        (rsa_pem, "gwk_rsa", "native PEM keys are Ed25519"),
        (b"not base64url!", "gwk_x", "an HMAC key file holds the base64url secret"),
        (b"\xff\xfe", "gwk_x", "an HMAC key file holds the base64url secret"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            native.load_key(data, key_id)
        assert refused.value.message == message


def test_a_malformed_escape_in_a_signed_parameter_is_malformed() -> None:
    url = native.sign(SignRequest("https://cdn.example.com/v/a.mp4?x=1", NOW + 9, issued_at=NOW), ED).url
    assert _reason(url.replace("x=1", "x=%zz")) == "malformed"


@pytest.mark.parametrize("pfx", ["/v/abc", "/v/../", "v/abc/", "/v/abc/%zz"])
def test_a_prefix_that_is_not_a_canonical_directory_is_malformed(pfx: str) -> None:
    assert _reason(_signed(prefix="/v/abc/").replace("gw_pfx=/v/abc/", f"gw_pfx={pfx}")) == "malformed"


def test_the_signer_accepts_the_edges_of_what_the_verifier_reads() -> None:
    at_zero = native.sign(SignRequest("https://c/v/a.mp4", 100, issued_at=0), ED).url
    assert "gw_exp=100&gw_iat=0&" in at_zero
    assert native.verify(Redemption(at_zero, 99, None), ED) == Verified(key_id=ED.kid, expires=100, issued_at=0)
    same_second = native.sign(SignRequest("https://c/v/a.mp4", NOW, issued_at=NOW), ED).url
    assert f"gw_exp={NOW}&gw_iat={NOW}&" in same_second


def test_an_expiry_of_2_to_the_53_is_malformed_even_when_signed() -> None:
    assert _reason(_signed_by_hand(str(NOW), str(2**53))) == "malformed"
    assert native.verify(Redemption(_signed_by_hand(str(NOW), str(2**53 - 1)), NOW, None), ED).expires == 2**53 - 1


def test_a_signed_network_with_host_bits_set_matches_nobody() -> None:
    """The signer writes networks in one spelling (host bits zero); another spelling is read strictly."""
    message = "\n".join(
        ["GW2", "ed25519", ED.kid, str(NOW), str(NOW + 100), "", "198.51.100.7/24", "path:/v/a.mp4", ""]
    )
    signature = b64url(ED.sign(message.encode()))
    url = (f"https://cdn.example.com/v/a.mp4?gw_exp={NOW + 100}&gw_iat={NOW}&gw_ip=198.51.100.7/24"
           f"&gw_kid={ED.kid}&gw_sig={signature}")  # fmt: skip
    assert _reason(url, "198.51.100.7") == "wrong-ip"


def test_the_presented_key_id_is_the_signed_gw_kid_exactly() -> None:
    assert native.presented_key_id(Redemption(_signed(), NOW)) == ED.kid
    with pytest.raises(VerificationFailed) as refused:
        native.presented_key_id(Redemption("https://cdn.example.com/v/a.mp4?gw_exp=1&gw_iat=0&gw_sig=AA", NOW))
    assert refused.value.reason == "malformed"  # no gw_kid: nothing to look up


# --- path tokens: /_t/<token>/<path> (docs/native-format.md, "Path tokens") ---------------------


def test_a_path_token_is_its_query_twin_in_another_place() -> None:
    """The same string to sign, so the same signature: neither form grants what the other does not."""
    query, path = _vector("prefix-ipv6"), _vector("path-token-ipv6")
    assert query["string_to_sign"] == path["string_to_sign"]
    assert query["signed_url"].rsplit("gw_sig=", 1)[1] == path["token_text"].rsplit("gw_sig=", 1)[1]
    assert path["signed_url"].startswith("https://cdn.example.com/_t/")
    assert path["signed_url"].endswith("/v/abc/master.m3u8")


def _path_token(**kwargs: object) -> str:
    base = {"prefix": "/v/abc/", "path_token": True}
    return _signed(**{**base, **kwargs})


def test_a_path_token_opens_every_path_under_its_prefix_and_keeps_the_query_unsigned() -> None:
    url = _path_token()
    token = url.split("/")[4]
    assert url == f"https://cdn.example.com/_t/{token}/v/abc/master.m3u8"
    for path in ("/v/abc/seg-001.ts", "/v/abc/720p/seg-001.ts", "/v/abc/seg-001.ts?_HLS_msn=3"):
        verified = native.verify(Redemption(f"https://cdn.example.com/_t/{token}{path}", NOW), ED)
        assert (verified.prefix, verified.issued_at) == ("/v/abc/", NOW - 5)


def test_the_signer_refuses_a_path_token_without_a_prefix_and_any_path_under_the_marker() -> None:
    with pytest.raises(InvalidInput, match="a path token is a prefix token"):
        _signed(path_token=True)
    with pytest.raises(InvalidInput, match="reserved for path tokens"):
        _signed(url="https://cdn.example.com/_t/abc/master.m3u8")


def test_the_token_segment_decodes_to_the_parameters_the_query_form_carries() -> None:
    url = _path_token(ip="203.0.113.0/24", starts=NOW - 1)
    text = b64url_decode(url.split("/")[4]).decode()
    query_form = _signed(prefix="/v/abc/", ip="203.0.113.0/24", starts=NOW - 1)
    assert text == query_form.split("?", 1)[1]
    assert token_params(url.split("/")[4])["gw_pfx"] == "/v/abc/"


def test_an_empty_path_is_the_root_path_when_signing_and_verifying() -> None:
    url = _signed(url="https://cdn.example.com?x=1")
    assert url.startswith("https://cdn.example.com/?x=1&gw_exp=")
    assert native.verify(Redemption(url, NOW, None), ED) == PLAIN
    bare = url.replace("https://cdn.example.com/?", "https://cdn.example.com?")
    assert native.verify(Redemption(bare, NOW, None), ED) == PLAIN
    assert _reason(url.replace("https://cdn.example.com/?", "https://cdn.example.com/x?")) == "bad-signature"


@pytest.mark.parametrize("verifying_kid", ["gwk_ab", "xgwk_a", "gwk_a2", "gwk_", "gwk", "GWK_A"])
def test_the_verifying_key_s_id_is_the_signed_gw_kid_exactly(verifying_kid: str) -> None:
    """Same key material under another id: refused, even when one id is part of the other."""
    signer = KeyMaterial("gwk_a", KeyAlgorithm.ED25519, ED.public, ED.secret)
    url = native.sign(SignRequest("https://cdn.example.com/v/x.ts", NOW + 100, issued_at=NOW), signer).url
    assert native.verify(Redemption(url, NOW, None), signer).key_id == "gwk_a"
    other = KeyMaterial(verifying_kid, KeyAlgorithm.ED25519, ED.public, ED.secret)
    assert _reason_with(url, other) == "bad-signature"


def _reason_with(url: str, key: KeyMaterial) -> str:
    with pytest.raises(VerificationFailed) as caught:
        native.verify(Redemption(url, NOW, None), key)
    return caught.value.reason


def _token_url(**kwargs: object) -> str:
    base = {"url": "https://cdn.example.com/v/abc/x.ts", "expires": NOW + 100, "issued_at": NOW - 5,
            "prefix": "/v/abc/", "path_token": True}  # fmt: skip
    return native.sign(SignRequest(**{**base, **kwargs}), ED).url  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["gw_exp", "gw_iat", "gw_kid", "gw_sig", "gw_pfx"])
def test_a_path_token_without_a_required_parameter_is_malformed(name: str) -> None:
    url = _token_url()
    segment = url.split("/_t/", 1)[1].split("/", 1)[0]
    text = b64url_decode(segment).decode()
    kept = "&".join(p for p in text.split("&") if not p.startswith(name + "="))
    forged = url.replace(segment, b64url(kept.encode()))
    assert _reason(forged) == "malformed"
    assert presented_claims(forged) == {}


def test_presented_claims_say_where_the_token_travels() -> None:
    path_form = presented_claims(_token_url())
    assert (path_form["form"], path_form["resource_path"], path_form["gw_pfx"]) == ("path", "/v/abc/x.ts", "/v/abc/")
    query_form = presented_claims(_signed())
    expected = ("query", "/v/abc/master.m3u8", ED.kid)
    assert (query_form["form"], query_form["resource_path"], query_form["gw_kid"]) == expected
    assert presented_claims("https://cdn.example.com/v/x.ts") == {}


def test_a_path_token_that_is_not_ascii_text_is_malformed() -> None:
    url = _token_url()
    segment = url.split("/_t/", 1)[1].split("/", 1)[0]
    for raw in ("gw_exp=1\u00e9".encode(), b"\xff\xfe", b"gw_pfx=/v/\x80/"):
        forged = url.replace(segment, b64url(raw))
        assert _reason(forged) == "malformed"
        with pytest.raises(VerificationFailed) as refused:
            token_params(b64url(raw))
        assert refused.value.reason == "malformed"


# The signer remembers what it reads of each unsigned URL (issue 18): with the memo warm, every answer and every
# refusal must be the one a cold signer gives, whichever URLs came before. Hostile spellings included.
_url_parts = st.sampled_from(["", "/", "/v/m1/a.m3u8", "/v/m1/", "/v/%2e%2e/x", "/v/a/../b", "/_t/x/a.ts", "/_t",
                              "/v/é.mp4", "/v//a", "/v/a%2Fb", "/v/a?x", "/v/seg 1.ts", "/V/M1/A.M3U8"])  # fmt: skip
_queries = st.sampled_from(["", "a=1", "a=1&b=2", "gw_sig=x", "b=2&a=1&&", "x=%41", "GW_exp=1", "q=a+b", "=", "&"])
_hosts = st.sampled_from(["https://cdn.example", "https://cdn.example:8443", "http://[::1]", "https://[::1",
                          "", "//cdn.example", "HTTPS://CDN.example"])  # fmt: skip


def _reference_sign(request: SignRequest, key: KeyMaterial) -> str:
    """The signer as written before the memo (issue 18): every URL parsed and checked from scratch."""
    parts = split_url(request.url)
    path = path_tokens.check_not_reserved(canonical_path(parts.path or "/"))
    pairs = split_query(parts.query)
    if any(name.startswith("gw_") for name, _ in pairs):
        raise InvalidInput("the URL already carries gw_ parameters")
    prefix = canonical_prefix(request.prefix) if request.prefix is not None else None
    if prefix is not None and not path.startswith(prefix):
        raise InvalidInput("the URL does not lie under the requested prefix")
    if request.path_token and prefix is None:
        raise InvalidInput("a path token is a prefix token: it needs a prefix (scope 'prefix')")
    assert request.issued_at is not None and request.ip is None and request.starts is None
    message = string_to_sign(
        algorithm=key.algorithm.value, kid=key.kid, issued_at=request.issued_at, expires=request.expires,
        starts=None, ip=None, scope=f"prefix:{prefix}" if prefix is not None else f"path:{path}",
        query="" if prefix is not None else canonical_query(pairs),
    )  # fmt: skip
    params = [("gw_exp", str(request.expires)), ("gw_iat", str(request.issued_at))]
    params += [("gw_pfx", quote(prefix, safe="/%-._~!$'()*,:@"))] if prefix is not None else []
    params += [("gw_kid", key.kid), ("gw_sig", b64url(key.sign(message)))]
    others = [p for p in parts.query.split("&") if p]
    base = f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""
    if request.path_token:
        token = b64url(params_text(dict(params)).encode("ascii"))
        return base + path_tokens.join(token, path) + ("?" + "&".join(others) if others else "")
    return f"{base}{path}?" + "&".join(others + [f"{n}={v}" for n, v in params])


def _outcome(sign: Callable[[SignRequest, KeyMaterial], str], request: SignRequest) -> str:
    try:
        return sign(request, HS)
    except InvalidInput as exc:
        return f"InvalidInput: {exc.message}"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_hosts, _url_parts, _queries, st.sampled_from([None, "/v/m1/", "/v/", "/w/"]),
                          st.booleans()), min_size=1, max_size=6))  # fmt: skip
def test_the_remembered_unsigned_url_gives_what_the_full_path_gives(
    urls: list[tuple[str, str, str, str | None, bool]],
) -> None:
    requests = [
        SignRequest(url=host + path + (f"?{query}" if query else ""), expires=NOW + 300, starts=None, ip=None,
                    prefix=prefix, attribution=None, issued_at=NOW, path_token=token and prefix is not None)
        for host, path, query, prefix, token in urls
    ]  # fmt: skip
    # Each URL twice, after the others: the memo is warm for every one of them the second time.
    warm = [_outcome(lambda r, k: native.sign(r, k).url, r) for r in requests + requests]
    assert warm == [_outcome(_reference_sign, r) for r in requests + requests]
