"""gateway.strictjson: RFC 8259 JSON only, so two parsers cannot read one text two ways."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
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


# The duplicate-key check by counting colons (issue 18) against the pairs hook it stands in for: texts with
# repeated keys at any depth, colons in keys and values (raw and escaped), non-finite numbers, surrogates,
# over-long integers, and damage (a character dropped, added or swapped), each answered the same.
_KEYS = st.sampled_from(["a", "b", "a:", ":", "a\\u003ab", "\\u003A", "\\u0061", "", "é", "\\ud800", 'k\\"k'])
_SCALARS = st.sampled_from(
    ["1", "-0.5", "1e999", "NaN", "Infinity", "true", "null", '"x:y"', '":"', '"\\u003a"', '"\\\\u003a"', "9" * 40,
     '"\\ud83d\\ude00"', '"\\udc80"', "[]", "{}"]
)  # fmt: skip


def _json_text(pairs: object) -> str:
    if isinstance(pairs, str):
        return pairs
    if isinstance(pairs, tuple):  # an object: (key, value) members, repeats allowed
        return "{" + ", ".join(f'"{k}": {_json_text(v)}' for k, v in pairs) + "}"
    assert isinstance(pairs, list)
    return "[" + ",".join(_json_text(v) for v in pairs) + "]"


_TREES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(st.tuples(_KEYS, inner), max_size=4).map(tuple)
        | st.lists(st.tuples(_KEYS, inner), min_size=1, max_size=3).map(lambda m: tuple(m + m[:1]))
    ),  # a repeat
    max_leaves=12,
)


def _damaged(text: str, where: int, how: int, char: str) -> str:
    at = where % (len(text) + 1)
    return [text, text[:at] + text[at + 1 :], text[:at] + char + text[at:]][how % 3]


def _answer(read: object, text: str) -> object:
    try:
        return ("value", read(text))  # type: ignore[operator]
    except (StrictJSONError, ValueError, RecursionError) as exc:
        return ("refused", type(exc).__name__, str(exc))


def _with_the_pairs_hook(text: str) -> object:
    """``loads`` as it was: every object through the duplicate-key hook."""
    from gateway import strictjson

    value = strictjson._DECODER.decode(text)
    if strictjson._SURROGATE_ESCAPE.search(text) and strictjson._holds_lone_surrogate(value):
        raise StrictJSONError("a string holds an unpaired UTF-16 surrogate escape: not Unicode text")
    return value


@settings(max_examples=2000, deadline=None)
@given(_TREES, st.integers(0, 10**6), st.integers(0, 2), st.sampled_from([":", '"', ",", "}", "]", "\\", "a"]))
def test_counting_colons_refuses_exactly_what_the_pairs_hook_refused(tree: object, where: int, how: int,
                                                                     char: str) -> None:  # fmt: skip
    text = _damaged(_json_text(tree), where, how, char)
    expected = _answer(_with_the_pairs_hook, text)
    if expected[0] == "refused" and expected[1] != "StrictJSONError":  # loads words json's own errors
        expected = ("refused", "StrictJSONError", f"not valid JSON: {expected[2]}")
    assert _answer(loads, text) == expected


def test_a_repeated_key_is_refused_wherever_it_is() -> None:
    deep = '{"a": [{"b": {"c": 1, "d": "x:y", "c": 2}}]}'
    for text in ('{"a": 1, "a": 1}', '[{"k:": ":", "k:": ":"}]', deep, '{"a": {}, "a": {"b": 1}}'):
        with pytest.raises(StrictJSONError, match="duplicate key"):
            loads(text)


def test_a_batch_body_takes_the_counting_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import strictjson

    items = [{"media_id": f"m{i}", "rendition": "video", "client_ip": "2001:db8::1"} for i in range(100)]
    body = json.dumps({"items": items, "viewer": {"id": "alice", "workspaces": ["w1"]}})
    monkeypatch.setattr(strictjson, "_DECODER", None)  # the hooked decoder is not needed
    assert loads(body) == json.loads(body)
