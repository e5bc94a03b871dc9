"""Canonical paths (docs/paths.md): one spelling per path; the check refuses, it never normalises."""

from __future__ import annotations

import random

import pytest

from gateway.errors import InvalidInput
from gateway.signing.paths import (
    canonical_path,
    canonical_prefix,
    canonical_query,
    is_canonical_path,
    normalised_spelling,
    origin_and_path,
    path_problem,
    path_within,
    split_query,
    strip_authority,
    url_path,
)


@pytest.mark.parametrize(
    "path",
    ["/", "/v/abc/x.ts", "/v/dir/", "/v/a~b/A.ts", "/v/caf%C3%A9", "/v/a%20b", "/v/a%3Fb", "/v/mp4:a.mp4",
     "/v/a!$&'()*+,=@b", "/v/a%3F%23%5B%5D", "/v/file.name.ts", "/v/...x", "/v/x..", "/v/%E6%97%A5%E6%9C%AC",
     "/v/caf%C3%A9-1.mp4", "/v/a%E2%80%94b", "/v/a%C2%B7b", "/v/a%7B%7D"],
)  # fmt: skip
def test_canonical_paths_pass(path: str) -> None:
    assert path_problem(path) is None
    assert is_canonical_path(path) is True
    assert canonical_path(path) == path


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("v/abc", "must start with '/'"),
        ("/v/../x", "dot segments"),
        ("/v/./x", "dot segments"),
        ("/v/..", "dot segments"),
        ("/v/.../x", "dot segments"),
        ("/v/..%20/x", "dot segments"),
        ("/v/.%CC%81/x", "dot segments"),  # a dot with a combining mark
        ("/v/%2E%2E/x", "second spelling of '.'"),
        ("/v/%2e%2e/x", "upper-case hex"),
        ("/v/%252e%252e/x", "%25"),
        ("/v/a%2Fb", "%2F"),
        ("/v/a%5Cb", "%5C"),
        ("/v/a%3Bb", "%3B"),
        ("/v/%00", "%00"),
        ("/v/a%7Fb", "%7F (an encoded '/', '\\', ';', '%' or control byte) is not allowed"),
        ("/v/a%1Fb", "%1F (an encoded"),
        ("/../v/x", "dot segments"),  # the first segment is checked like any other
        ("/%2E/v/x", "second spelling of '.'"),
        ("//v/x", "empty segments"),
        ("/v/%0D%0A", "%0D"),
        ("/v/a\\b", "'\\\\' is not allowed"),
        ("/v/..;/x", "';' is not allowed"),
        ("/v/a;jsessionid=1", "';' is not allowed"),
        ("/v//x", "empty segments"),
        ("/v/%zz", "malformed percent-escape"),
        ("/v/%4", "malformed percent-escape"),
        ("/v/a b", "' ' must be percent-encoded"),
        ("/v/a#b", "'#' must be percent-encoded"),
        ("/v/café", "raw non-ASCII"),
        ("/v/%7E", "second spelling of '~'"),
        ("/v/%41", "second spelling of 'A'"),
        # One file, one spelling: nginx and S3 decode these before they find the file.
        ("/t/s%2C1.jpg", "%2C is a second spelling of ','"),
        ("/v/a%3Ab", "%3A is a second spelling of ':'"),
        ("/v/%40x", "%40 is a second spelling of '@'"),
        ("/v/a%21%24%26%27%28%29%2A%2B%3D", "%21 is a second spelling of '!'"),
        ("/v/%C0%AE%C0%AE/x", "not well-formed UTF-8"),  # overlong '..'
        ("/v/%E0%80%AE/x", "not well-formed UTF-8"),  # overlong '.', three bytes
        ("/v/%ED%A0%80", "not well-formed UTF-8"),  # a surrogate
        ("/v/%FF", "not well-formed UTF-8"),
        ("/v/%EF%BC%8E%EF%BC%8E/x", "U+FF0E"),  # fullwidth full stop, NFKC '.'
        ("/v/%E2%80%A5/x", "U+2025"),  # two-dot leader, NFKC '..'
        ("/v/%E2%80%A4/x", "U+2024"),  # one-dot leader
        ("/v/a%EF%BC%8Fb", "U+FF0F"),  # fullwidth solidus
        ("/v/a%EF%BC%BCb", "U+FF3C"),  # fullwidth reverse solidus
        ("/v/a%E2%88%95b", "U+2215"),  # division slash (a look-alike NFKC keeps)
        ("/v/a%E2%80%AEb", "U+202E"),  # right-to-left override
        ("/v/a%C2%85b", "U+0085"),  # next line (C1 control)
        ("/v/a%E2%80%A8b", "U+2028"),  # line separator
        ("/v/a%C2%A0b", "U+00A0"),  # no-break space, NFKC ' '
    ],
)
def test_non_canonical_paths_are_refused_with_the_reason(path: str, problem: str) -> None:
    found = path_problem(path)
    assert found is not None and problem in found, found
    assert not is_canonical_path(path)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/v/a%7eb/%41.ts", "/v/a~b/A.ts"),
        ("/v/caf%c3%a9", "/v/caf%C3%A9"),
        ("/v/café", "/v/caf%C3%A9"),
        ("/v/a b", "/v/a%20b"),
        # A character a path may hold literally has one spelling: every origin decodes its escape (docs/paths.md)
        ("/v/a%21%2C", "/v/a!,"),
        ("/t/s%2C1.jpg", "/t/s,1.jpg"),
        ("/v/%24%26%27%28%29%2A%2B%3D%3A%40", "/v/$&'()*+=:@"),
        ("/v/a%3f%23", "/v/a%3F%23"),  # '?' and '#' may not travel literally: their escapes stay
    ],
)
def test_media_paths_are_respelled_then_checked(raw: str, canonical: str) -> None:
    assert canonical_path(raw) == canonical


