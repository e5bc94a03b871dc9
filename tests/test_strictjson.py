"""gateway.strictjson: RFC 8259 JSON only, so two parsers cannot read one text two ways."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.strictjson import StrictJSONError, loads


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"exp": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ("[1e999]", "1e999 does not fit a finite number"),
        ("[-1e999]", "-1e999 does not fit a finite number"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": {"b": 1, "c": 2, "b": 3}}', "duplicate key 'b'"),
        ('{"a": 1, "\\u0061": 2}', "duplicate key 'a'"),
        ('["\\ud800"]', "a string holds an unpaired UTF-16 surrogate escape: not Unicode text"),
        ('{"\\uDFFF": 1}', "a string holds an unpaired UTF-16 surrogate escape: not Unicode text"),
        ('{"a": [["x\\udc80y"]]}', "a string holds an unpaired UTF-16 surrogate escape: not Unicode text"),
        ('["\\ude00\\ud83d"]', "a string holds an unpaired UTF-16 surrogate escape: not Unicode text"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply"),
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "1e999",
        "-1e999",
        "dup",
        "dup-nested",
        "dup-escaped",
        "lone-high",
        "lone-key",
        "lone-nested",
        "reversed-pair",
        "deep",
    ],
)
def test_what_other_parsers_read_differently_is_refused(text: str, message: str) -> None:
    with pytest.raises(StrictJSONError) as refused:
        loads(text)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "text", [b"\xff", "1" * 5000, "{", "[1] x", b'{"a": "\xed\xa0\x80"}', b"\xef\xbb\xbf{}", "[1]".encode("utf-16")]
)
def test_malformed_text_is_a_strict_json_error(text: str | bytes) -> None:
    with pytest.raises(StrictJSONError, match=r"^not valid JSON: "):
        loads(text)


def test_a_surrogate_pair_spells_one_character() -> None:
    assert loads('["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]


def test_bytes_are_utf8() -> None:
    assert loads(b'{"a": [1, 2.5, "\xc3\xa9"]}') == {"a": [1, 2.5, "é"]}
    assert loads(bytearray(b"[true, null]")) == [True, None]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
)


@given(_JSON)
def test_strict_json_reads_whatever_json_writes(value: object) -> None:
    assert loads(json.dumps(value)) == value
