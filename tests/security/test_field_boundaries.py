"""Fields that run together in a MAC'd message cannot trade characters (red team F3).

Bunny's HMAC covers ``path + expires + ...`` with no separator: a token for ``/s/ep11`` expiring at
E also verifies for ``/s/ep1`` expiring at ``1E`` (about 300 years later). The gateway never signs
further ahead than ``signing.max_ttl``, so it refuses any expiry beyond it, whatever the format.
"""

from __future__ import annotations

from gateway.signing.dialects.base import SignRequest
from tests.dialect_fixtures import ATTRIBUTION, setups
from tests.security.test_path_escape import _reason

_BUNNY = {s.name: s for s in setups()}["bunny"]


def _signed(path: str, expires: int) -> str:
    request = SignRequest(url=f"https://cdn.example.com{path}", expires=expires, issued_at=1_800_000_000,
                          attribution=ATTRIBUTION, options=_BUNNY.options)  # fmt: skip
    return _BUNNY.dialect.sign(request, _BUNNY.key).url


async def test_a_digit_moved_from_the_path_into_the_expiry_is_refused() -> None:
    url = _signed("/s/ep11", 1_800_000_300)
    assert await _reason(_BUNNY, url) == "accepted"
    shifted = url.replace("/s/ep11?", "/s/ep1?").replace("expires=1800000300", "expires=11800000300")
    assert await _reason(_BUNNY, shifted) == "expiry-too-far"


async def test_a_digit_moved_from_the_expiry_into_the_path_is_expired() -> None:
    url = _signed("/s/ep1", 1_800_000_300)
    shifted = url.replace("/s/ep1?", "/s/ep11?").replace("expires=1800000300", "expires=800000300")
    assert await _reason(_BUNNY, shifted) == "expired"
