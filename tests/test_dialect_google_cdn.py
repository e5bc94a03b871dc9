"""Google Cloud CDN: the signed parameters are found in the query, whatever the path spells."""

from __future__ import annotations

import pytest

from gateway.signing.dialects.base import Redemption, SignRequest
from tests.dialect_fixtures import setups

[GOOGLE] = [s for s in setups() if s.name == "google-cdn"]
NOW = 1_800_000_000


@pytest.mark.parametrize("directory", ["/v/URLPrefix=x/", "/v/a&URLPrefix=b/"])
def test_a_prefix_signature_verifies_when_the_path_spells_urlprefix(directory: str) -> None:
    request = SignRequest(f"https://cdn.example.com{directory}a.ts", NOW + 300, prefix=directory)
    signed = GOOGLE.dialect.sign(request, GOOGLE.key)
    verified = GOOGLE.dialect.verify(Redemption(signed.url, NOW), GOOGLE.key)
    assert (verified.key_id, verified.expires, verified.issued_at) == ("my-key", NOW + 300, None)


def test_a_cookie_verifies_when_the_path_spells_signature() -> None:
    directory = "/v/Signature=1/"
    request = SignRequest(f"https://cdn.example.com{directory}a.ts", NOW + 300, prefix=directory)
    cookies = GOOGLE.dialect.sign(request, GOOGLE.key).cookies
    redemption = Redemption(f"https://cdn.example.com{directory}b.ts", NOW, cookies=cookies)
    assert GOOGLE.dialect.verify(redemption, GOOGLE.key).key_id == "my-key"
