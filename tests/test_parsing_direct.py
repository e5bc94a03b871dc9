"""``POST /v1/sign``'s body read in one step (``gateway.web.parsing._direct``) answers as the two strict steps do.

Every body, valid or not, gets the same model or the same refusal (status and message) whether or not the
one-step path is tried: over arbitrary bodies built from the model's fields, spelt with random spacing, and
over the spellings strict JSON refuses and msgspec might not (a repeated key, NaN, 1e999, a lone surrogate, an
escaped colon, control characters, a BOM, invalid UTF-8, big and fractional numbers, unknown fields).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInput
from gateway.web import parsing, schemas

_TEXT = st.text(alphabet=st.sampled_from(list('am1:._-@ /\\"\u00e9\x7f\x01\u2028\U0001f600')), max_size=8)
_VALUES = st.one_of(
    _TEXT, st.sampled_from(["m1", "video", "thumbnail", "path", "prefix", "query", "native", "203.0.113.7",
                            "2001:db8::1", "abc.def.ghi", "", "60", "true"]),
    st.integers(-(2**70), 2**70), st.sampled_from([1, 60, 604800, 604801, 0]), st.floats(allow_nan=True),
    st.none(), st.booleans(), st.lists(st.sampled_from(["w1", "w:2", 3]), max_size=3),
)  # fmt: skip
_FIELDS = ["media_id", "rendition", "ttl", "client_ip", "scope", "form", "profile", "viewer_token", "viewer",
           "viewer_ip", "unknown"]  # fmt: skip
_VIEWER = st.fixed_dictionaries({"id": _VALUES}, optional={"workspaces": _VALUES, "extra": _VALUES})
_SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """A JSON object text of the model's fields (some repeated), spelt with random spacing and escapes."""
    members = []
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=7)):
        value = draw(_VIEWER if name == "viewer" and draw(st.booleans()) else _VALUES)
        members.append((name, value))
    if draw(st.booleans()):
        members = [("media_id", "m1"), ("rendition", "video"), *members]
    space = draw(_SPACE)
    parts = [f"{space}{json.dumps(k, ensure_ascii=draw(st.booleans()))}{space}:{space}"
             f"{json.dumps(v, ensure_ascii=draw(st.booleans()))}" for k, v in members]  # fmt: skip
    text = "{" + ",".join(parts) + space + "}"
    if draw(st.booleans()):
        text = text.replace(":", "\\u003a", 1)  # an escaped colon: inside a string it reads the same
    return text.encode("utf-8", "surrogatepass")


def _answer(raw: bytes, direct: bool, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        if not direct:
            patch.setattr(parsing, "_DIRECT", frozenset())
        try:
            return parsing.decode(raw, schemas.SignRequest)
        except InvalidInput as refused:
            return ("refused", refused.status, refused.message)


@settings(max_examples=3000, deadline=None)
@given(_bodies())
@example(b'{"media_id":"m1","rendition":"video","media_id":"m2"}')  # a repeated key: msgspec keeps the last
@example(b'{"media_id":"m1","rendition":"video","viewer":{"id":"a","id":"b"}}')
@example(b'{"media_id":"m1","rendition":"video","ttl":1e999}')
@example(b'{"media_id":"m1","rendition":"video","ttl":NaN}')
@example(b'{"media_id":"m1","rendition":"video","ttl":60.0}')
@example(b'{"media_id":"m1","rendition":"video","ttl":"60"}')  # strict: no coercion
@example(b'{"media_id":"\\ud800","rendition":"video"}')
@example(b'{"media_id":"m\\u003a1","rendition":"video"}')
@example(b'{"media_id":"m1","rendition":"video","media_id":"m\\u003a1"}')  # repeated, colons counting even
@example(b'{"media_id":"m1\x01","rendition":"video"}')
@example(b'\xef\xbb\xbf{"media_id":"m1","rendition":"video"}')
@example(b'{"media_id":"m\xff","rendition":"video"}')
@example(b'{"media_id":"m1","rendition":"video","ttl":' + b"9" * 5000 + b"}")
@example(b'{"media_id":"m1","rendition":"video","client_ip":"2001:db8::1","viewer":{"id":"a:b"}}')
@example(b'{"media_id":"m1","rendition":"video"}\n')
@example(b'[{"media_id":"m1","rendition":"video"}]')
@example(b"")
@example(b'{"media_id":"m1","rendition":"video","x":' + b"[" * 3000 + b"]" * 3000 + b"}")  # msgspec: RecursionError
@example(b'{"media_id":"m1","rendition":"video","x":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}")
def test_one_step_and_two_steps_give_the_same_answer(raw: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _answer(raw, True, monkeypatch) == _answer(raw, False, monkeypatch)


def test_a_valid_body_takes_the_one_step_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shortcut is taken (else the test above proves nothing about it), and not for a repeated key."""
    taken: list[object] = []
    direct = parsing._direct

    def spy(raw: bytes, model: type[object]) -> object:
        taken.append(found := direct(raw, model))
        return found

    monkeypatch.setattr(parsing, "_direct", spy)
    body = {"media_id": "m1", "rendition": "video", "ttl": 60, "viewer": {"id": "alice", "workspaces": ["w1"]}}
    assert parsing.decode(json.dumps(body).encode(), schemas.SignRequest).viewer is not None
    with pytest.raises(InvalidInput, match="duplicate key 'media_id'"):
        parsing.decode(b'{"media_id":"m1","rendition":"video","media_id":"m2"}', schemas.SignRequest)
    assert taken[0] is not None and taken[1] is None


def test_a_body_nested_too_deeply_is_a_400_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """Red team round 10: msgspec raises RecursionError past the interpreter's depth; the one-step path let it out
    (a 500 and a traceback per request) where the two steps refuse: the same refusal either way now."""
    raw = b'{"media_id":"m1","rendition":"video","x":' + b"[" * 1200 + b"]" * 1200 + b"}"
    with pytest.raises(InvalidInput, match="nested too deeply") as refused:
        parsing.decode(raw, schemas.SignRequest)
    assert refused.value.status == 400
