"""JSON as the gateway parses it: RFC 8259 only, so two parsers cannot read one text two ways.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity`` (a ``NaN``
expiry passes every comparison and never expires) and keeps the last of
duplicate keys while other parsers keep the first; ``1e999`` becomes infinity. Every JSON text the gateway
reads from outside — request bodies, tokens, policies, files — goes through
``loads``, which refuses all three.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec


class StrictJSONError(ValueError):
    """The text is not strict JSON; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"{text} does not fit a finite number")
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # the common case costs one C-level dict build
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise StrictJSONError(f"duplicate key {duplicate!r}")
    return result


# Built once: ``json.loads`` with hooks would build a new decoder on every call (about 2 µs).
_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_object
)
# The same without the duplicate-key hook: the C scanner builds each object itself, half the time for a batch.
_PLAIN_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_encode = msgspec.json.Encoder().encode


def _decode(text: str) -> Any:
    """``_DECODER.decode(text)``, with the duplicate-key check done by counting colons.

    A text with no ``\\u003a`` escape (the only other spelling of a colon in a string) has one colon per
    object member plus one per colon inside its strings. Parsed without the hook, a repeated key keeps one
    member and drops the other's key and value, so the value re-encoded (msgspec: one colon per member, every
    colon in a string as it is) has as many colons exactly when no key was repeated, and fewer otherwise.
    Anything else — a count that differs, any error, an escaped colon — is decided by ``_DECODER``, so every
    refusal, and its message, is the one it gives (tests/test_strictjson.py holds the two to the same answers).
    """
    if "\\u003" not in text:
        try:
            value = _PLAIN_DECODER.decode(text)
            if _encode(value).count(b":") == text.count(":"):
                return value
        except (ValueError, TypeError, OverflowError, RecursionError, msgspec.EncodeError):
            pass
    return _DECODER.decode(text)


# A \uD800-\uDFFF escape: the only way a lone surrogate (text no UTF-8 can carry) gets into a string.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str | bytes | bytearray) -> Any:
    """Parse strict JSON; raises StrictJSONError (a ValueError) for anything else."""
    try:
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8")  # RFC 8259 8.1: UTF-8 only (no BOM, no UTF-16); invalid bytes refused
        value = _decode(text)
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise StrictJSONError(f"not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(value):
        # RFC 8259 8.2 leaves it to the parser; such a string fails later, in a database or an encoder.
        raise StrictJSONError("a string holds an unpaired UTF-16 surrogate escape: not Unicode text")
    return value


def _holds_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
