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
