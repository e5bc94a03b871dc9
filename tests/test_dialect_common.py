"""The dialects' shared helpers (``gateway.signing.dialects._common``), each with its exact answers and refusals.

Every CDN format parses with these: a check loosened here (one operand of a condition dropped, ``!=`` read as
"not a part of") loosens every format at once, so each helper is pinned on its own (tools/mutate.py found the
gaps; docs/mutation-testing.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInput, VerificationFailed
from gateway.model import KeyAlgorithm
from gateway.signing.dialects import _common as c


def _refusal(call: Callable[[], object]) -> str:
    with pytest.raises(VerificationFailed) as refused:
        call()
    return refused.value.reason


# --- base64url ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "raw"), [("QUJD", b"ABC"), ("QUI", b"AB"), ("QUI=", b"AB"), ("QQ", b"A"),
                                           ("QQ==", b"A"), ("", b""), ("-_8", b"\xfb\xff"),
                                           ("QUJDREVGRw", b"ABCDEFG"), ("QUJDREVGRw==", b"ABCDEFG"),
                                           ("QUJDREVGR0g", b"ABCDEFGH"), ("QUJDREVGR0hJ", b"ABCDEFGHI")])  # fmt: skip
def test_b64url_any_decode_reads_either_canonical_spelling(text: str, raw: bytes) -> None:
    assert c.b64url_any_decode(text) == raw


@pytest.mark.parametrize(
    "text",
    ["QUJD.", ".QUJD", "QUJD~", "~QUJD", "QU.JD", "QUJ=", "QUJ", "QUJD=", "QUI==", "QQ=", "QR", "QR==", "Q", "+/8",
     "QUJD!", "!QUJD"],
)  # fmt: skip
def test_b64url_any_decode_refuses_every_other_spelling(text: str) -> None:
    """Characters base64 would skip, padding bits that are not zero, padding that is not exactly right."""
    assert _refusal(lambda: c.b64url_any_decode(text)) == "malformed"


def test_b64url_exact_decode_reads_only_the_format_s_spelling() -> None:
    assert c.b64url_exact_decode("QUI=", padded=True) == b"AB"
    assert c.b64url_exact_decode("QUI", padded=False) == b"AB"
    assert c.b64url_exact_decode("QUJD", padded=True) == c.b64url_exact_decode("QUJD", padded=False) == b"ABC"
    assert _refusal(lambda: c.b64url_exact_decode("QUI", padded=True)) == "malformed"
    assert _refusal(lambda: c.b64url_exact_decode("QUI=", padded=False)) == "malformed"
    assert _refusal(lambda: c.b64url_exact_decode("QUJD.", padded=False)) == "malformed"
    assert (c.b64url_padded(b"AB"), c.b64url_nopad(b"AB")) == ("QUI=", "QUI")


# --- texts, URLs, query strings ---------------------------------------------------------------------------------


def test_same_text_compares_whole_texts_and_never_raises() -> None:
    assert c.same_text("abc", "abc") is True
    assert [c.same_text("abc", other) for other in ("ab", "abcd", "xabc", "ABC", "", "ab\udcff", "abç")] == [False] * 7


@pytest.mark.parametrize("other", ["", "Sig", "Signatur", "XSignature", "Signature2", "signature", "Signature "])
def test_single_reads_exactly_the_name_asked_for(other: str) -> None:
    """A parameter whose name is part of, contains or starts like the one asked for is another parameter."""
    assert c.single([(other, "x")], "Signature") is None
    assert c.single([("Signature", "a"), (other, "x")], "Signature") == "a"
    assert c.single([(other, "x"), ("Signature", "a")], "Signature") == "a"
    assert c.required([(other, "x"), ("Signature", "a")], "Signature") == "a"


def test_split_url_turns_an_unsplittable_url_into_a_400() -> None:
    assert c.split_url("https://h/v?a=1").query == "a=1"
    with pytest.raises(InvalidInput, match="not a URL"):
        c.split_url("https://[::1/v")


# Pieces of URLs and of what is not quite one: every character urlsplit treats specially (scheme, host and
# query delimiters, brackets, fragments, the whitespace and control characters it strips or removes, non-ASCII).
_URL_PIECES = st.sampled_from(
    ["https://", "HTTP://", "a+b.c-d://", "1x://", "x:/", "://", "//", "h.example", "[::1]", "[", "]", "@", ":",
     ":8443", "/", "/v/m1/seg1.ts", "?", "&", "=", "gw_sig=AbC-_", "#", "%2F", " ", "\t", "\n", "\r", "\x00",
     "\x7f", "é", "\u3000", "\ud800", "+", ".", "-", "~", "A", "z", "0", ""]
)  # fmt: skip


def _urlsplit_or_400(url: str) -> object:
    try:
        return urlsplit(url)
    except ValueError:
        return InvalidInput


def _split_url_or_400(url: str) -> object:
    try:
        return c.split_url(url)
    except InvalidInput:
        return InvalidInput


@settings(max_examples=3000, deadline=None)
@given(url=st.one_of(st.lists(_URL_PIECES, max_size=10).map("".join), st.text(max_size=40)))
def test_split_url_is_urlsplit_on_any_text(url: str) -> None:
    """The plain-URL shortcut (``_plain_split``) against ``urlsplit`` itself, which it stands in for."""
    assert _split_url_or_400(url) == _urlsplit_or_400(url)


@pytest.mark.parametrize(
    "url",
    ["https://media.example.com/v/m1/seg1.ts?gw_exp=1&gw_sig=x", "HTTPS://H.example:8443/a?b?c", "x://h?q/r",
     "a-b://h", "https://h", "https://h?", "https://h/", "https://u:p@h/p", "https:///p"],
)  # fmt: skip
def test_split_url_takes_the_shortcut_for_plain_urls_with_urlsplit_s_answer(url: str) -> None:
    assert c._plain_split(url) == urlsplit(url)


@pytest.mark.parametrize(
    "url",
    ["https://[::1]/v", "https://[::1/v", "https://h]/v", "https://h/v#f", "https://h/a b", " https://h/v",
     "https://h/v\t", "https://h/é", "/v/m1?x=1", "h.example/v", "1x://h/v", "x:/h/v", "https:h/v", ""],
)  # fmt: skip
def test_split_url_leaves_anything_else_to_urlsplit(url: str) -> None:
    assert c._plain_split(url) is None


def test_query_pairs_are_raw_and_in_order() -> None:
    assert c.query_pairs("https://h/v?b=2&&a=1&a&c=x=y&=v") == [("b", "2"), ("a", "1"), ("a", ""), ("c", "x=y"),
                                                                  ("", "v")]  # fmt: skip
    assert c.query_pairs("https://h/v") == []


def test_append_query_looks_at_the_url_itself() -> None:
    assert c.append_query("https://h/v", "a=1") == "https://h/v?a=1"
    assert c.append_query("https://h/v?x=2", "a=1") == "https://h/v?x=2&a=1"
    assert c.append_query("https://h/v?", "a=1") == "https://h/v??a=1"  # an empty query is no query


# --- numbers and times --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("7", 7), ("10", 10), ("1800000000", 1_800_000_000),
                                             ("9" * 16, 10**16 - 1)])  # fmt: skip
def test_decimal_reads_the_one_spelling_of_a_number(text: str, value: int) -> None:
    assert c.decimal(text) == value
    assert c.epoch(text) == value


@pytest.mark.parametrize(
    "text", ["", "00", "01", "007", "-1", "+1", " 1", "1 ", "1.0", "1e3", "\u0661", "\u00b2", "1" * 17]
)
def test_decimal_refuses_every_other_spelling(text: str) -> None:
    assert _refusal(lambda: c.decimal(text)) == "malformed"


def test_decimal_digit_limit_is_the_caller_s() -> None:
    assert c.decimal("123", max_digits=3) == 123
    assert _refusal(lambda: c.decimal("1234", max_digits=3)) == "malformed"


def test_check_window_edges() -> None:
    assert c.check_window(99.9, 100) is None
    assert c.check_window(50, 100, 50) is None
    with pytest.raises(VerificationFailed) as expired:
        c.check_window(100, 100, 50)
    assert (expired.value.reason, expired.value.facts) == ("expired", {"expires": 100})
    with pytest.raises(VerificationFailed) as early:
        c.check_window(49.5, 100, 50)
    assert (early.value.reason, early.value.facts) == ("not-yet-valid", {"starts": 50})


# --- addresses ------------------------------------------------------------------------------------------------------


def test_client_address_reads_one_address_and_unmaps_ipv4() -> None:
    assert c.client_address("203.0.113.7") == ipaddress.ip_address("203.0.113.7")
    assert c.client_address("::ffff:203.0.113.7") == ipaddress.ip_address("203.0.113.7")
    assert c.client_address("2001:db8::1") == ipaddress.ip_address("2001:db8::1")
    for bad in (None, "", "203.0.113.0/24", "not-an-ip"):
        assert _refusal(lambda bad=bad: c.client_address(bad)) == "wrong-ip"


def test_check_ip_in_any_of_the_networks() -> None:
    nets = ["10.0.0.0/8", " 203.0.113.0/24 "]
    assert c.check_ip_in(nets, "203.0.113.7") is None
    assert c.check_ip_in(nets, "::ffff:203.0.113.7") is None
    assert c.check_ip_in(["2001:db8::/32"], "2001:db8::5") is None
    assert _refusal(lambda: c.check_ip_in(nets, "198.51.100.1")) == "wrong-ip"
    assert _refusal(lambda: c.check_ip_in(["::/0"], "203.0.113.7")) == "wrong-ip"  # versions never mix
    assert _refusal(lambda: c.check_ip_in(["0.0.0.0/0"], "2001:db8::5")) == "wrong-ip"
    assert _refusal(lambda: c.check_ip_in([], "203.0.113.7")) == "wrong-ip"
    assert _refusal(lambda: c.check_ip_in(["nonsense"], "203.0.113.7")) == "malformed"
    assert _refusal(lambda: c.check_ip_in(nets, None)) == "wrong-ip"
    assert c.check_ip_in(["203.0.113.7/24"], "203.0.113.9") is None  # host bits set: still the network


def test_check_ip_exact() -> None:
    assert c.check_ip_exact("203.0.113.7", "203.0.113.7") is None
    assert c.check_ip_exact("203.0.113.7", "::ffff:203.0.113.7") is None
    assert _refusal(lambda: c.check_ip_exact("203.0.113.7", "203.0.113.70")) == "wrong-ip"
    assert _refusal(lambda: c.check_ip_exact("203.0.113.7", "203.0.113.")) == "wrong-ip"
    assert _refusal(lambda: c.check_ip_exact("203.0.113.0/24", "203.0.113.7")) == "malformed"


def test_single_address_binds_one_address_only() -> None:
    assert c.single_address("203.0.113.7", "X") == "203.0.113.7"
    assert c.single_address(" 203.0.113.7/32 ", "X") == "203.0.113.7"
    assert c.single_address("2001:db8::1/128", "X") == "2001:db8::1"
    with pytest.raises(InvalidInput, match=r"^X binds one exact client address, not a network \(203.0.113.0/31\)$"):
        c.single_address("203.0.113.0/31", "X")
    with pytest.raises(InvalidInput, match=r"^X binds one exact client address, not a network \(203.0.113.7/24\)$"):
        c.single_address("203.0.113.7/24", "X")  # host bits set: still a network, not an address
    with pytest.raises(InvalidInput, match="not an IP address"):
        c.single_address("nonsense", "X")


# --- prefixes and patterns ------------------------------------------------------------------------------------------


def test_signable_and_directory_prefixes() -> None:
    assert c.signable_prefix("/v/a") == "/v/a"
    assert c.directory_prefix("/v/a/") == "/v/a/"
    with pytest.raises(InvalidInput, match="a prefix is a directory"):
        c.directory_prefix("/v/a")
    for bad in ("/v/../a/", "v/a/", "/v//a/", "/v/%7Ea/"):
        with pytest.raises(InvalidInput, match="is not a canonical path"):
            c.directory_prefix(bad)


@pytest.mark.parametrize(("pattern", "value", "matches"), [
    ("/v/*", "/v/a/b.ts", True), ("/v/*", "/w/a", False), ("/v/?", "/v/a", True), ("/v/?", "/v/ab", False),
    ("/v/a.ts", "/v/a.ts", True), ("/v/a.ts", "/v/axts", False), ("/v/a.ts", "/v/a.ts/x", False),
    ("/v/a*", "/v/a", True), ("*", "", True), ("/v/[a]", "/v/[a]", True), ("/v/[a]", "/v/a", False),
])  # fmt: skip
def test_wildcard_match(pattern: str, value: str, matches: bool) -> None:
    assert c.wildcard_match(pattern, value) is matches


@pytest.mark.parametrize(("pattern", "url", "matches"), [
    ("*", "https://h/v/a.ts", True), ("***", "https://h/v/a.ts?x=1", True), ("", "https://h/v/a.ts", False),
    ("https://h/v/a.ts", "https://h/v/a.ts", True), ("https://h/v/a.ts", "https://h/v/a.tsx", False),
    ("https://h/v/abc/*", "https://h/v/abc/x/y.ts?z=1", True), ("https://h/v/*.ts", "https://h/v/a.ts?z=1", False),
    ("https://h/v/*.ts", "https://h/v/a/b.ts", True), ("https://h/v/?.ts", "https://h/v/a.ts", True),
    ("https://h/v/?.ts", "https://h/v//.ts", False), ("https://*/v/a.ts", "https://cdn.example.com/v/a.ts", True),
    ("https://h*", "https://hx/v/a.ts", False), ("https://h*/v/a.ts", "https://h/x/v/a.ts", False),
    ("h/v/a.ts", "https://h/v/a.ts", False), ("https://h/v/a.ts", "/v/a.ts", False),
    ("https://h", "https://h", True), ("https://other/v/a.ts", "https://h/v/a.ts", False),
    ("https:///v/a.ts", "https:///v/a.ts", True), ("https:///v/a.ts", "https://h/v/a.ts", False),
])  # fmt: skip
def test_resource_match_keeps_each_wildcard_in_its_part(pattern: str, url: str, matches: bool) -> None:
    assert c.resource_match(pattern, url) is matches


@pytest.mark.parametrize(("prefix", "url", "within"), [
    ("https://h/v/a/", "https://h/v/a/x.ts", True), ("https://h/v/a", "https://h/v/a/x.ts", True),
    ("https://h/v/a", "https://h/v/ab/x.ts", False), ("https://h/v/a/", "https://other/v/a/x.ts", False),
    ("https://h", "https://h/v/a/x.ts", False), ("/v/a/", "/v/a/x.ts", False), ("https://h/v/a/", "/v/a/x.ts", False),
    ("https://h/v/a/?x=1", "https://h/v/a/x.ts", False), ("https://h/v/a/#x", "https://h/v/a/#x/y", False),
    ("https://h/", "https://h/x", True), ("https://h/v/a/", "https://h/v/a/x.ts?q=1", True),
    ("https://h/v/a/", "https://h.evil.example/v/a/x.ts", False), ("https://h/v/a/", "https://hh/v/a/x.ts", False),
    ("https://h.example/v/a/", "https://h/v/a/x.ts", False), ("https://h:443/v/a/", "https://h/v/a/x.ts", False),
])  # fmt: skip
def test_url_within_prefix_at_a_segment_boundary(prefix: str, url: str, within: bool) -> None:
    assert c.url_within_prefix(url, prefix) is within


def test_glob_and_unsupported() -> None:
    assert c.glob_match("/v/*.ts", "/v/a.ts") and not c.glob_match("/v/*.ts", "/v/a.TS")
    refusal = c.unsupported("Bunny", "a network")
    assert isinstance(refusal, InvalidInput) and refusal.message == "the Bunny format cannot restrict by a network"


# --- key files ------------------------------------------------------------------------------------------------------


def _pem(key: object, private: bool = True) -> bytes:
    if private:
        return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())  # type: ignore[attr-defined]
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def test_load_pem_key_reads_each_supported_type() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    loaded = c.load_pem_key(_pem(ed), "k1")
    assert (loaded.kid, loaded.algorithm, loaded.secret) == ("k1", KeyAlgorithm.ED25519, ed.private_bytes_raw())
    assert loaded.public == ed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    public_only = c.load_pem_key(_pem(ed, private=False), None)
    assert (public_only.kid, public_only.secret, public_only.public) == ("", None, loaded.public)
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert c.load_pem_key(_pem(p256), "k").algorithm is KeyAlgorithm.ECDSA_P256
    assert c.load_pem_key(_pem(p256), "k").secret == p256.private_bytes(Encoding.DER, PrivateFormat.PKCS8,
                                                                         NoEncryption())  # fmt: skip
    assert c.load_pem_key(_pem(rsa.generate_private_key(65537, 2048)), "k").algorithm is KeyAlgorithm.RSA_2048
    rsa3072 = rsa.generate_private_key(65537, 3072)
    assert c.load_pem_key(_pem(rsa3072, private=False), "k").algorithm is KeyAlgorithm.RSA_2048


_WEAK_RSA = rsa.generate_private_key(65537, 1024)  # noqa: S505 (that it is refused is the point)


@pytest.mark.parametrize("key", [_WEAK_RSA, ec.generate_private_key(ec.SECP384R1())], ids=["rsa-1024", "p-384"])
def test_load_pem_key_refuses_weak_or_unsupported_keys(key: object) -> None:
    for private in (True, False):
        with pytest.raises(InvalidInput, match=r"^unsupported key: use RSA-2048"):
            c.load_pem_key(_pem(key, private), "k")


def test_load_pem_key_refuses_what_is_not_a_pem_key() -> None:
    with pytest.raises(InvalidInput, match=r"^the key file is not a PEM private or public key$"):
        c.load_pem_key(b"-----BEGIN NONSENSE-----\n", "k")


def test_shared_secret_is_the_file_without_its_line_end() -> None:
    secret = c.shared_secret(b"s3cr3t \r\n", None)
    assert (secret.kid, secret.algorithm, secret.public, secret.secret) == ("", KeyAlgorithm.SHARED_SECRET, None,
                                                                            b"s3cr3t ")  # fmt: skip
    assert c.shared_secret(b"x", "k").kid == "k"
    with pytest.raises(InvalidInput, match=r"^the key file is empty$"):
        c.shared_secret(b"\r\n", "k")
