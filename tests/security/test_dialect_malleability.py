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

from gateway.signing.dialects import media_cdn
from gateway.signing.dialects.base import SignRequest
from tests.dialect_fixtures import ATTACK_NOW as NOW
from tests.dialect_fixtures import Setup, attack_url, setups, verdict

SETUPS = {s.name: s for s in setups()}


@pytest.mark.parametrize("variant", ["sha256", "Sha256", "SHA-256", "SHA1", "sha1", "", "SHA512"])
def test_cloudfront_accepts_only_the_documented_hash_algorithm(variant: str) -> None:
    setup = SETUPS["cloudfront-ecdsa-sha256"]
    url = attack_url(setup)
    assert url.endswith("&Hash-Algorithm=SHA256") and verdict(setup, url) == "accepted"
    assert verdict(setup, url.replace("Hash-Algorithm=SHA256", f"Hash-Algorithm={variant}")) == "malformed"
    cookies = setup.dialect.sign(SignRequest("https://cdn.example.com/v/a/", NOW + 300, prefix="/v/a/",
                                             options=setup.options), setup.key).cookies  # fmt: skip
    assert verdict(setup, "https://cdn.example.com/v/a/x.ts", dict(cookies)) == "accepted"
    spelled = {**cookies, "CloudFront-Hash-Algorithm": variant}
    assert verdict(setup, "https://cdn.example.com/v/a/x.ts", spelled) == "malformed"


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
    url = attack_url(setup)
    sign = url.split("wmsAuthSign=")[1]
    other = _same_bytes_other_spelling(sign, string.ascii_letters + string.digits + "+/")
    assert verdict(setup, url) == "accepted"
    assert verdict(setup, url.replace(sign, other)) == "malformed"


def test_nimble_refuses_repeated_or_unknown_fields() -> None:
    setup = SETUPS["nimble"]
    url = attack_url(setup)
    sign = url.split("wmsAuthSign=")[1]
    text = base64.b64decode(sign).decode()
    for forged in (text + "&validminutes=99999", text + "&colour=red"):
        assert verdict(setup, url.replace(sign, base64.b64encode(forged.encode()).decode())) == "malformed"


def test_google_signature_padding_is_exactly_as_google_writes_it() -> None:
    setup = SETUPS["google-cdn"]
    url = attack_url(setup)
    assert url.endswith("=") and verdict(setup, url) == "accepted"
    assert verdict(setup, url.rstrip("=")) == "malformed"


def test_media_cdn_signature_padding_is_exactly_as_google_writes_it() -> None:
    setup = SETUPS["media-cdn-ed25519"]
    url = attack_url(setup)
    assert verdict(setup, url) == "accepted"
    assert verdict(setup, url + "==") == "malformed"


@pytest.mark.parametrize(("name", "old", "new"), [
    ("media-cdn-hmac", "~", "%7E"), ("media-cdn-ed25519", "~", "%7E"), ("akamai", "~", "%7E"),
    ("akamai", "=", "%3D"), ("bunny", "gwk_", "gwk%5F"), ("wowza", "=", "%3D"),
])  # fmt: skip
def test_a_percent_encoded_token_is_a_different_token(name: str, old: str, new: str) -> None:
    setup = SETUPS[name]
    url = attack_url(setup)
    assert verdict(setup, url) == "accepted"
    last = url.rindex(old)  # the token's last occurrence: inside the signed fields
    assert verdict(setup, url[:last] + new + url[last + len(old) :]) != "accepted"


def test_media_cdn_refuses_a_signed_token_with_a_repeated_field() -> None:
    """Two Data fields would give two readings of who signed; even a validly signed one is refused."""
    setup = SETUPS["media-cdn-hmac"]
    fields = [f"Expires={NOW + 300}", "Data=gwk_first", "Data=gwk_second"]
    token = media_cdn.sign_fields(["FullPath", *fields], ["FullPath=/v/a.ts", *fields], setup.key)
    assert verdict(setup, f"https://cdn.example.com/v/a.ts?edge-cache-token={token}") == "malformed"


@pytest.mark.parametrize("setup", list(SETUPS.values()), ids=lambda s: s.name)
@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), upper=st.booleans())
def test_percent_encoding_any_character_of_the_token_is_refused(setup: Setup, position: int, upper: bool) -> None:
    url = attack_url(setup)
    start = url.index("?") + 1 if "?" in url else len("https://cdn.example.com/")  # Bunny: token in the path
    index = start + position % (len(url) - start)
    escape = f"%{ord(url[index]):02X}" if upper else f"%{ord(url[index]):02x}"
    mutated = url[:index] + escape + url[index + 1 :]
    assert verdict(setup, mutated) != "accepted", mutated
