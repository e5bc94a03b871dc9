"""Attack: a second spelling of a signed URL still verifies (malleability).

Each dialect's decoder accepts exactly the spelling the format defines: the
CloudFront ``Hash-Algorithm`` values AWS documents, canonical base64 (no
stray padding bits, padding exactly as the format writes it), tokens read as
sent (no percent-decoding that makes ``%7E`` and ``~`` one token), each
field once. tests/test_dialect_properties.py checks single-character changes
at random; these are the spellings it found, and the percent-encoding class.
"""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import VerificationFailed
from gateway.signing.dialects import media_cdn
from gateway.signing.dialects.base import Redemption, SignRequest
from tests.dialect_fixtures import ATTRIBUTION, Setup, setups

SETUPS = {s.name: s for s in setups()}
NOW = 1_800_000_000
CLIENT = "203.0.113.7"


def _sign(setup: Setup, path: str = "/v/abc/master.m3u8", prefix: str | None = None) -> str:
    request = SignRequest(
        url=f"https://cdn.example.com{path}", expires=NOW + 300, ip=CLIENT if setup.needs_ip else None,
        prefix=prefix if prefix is not None else (path if setup.sign_prefix else None), issued_at=NOW,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION, options=setup.options,
    )  # fmt: skip
    return setup.dialect.sign(request, setup.key).url


def _reason(setup: Setup, url: str, cookies: dict[str, str] | None = None) -> str:
    redemption = Redemption(url, NOW + 30, CLIENT, cookies or {}, setup.options)
    try:
        presented = setup.dialect.presented_key_id(redemption)
        if presented is not None and presented != setup.key.kid:
            return "unknown-key"
        setup.dialect.verify(redemption, setup.key)
    except VerificationFailed as refused:
        return refused.reason
    return "accepted"


@pytest.mark.parametrize("variant", ["sha256", "Sha256", "SHA-256", "SHA1", "sha1", "", "SHA512"])
def test_cloudfront_accepts_only_the_documented_hash_algorithm(variant: str) -> None:
    setup = SETUPS["cloudfront-ecdsa-sha256"]
    url = _sign(setup)
    assert url.endswith("&Hash-Algorithm=SHA256") and _reason(setup, url) == "accepted"
    assert _reason(setup, url.replace("Hash-Algorithm=SHA256", f"Hash-Algorithm={variant}")) == "malformed"
    cookies = setup.dialect.sign(SignRequest("https://cdn.example.com/v/a/", NOW + 300, prefix="/v/a/",
                                             options=setup.options), setup.key).cookies  # fmt: skip
    assert _reason(setup, "https://cdn.example.com/v/a/x.ts", dict(cookies)) == "accepted"
    spelled = {**cookies, "CloudFront-Hash-Algorithm": variant}
    assert _reason(setup, "https://cdn.example.com/v/a/x.ts", spelled) == "malformed"


def _same_bytes_other_spelling(text: str, alphabet: str) -> str:
    """The base64 text with its last data character changed so that only padding bits differ."""
    body = text.rstrip("=")
    decode = base64.b64decode if "+" in alphabet else base64.urlsafe_b64decode
    original = decode(text + "=" * (-len(text) % 4))
    for char in alphabet:
        other = body[:-1] + char + text[len(body) :]
        if other != text and decode(other + "=" * (-len(other) % 4)) == original:
            return other
    raise AssertionError("no second spelling")


def test_nimble_refuses_non_canonical_base64() -> None:
    setup = SETUPS["nimble"]
    url = _sign(setup)
    sign = url.split("wmsAuthSign=")[1]
    other = _same_bytes_other_spelling(sign, string.ascii_letters + string.digits + "+/")
    assert _reason(setup, url) == "accepted"
    assert _reason(setup, url.replace(sign, other)) == "malformed"


def test_nimble_refuses_repeated_or_unknown_fields() -> None:
    setup = SETUPS["nimble"]
    url = _sign(setup)
    sign = url.split("wmsAuthSign=")[1]
    text = base64.b64decode(sign).decode()
    for forged in (text + "&validminutes=99999", text + "&colour=red"):
        assert _reason(setup, url.replace(sign, base64.b64encode(forged.encode()).decode())) == "malformed"


def test_google_signature_padding_is_exactly_as_google_writes_it() -> None:
    setup = SETUPS["google-cdn"]
    url = _sign(setup)
    assert url.endswith("=") and _reason(setup, url) == "accepted"
    assert _reason(setup, url.rstrip("=")) == "malformed"


def test_media_cdn_signature_padding_is_exactly_as_google_writes_it() -> None:
    setup = SETUPS["media-cdn-ed25519"]
    url = _sign(setup)
    assert _reason(setup, url) == "accepted"
    assert _reason(setup, url + "==") == "malformed"


@pytest.mark.parametrize(("name", "old", "new"), [
    ("media-cdn-hmac", "~", "%7E"), ("media-cdn-ed25519", "~", "%7E"), ("akamai", "~", "%7E"),
    ("akamai", "=", "%3D"), ("bunny", "gwk_", "gwk%5F"), ("wowza", "=", "%3D"),
])  # fmt: skip
def test_a_percent_encoded_token_is_a_different_token(name: str, old: str, new: str) -> None:
    setup = SETUPS[name]
    url = _sign(setup)
    assert _reason(setup, url) == "accepted"
    last = url.rindex(old)  # the token's last occurrence: inside the signed fields
    assert _reason(setup, url[:last] + new + url[last + len(old) :]) != "accepted"


def test_media_cdn_refuses_a_signed_token_with_a_repeated_field() -> None:
    """Two Data fields would give two readings of who signed; even a validly signed one is refused."""
    setup = SETUPS["media-cdn-hmac"]
    fields = [f"Expires={NOW + 300}", "Data=gwk_first", "Data=gwk_second"]
    token = media_cdn.sign_fields(["FullPath", *fields], ["FullPath=/v/a.ts", *fields], setup.key)
    assert _reason(setup, f"https://cdn.example.com/v/a.ts?edge-cache-token={token}") == "malformed"


@pytest.mark.parametrize("setup", list(SETUPS.values()), ids=lambda s: s.name)
@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), upper=st.booleans())
def test_percent_encoding_any_character_of_the_token_is_refused(setup: Setup, position: int, upper: bool) -> None:
    url = _sign(setup)
    start = url.index("?") + 1 if "?" in url else len("https://cdn.example.com/")  # Bunny: token in the path
    index = start + position % (len(url) - start)
    escape = f"%{ord(url[index]):02X}" if upper else f"%{ord(url[index]):02x}"
    mutated = url[:index] + escape + url[index + 1 :]
    assert _reason(setup, mutated) != "accepted", mutated
