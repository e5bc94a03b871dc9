"""The native GW2 format: published vectors, canonicalisation, the signed issue time, and attempts to break it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial, b64url, ed25519_public
from gateway.model import KeyAlgorithm
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.signing.dialects.native import NativeDialect, string_to_sign

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
    ip = "203.0.113.99" if "203.0.113" in vector["signed_url"] else "2001:db8:1234:ffff::9"
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


def test_ip_binding_v4_and_v6() -> None:
    v4 = _signed(ip="198.51.100.0/24")
    assert native.verify(Redemption(v4, NOW, "198.51.100.200"), ED)
    assert native.verify(Redemption(v4, NOW, "::ffff:198.51.100.7"), ED)
    assert _reason(v4, "198.51.101.1") == "wrong-ip"
    assert _reason(v4, None) == "wrong-ip"
    v6 = _signed(ip="2001:db8:aa::/48")
    assert native.verify(Redemption(v6, NOW, "2001:db8:aa:1::1"), ED)
    assert _reason(v6, "2001:db8:ab::1") == "wrong-ip"
    assert _reason(v6, "198.51.100.1") == "wrong-ip"


def test_prefix_token_opens_segments_but_not_a_sibling_directory() -> None:
    url = _signed(prefix="/v/abc/")
    query = url.split("?", 1)[1]
    assert native.verify(Redemption(f"/v/abc/seg-00001.ts?{query}", NOW, None), ED)
    assert native.verify(Redemption(f"/v/abc/720p/seg-1.ts?{query}", NOW, None), ED)
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
    assert native.verify(Redemption(url, NOW, None), ED)
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
    "mutate",
    [
        lambda u: u.replace("gw_exp=", "gw_exp=9"),
        lambda u: u.replace("gw_kid=gwk_testvectored25519", "gwk_kid=x"),
        lambda u: u + "&gw_exp=1",
        lambda u: u.replace("&gw_sig=", "&gw_sig=A"),
        lambda u: u.split("&gw_sig=")[0],
        lambda u: u + "&gw_unknown=1",
        lambda u: u.replace("gw_exp=", "gw_exp=-"),
    ],
    ids=[
        "exp-changed",
        "kid-removed",
        "duplicate-param",
        "sig-garbled",
        "sig-stripped",
        "unknown-param",
        "exp-negative",
    ],
)
def test_tampering_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VerificationFailed):
        native.verify(Redemption(mutate(_signed()), NOW, None), ED)


def test_a_url_signed_by_one_key_does_not_verify_under_another_kid() -> None:
    other = KeyMaterial("gwk_other", KeyAlgorithm.ED25519, ED.public, ED.secret)
    url = _signed()
    assert native.verify(Redemption(url, NOW, None), ED)
    with pytest.raises(VerificationFailed, match="not valid"):
        native.verify(Redemption(url, NOW, None), other)


def test_hmac_url_does_not_verify_as_ed25519_and_back() -> None:
    hs_url = native.sign(SignRequest("https://c/v/a.mp4", NOW + 9, issued_at=NOW), HS).url
    as_ed = KeyMaterial(HS.kid, KeyAlgorithm.ED25519, ED.public, None)
    with pytest.raises(VerificationFailed):
        native.verify(Redemption(hs_url, NOW, None), as_ed)


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
    assert native.verify(Redemption(_signed_by_hand(str(NOW + 100), str(NOW + 100)), NOW, None), ED)
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