@pytest.mark.parametrize(
    "raw", ["/v/%2e%2E/x", "/v/a;b", "/v/a%2fb", "/v/../x", "/v//x", "/v/%25", "/v/\uff0e\uff0e/x"]
)
def test_respelling_never_rescues_an_unsafe_media_path(raw: str) -> None:
    with pytest.raises(InvalidInput, match="is not allowed"):
        canonical_path(raw)


def test_prefix_must_end_with_slash() -> None:
    assert canonical_prefix("/v/abc/") == "/v/abc/"
    with pytest.raises(InvalidInput):
        canonical_prefix("/v/abc")


def test_path_within_is_a_directory_or_exactly_one_path() -> None:
    assert path_within("/v/abc/x.ts", "/v/abc/")
    assert not path_within("/v/abcd/x.ts", "/v/abc/")
    assert path_within("/v/abc", "/v/abc")
    assert not path_within("/v/abcd", "/v/abc")


def test_url_path_keeps_what_a_fragment_would_hide() -> None:
    assert url_path("https://h/v/a.ts?x=1") == "/v/a.ts"
    assert url_path("/v/a.ts#/../b?x") == "/v/a.ts#/../b"
    assert url_path("https://h?x=/v/a") == ""
    assert strip_authority("http://[::1/v/a?q") == "/v/a?q"  # unterminated IPv6 host: no exception
    assert strip_authority("/v/a") == "/v/a"


def test_query_is_sorted_and_plus_is_literal() -> None:
    pairs = split_query("b=2&a=x+y&a=%41&&c")
    assert canonical_query(pairs) == "a=A&a=x+y&b=2&c="


def test_a_malformed_escape_in_the_query_is_refused() -> None:
    for value in ("%zz", "%4", "a%"):
        with pytest.raises(InvalidInput, match=r"^malformed percent-escape in URL$"):
            canonical_query([("q", value)])


def test_query_escapes_are_read_three_characters_at_a_time() -> None:
    assert canonical_query([("q", "%41b%2fc%7e")]) == "q=Ab%2Fc~"
    assert canonical_query([("n\u00e9", "x y")]) == "n%C3%A9=x%20y"


@pytest.mark.parametrize("raw", ["/v/a\ud800", "/v/\udfffb", "/v/caf\u00e9\udc80"])
def test_a_media_path_holding_lone_surrogates_is_refused_not_a_crash(raw: str) -> None:
    """Lone surrogates (bytes a surrogateescape decoding kept) are no text: refused before respelling."""
    with pytest.raises(InvalidInput, match=r"is not allowed: it holds a byte that is no UTF-8 text$"):
        canonical_path(raw)


