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
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate key {key!r}")
        result[key] = value
    return result


def loads(text: str | bytes | bytearray) -> Any:
    """Parse strict JSON; raises StrictJSONError (a ValueError) for anything else."""
    try:
        return json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_object
        )
    except StrictJSONError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise StrictJSONError(f"not valid JSON: {exc}") from None
