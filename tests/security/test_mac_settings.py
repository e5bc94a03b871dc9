"""Attack: a token MACed under other settings than the profile's still verifies.

A shared-secret verifier that tries every hash its format knows, or ignores
the profile's salt or escaping, accepts tokens the profile never signs: ones
made with a weaker hash (MD5, SHA-1), or by another property or tool that
shares the secret without the salt. Each verifier checks exactly the
profile's settings (Akamai ``algorithm``, ``salt``, ``escape_early``; Media CDN
``hmac_hash``; Wowza ``hash``), so one token has one MAC.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from akamai.edgeauth import EdgeAuth

from gateway.errors import InvalidInput, VerificationFailed
from gateway.signing.dialects.base import Redemption, SignRequest
from tests.dialect_fixtures import ATTRIBUTION, setups

SETUPS = {s.name: s for s in setups()}
NOW = 1_800_000_000
AKAMAI = SETUPS["akamai"]
AKAMAI_HEX = "eee7e9157f81b2f6d471bf2c"  # tests/dialect_fixtures.py's Akamai key
URL = "https://media.example.com/v/abc/master.m3u8"


def _reason(name: str, url: str, options: dict[str, str]) -> str:
    setup = SETUPS[name]
    try:
        setup.dialect.verify(Redemption(url, NOW + 30, "203.0.113.7", options=options), setup.key)
    except VerificationFailed as refused:
        return refused.reason
    return "accepted"


def _sign(name: str, options: dict[str, str], prefix: str | None = None) -> str:
    setup = SETUPS[name]
    request = SignRequest(
        URL, NOW + 300, starts=NOW, prefix=prefix, attribution=ATTRIBUTION, issued_at=NOW, options=options
    )
    return setup.dialect.sign(request, setup.key).url


@pytest.mark.parametrize("other", ["sha1", "md5"])
@pytest.mark.parametrize("prefix", [None, "/v/abc/"], ids=["url-token", "acl-token"])
def test_akamai_refuses_a_token_maced_with_another_algorithm(other: str, prefix: str | None) -> None:
    weaker = _sign("akamai", {"algorithm": other}, prefix)
    assert _reason("akamai", weaker, {"algorithm": other}) == "accepted"
    assert _reason("akamai", weaker, {}) == "bad-signature"  # the default is sha256
    assert _reason("akamai", weaker, {"algorithm": "sha256"}) == "bad-signature"
    assert _reason("akamai", _sign("akamai", {}, prefix), {"algorithm": other}) == "bad-signature"


def test_akamai_a_salted_profile_verifies_its_own_tokens_and_refuses_unsalted_ones() -> None:
    salted = {"salt": "pepper"}
    own, unsalted, other_salt = _sign("akamai", salted), _sign("akamai", {}), _sign("akamai", {"salt": "cumin"})
    assert _reason("akamai", own, salted) == "accepted"
    assert _reason("akamai", unsalted, salted) == "bad-signature"
    assert _reason("akamai", other_salt, salted) == "bad-signature"
    assert _reason("akamai", own, {}) == "bad-signature"


def test_akamai_a_salted_profile_verifies_the_official_package_tokens() -> None:
    official = EdgeAuth(key=AKAMAI_HEX, salt="pepper", end_time=NOW + 300, payload=ATTRIBUTION)
    url = f"{URL}?__token__={official.generate_url_token('/v/abc/master.m3u8')}"
    assert _reason("akamai", url, {"salt": "pepper"}) == "accepted"
    assert _reason("akamai", url, {}) == "bad-signature"


def test_akamai_escaping_is_the_profile_s_not_the_token_s() -> None:
    path = "/v/a(1)/master.m3u8"  # escape_early changes '(' and ')': two different MAC messages
    escaped_options = {"escape_early": "true"}
    request = SignRequest(f"https://media.example.com{path}", NOW + 300, attribution=ATTRIBUTION, issued_at=NOW)
    plain = AKAMAI.dialect.sign(request, AKAMAI.key).url
    escaped = AKAMAI.dialect.sign(replace(request, options=escaped_options), AKAMAI.key).url
    assert _reason("akamai", plain, {}) == "accepted" and _reason("akamai", escaped, escaped_options) == "accepted"
    assert _reason("akamai", escaped, {}) == "bad-signature"
    assert _reason("akamai", plain, escaped_options) == "bad-signature"


def test_akamai_a_profile_with_an_unknown_algorithm_verifies_nothing() -> None:
    with pytest.raises(InvalidInput, match="sha256, sha1 or md5"):
        AKAMAI.dialect.verify(Redemption(_sign("akamai", {}), NOW, options={"algorithm": "sha512"}), AKAMAI.key)


def test_media_cdn_refuses_an_hmac_made_with_the_other_hash() -> None:
    sha1 = _sign("media-cdn-hmac", {"hmac_hash": "sha1"})
    assert _reason("media-cdn-hmac", sha1, {"hmac_hash": "sha1"}) == "accepted"
    assert _reason("media-cdn-hmac", sha1, {}) == "bad-signature"
    assert _reason("media-cdn-hmac", _sign("media-cdn-hmac", {}), {"hmac_hash": "sha1"}) == "bad-signature"


@pytest.mark.parametrize("other", ["sha384", "sha512"])
def test_wowza_refuses_a_hash_made_with_another_algorithm(other: str) -> None:
    token = _sign("wowza", {"hash": other})
    assert _reason("wowza", token, {"hash": other}) == "accepted"
    assert _reason("wowza", token, {}) == "bad-signature-or-wrong-ip"
    assert _reason("wowza", _sign("wowza", {}), {"hash": other}) == "bad-signature-or-wrong-ip"
