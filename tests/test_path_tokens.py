"""Where a native path token sits in a path (``gateway.signing.path_tokens``): one spelling, exact refusals."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidInput, VerificationFailed
from gateway.signing import path_tokens


@pytest.mark.parametrize(("path", "found"), [
    ("/_t/TOKEN/v/x.ts", ("TOKEN", "/v/x.ts")), ("/_t/T/", ("T", "/")), ("/_t/T/_tx/y", ("T", "/_tx/y")),
    ("/v/x.ts", None), ("/_T/TOKEN/v/x.ts", None), ("/x/_t/T/v", None), ("/_tTOKEN/v", None),
])  # fmt: skip
def test_split_finds_the_token_segment_and_the_path_after_it(path: str, found: tuple[str, str] | None) -> None:
    assert path_tokens.split(path) == found


@pytest.mark.parametrize("path", ["/_t//v/x.ts", "/_t/", "/_t/TOKEN", "/_t/A/_t/B/v/x.ts", "/_t/A/_t/"])
def test_split_refuses_a_missing_token_path_or_a_second_token(path: str) -> None:
    with pytest.raises(VerificationFailed) as refused:
        path_tokens.split(path)
    assert refused.value.reason == "malformed"


def test_resource_path_join_and_reserved_paths() -> None:
    assert path_tokens.resource_path("/_t/T/v/x.ts") == "/v/x.ts"
    assert path_tokens.resource_path("/v/x.ts") == "/v/x.ts"
    assert path_tokens.join("T", "/v/x.ts") == "/_t/T/v/x.ts"
    assert path_tokens.check_not_reserved("/v/_t/x") == "/v/_t/x"
    assert path_tokens.check_not_reserved("/_tv/x") == "/_tv/x"
    for reserved in ("/_t/x", "/_t", "/_t/"):
        with pytest.raises(InvalidInput, match="reserved for path tokens"):
            path_tokens.check_not_reserved(reserved)
