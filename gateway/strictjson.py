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
from typing import Any


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


def loads(text: str | bytes | bytearray) -> Any:
    """Parse strict JSON; raises StrictJSONError (a ValueError) for anything else."""
    try:
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8")  # RFC 8259 8.1: UTF-8 only (no BOM, no UTF-16); invalid bytes refused
        return _DECODER.decode(text)
    except StrictJSONError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise StrictJSONError(f"not valid JSON: {exc}") from None
