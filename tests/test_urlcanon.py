from __future__ import annotations

import pytest

from gateway.errors import InvalidInput
from gateway.signing.paths import canonical_path, canonical_prefix, canonical_query, split_query


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/v/abc/x.ts", "/v/abc/x.ts"),
        ("/v/a%7eb/%41.ts", "/v/a~b/A.ts"),
        ("/v/caf%c3%a9", "/v/caf%C3%A9"),
        ("/v/café", "/v/caf%C3%A9"),
        ("/v/a b", "/v/a%20b"),
        ("/v/dir/", "/v/dir/"),
        ("/", "/"),
    ],
)
def test_canonical_path(raw: str, canonical: str) -> None:
    assert canonical_path(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "v/abc",
        "/v/../x",
        "/v/./x",
        "/v/%2e%2E/x",
        "/v/a%2fb",
        "/v/a%5cb",
        "/v/a\\b",
        "/v/%00",
        "/v//x",
        "/v/%zz",
        "/v/%4",
    ],
)
def test_unsafe_paths_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        canonical_path(raw)


def test_prefix_must_end_with_slash() -> None:
    assert canonical_prefix("/v/abc/") == "/v/abc/"
    with pytest.raises(InvalidInput):
        canonical_prefix("/v/abc")


def test_query_is_sorted_and_plus_is_literal() -> None:
    pairs = split_query("b=2&a=x+y&a=%41&&c")
    assert canonical_query(pairs) == "a=A&a=x+y&b=2&c="