def test_origin_and_path_splits_an_absolute_url_and_leaves_anything_else_whole() -> None:
    assert origin_and_path("https://cdn.example:8443/v/a.ts?x=1&y=2") == ("https://cdn.example:8443", "/v/a.ts")
    assert origin_and_path("https://cdn.example/v/a.ts?x=1", keep_query=True) == ("https://cdn.example", "/v/a.ts?x=1")
    assert origin_and_path("/v/a.ts?x=1") == ("", "/v/a.ts")
    assert origin_and_path("/v/a.ts?x=1", keep_query=True) == ("", "/v/a.ts?x=1")


@pytest.mark.parametrize(("path", "problem"), [
    ("/v/%C3%A9/", None), ("/v/%C3%A9/x/", None), ("/%C3%A9/", None), ("/v/a%20b/", None),
    ("/v/a b", "' ' must be percent-encoded"), ("/v/a<b", "'<' must be percent-encoded"),
    ("/v/a%zz", "a malformed percent-escape"), ("/v/a%c3%a9", "percent-escapes are written with upper-case hex"),
    ("/v/a;b", "';' is not allowed in a URL path"), ("/v/%C3%A9//x", "empty segments ('//') are not allowed"),
    ("/v/%C3%A9/./", "dot segments ('.', '..') are not allowed in any spelling"),
])  # fmt: skip
def test_the_slow_path_s_exact_verdicts(path: str, problem: str | None) -> None:
    """Paths the plain-path fast path does not take: a trailing '/' is no empty segment, and each refusal names
    its first problem (the character-by-character check starts at the leading '/', which is fine)."""
    assert path_problem(path) == problem


@pytest.mark.parametrize("path", ["/v/%EF%AC%81/", "/v/%EF%BC%A1", "/v/%C2%B2", "/v/%CC%81/", "/v/a%CC%81/"])
def test_letters_digits_and_marks_that_fold_to_no_punctuation_are_allowed(path: str) -> None:
    """A ligature, a full-width letter or a superscript digit folds to ASCII letters or digits (not punctuation a
    parser could split on); a lone combining mark is no dot segment."""
    assert path_problem(path) is None


@pytest.mark.parametrize(("path", "problem"), [
    ("/v/%20a b", "' ' must be percent-encoded"), ("/v/%C3%A9 x", "' ' must be percent-encoded"),
    ("/v/.%20/", "dot segments ('.', '..') are not allowed in any spelling"),
    ("/v/%20./x", "dot segments ('.', '..') are not allowed in any spelling"),
])  # fmt: skip
def test_a_valid_escape_before_a_problem_does_not_hide_it(path: str, problem: str) -> None:
    assert path_problem(path) == problem


@pytest.mark.parametrize(("path", "prefix", "within"), [
    ("/v/abc", "/v/abc", True), ("/v/abc/x", "/v/abc", True), ("/v/ab", "/v/abc", False), ("/v/abcd", "/v/abc", False),
    ("/v/a", "/v/abc", False), ("/v/abc/x", "/v/abc/", True), ("/v/abc", "/v/abc/", False),
    ("/x/v/abc", "/v/abc", False),
])  # fmt: skip
def test_path_within_reads_a_prefix_at_a_segment_boundary(path: str, prefix: str, within: bool) -> None:
    assert path_within(path, prefix) is within


def _respelled_then_checked(path: str) -> str | None:
    """``canonical_path`` without its plain-path shortcut: respell, then check (None: refused)."""
    spelled = normalised_spelling(path)
    return spelled if path_problem(spelled) is None else None


def _canonical_or_none(path: str) -> str | None:
    try:
        return canonical_path(path)
    except InvalidInput:
        return None


def test_the_plain_path_shortcut_agrees_with_respelling_then_checking() -> None:
    """Issuance skips the respelling for plain paths (issue 18): on every path the answer is the same."""
    alphabet = "/a.~-_!$&'()*+,=:@%2F ;\\?#é"
    rng = random.Random(18)
    paths = ["/", "//", "/a//b", "/a/./b", "/a/../b", "/..", "/.", "/a/", "/a/..", "/a/ . /b", "a/b", ""]
    paths += ["/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(5000)]
    for path in paths:
        assert _canonical_or_none(path) == _respelled_then_checked(path), path
