"""Properties every dialect must have: sign -> verify round-trips, and any one-character change is refused."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import VerificationFailed
from gateway.signing.dialects.base import Redemption, SignRequest
from tests.dialect_fixtures import ATTRIBUTION, Setup, setups

SETUPS = setups()
NOW = 1_800_000_000
CLIENT = "203.0.113.7"
segment = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
ttls = st.integers(min_value=61, max_value=86_400)


def _sign(setup: Setup, path: str, ttl: int) -> str:
    request = SignRequest(
        url=f"https://cdn.example.com{path}",
        expires=NOW + ttl,
        ip=CLIENT if setup.needs_ip else None,
        prefix=path if setup.sign_prefix else None,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION,
        issued_at=NOW,
        options=setup.options,
    )
    return setup.dialect.sign(request, setup.key).url


def _accepts(setup: Setup, url: str, now: float = NOW + 30) -> bool:
    redemption = Redemption(url, now, CLIENT, options=setup.options)
    try:
        presented = setup.dialect.presented_key_id(redemption)
        if presented is not None and presented != setup.key.kid:
            return False
        setup.dialect.verify(redemption, setup.key)
    except VerificationFailed:
        return False
    return True


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
@settings(max_examples=40, deadline=None)
@given(path=paths, ttl=ttls)
def test_sign_then_verify_round_trips(setup: Setup, path: str, ttl: int) -> None:
    url = _sign(setup, path, ttl)
    assert _accepts(setup, url)
    assert not _accepts(setup, url, now=NOW + ttl + 120)  # and it expires


_REPLACEMENTS = string.ascii_letters + string.digits + "-_.~/%=&?"


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
@settings(max_examples=60, deadline=None)
@given(path=paths, ttl=ttls, position=st.integers(min_value=0), replacement=st.sampled_from(_REPLACEMENTS))
def test_any_single_character_change_is_refused(
    setup: Setup, path: str, ttl: int, position: int, replacement: str
) -> None:
    url = _sign(setup, path, ttl)
    # Formats that sign the path, not the host, are checked from the path on.
    start = 0 if setup.signs_host else len("https://cdn.example.com")
    index = start + position % (len(url) - start)
    if url[index] == replacement:
        replacement = "Z" if replacement != "Z" else "Y"
    mutated = url[:index] + replacement + url[index + 1 :]
    assert not _accepts(setup, mutated), f"accepted after changing position {index}: {mutated}"


def _neighbours(char: str) -> set[str]:
    """The other letter case, and the characters either side in the alphabet (base64 padding bits)."""
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_+/~"
    found = {char.swapcase()} if char.isalpha() else set()
    if char in alphabet:
        index = alphabet.index(char)
        found |= {alphabet[index - 1], alphabet[(index + 1) % len(alphabet)]}
    return found - {char}


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
def test_every_case_flip_and_neighbouring_character_is_refused(setup: Setup) -> None:
    """Exhaustive where the random search is thin: a letter's case (CloudFront's Hash-Algorithm) and the
    characters next to each one (a base64 digit whose padding bits change, as in WMSAuth)."""
    url = _sign(setup, "/v/abc/seg-1.ts", 300)
    start = 0 if setup.signs_host else len("https://cdn.example.com")
    accepted = [
        mutated
        for index in range(start, len(url))
        for other in _neighbours(url[index])
        if _accepts(setup, mutated := url[:index] + other + url[index + 1 :])
    ]
    assert accepted == []


# What each setup returns as Verified.issued_at when signed as the gateway signs (start = issue time
# where the format has a start): the signed issue or start time, or None where only expiry bounds a URL.
ISSUE_TIME_SIGNED = {
    "native": True,  # gw_iat
    "cloudfront-rsa": True,  # custom policy DateGreaterThan
    "cloudfront-ecdsa-sha256": True,
    "google-cdn": False,
    "media-cdn-ed25519": True,  # Starts
    "media-cdn-hmac": True,
    "akamai": True,  # st
    "nginx": False,
    "wowza": True,  # <prefix>starttime
    "nimble": True,  # server_time
    "bunny": False,
    "bunny-directory": False,
}


def test_the_issue_time_table_names_every_setup() -> None:
    assert set(ISSUE_TIME_SIGNED) == {s.name for s in SETUPS}


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
@settings(max_examples=15, deadline=None)
@given(path=paths, ttl=ttls, age=st.integers(min_value=0, max_value=60))
def test_the_signed_issue_time_round_trips_exactly_or_is_none(setup: Setup, path: str, ttl: int, age: int) -> None:
    issued_at = NOW - age
    capabilities = setup.dialect.capabilities
    request = SignRequest(
        url=f"https://cdn.example.com{path}",
        expires=NOW + ttl,
        starts=issued_at if capabilities.starts and setup.name != "native" else None,  # as issuance does
        ip=CLIENT if setup.needs_ip else None,
        prefix=path if setup.sign_prefix else None,
        attribution=None if capabilities.key_id_field else ATTRIBUTION,
        issued_at=issued_at,
        options=setup.options,
    )
    url = setup.dialect.sign(request, setup.key).url
    verified = setup.dialect.verify(Redemption(url, NOW + 30, CLIENT, options=setup.options), setup.key)
    assert verified.issued_at == (issued_at if ISSUE_TIME_SIGNED[setup.name] else None)


@pytest.mark.parametrize("setup", [s for s in SETUPS if s.dialect.name == "cloudfront"], ids=lambda s: s.name)
def test_a_cloudfront_canned_policy_has_no_issue_time(setup: Setup) -> None:
    url = _sign(setup, "/v/abc/master.m3u8", 300)
    assert "Expires=" in url and "Policy=" not in url
    assert setup.dialect.verify(Redemption(url, NOW + 30, CLIENT, options=setup.options), setup.key).issued_at is None
