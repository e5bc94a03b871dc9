"""The Merkle log's leaf for an audit record: its layout and the canonical JSON of the record's body.

A leaf (the RFC 6962 leaf input) is a header of what survives pruning — position, time, retention class and
event — and the SHA-256 of the record's body (``body_sha256``, stored beside it). A record moved to another
position no longer matches its leaf, and a pruned record's leaf can still be recomputed from the header and
body hash it keeps, so its time and class (which decide when it may be pruned) stay covered::

    0x02 ‖ seq (uint64) ‖ time (IEEE 754 binary64) ‖ len ‖ retention ‖ len ‖ event ‖ SHA-256(body)

integers big-endian, each ``len`` a uint16 byte count of the UTF-8 text after it; the body is the record's
canonical JSON without ``seq`` (sorted keys, no spaces, ASCII escapes). 0x02 names this layout: the first,
pre-release layout hashed the JSON with ``seq`` whole, and kept nothing a pruned record could be checked with.
Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import msgspec

_dump = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_fast_dump = msgspec.json.Encoder(order="sorted").encode


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """The leaf body's bytes: ``json`` with sorted keys, no spaces and ASCII escapes, as the leaf format says.

    msgspec writes the same bytes about twice as fast when the text is printable ASCII, every key a string and
    every number finite (it writes NaN as null, Python as NaN); anything else, or anything msgspec refuses,
    is encoded by ``json`` itself. tests/test_audit_record.py proves the two agree over arbitrary records.
    """
    fast = fast_bytes(data)
    return fast if fast is not None else json_text(data)


def json_text(data: Mapping[str, Any]) -> bytes:
    """The canonical JSON as ``json`` writes it (what the format is defined by)."""
    return _dump(data).encode("utf-8")


def fast_bytes(data: Mapping[str, Any]) -> bytes | None:
    """msgspec's encoding when it is byte-identical to ``json``'s, else None."""
    if not _plain_values(data):
        return None
    try:
        out = _fast_dump(data)
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
        return None
    return out if _same_in_json(out) else None


def _same_in_json(out: bytes) -> bool:
    """Both spell printable ASCII alike. msgspec escapes control characters (a backslash: json may spell the
    escape otherwise) and writes DEL and non-ASCII as they are, where json escapes them. ``find``, not ``in``:
    ``bytes.__contains__`` first tries its argument as an integer, and formats and drops a TypeError per test."""
    return out.isascii() and out.find(b"\\") < 0 and out.find(b"\x7f") < 0


def fast_bytes_with(data: Mapping[str, Any], detail: bytes) -> bytes | None:
    """``fast_bytes(data)`` where ``detail`` is already ``fast_bytes(data["detail"])``: written in as it is."""
    if not _plain_besides_detail(data):
        return None
    try:
        out = _fast_dump({**data, "detail": msgspec.Raw(detail)})
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
        return None
    return out if _same_in_json(out) else None


_SIMPLE = frozenset({str, int, bool, type(None)})


def _plain_values(value: object) -> bool:
    """Only what both encoders write alike: str keys (json sorts int keys before turning them into text),
    finite floats without an exponent (msgspec writes NaN as null, 1e16 and 1e-7 where json writes 1e+16 and
    1e-07), and no type json refuses but msgspec encodes (bytes, say). Written for speed: a record has ~20."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str or (type(item) not in _SIMPLE and not _plain_values(item)):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain_values(item) for item in value)  # type: ignore[attr-defined]
    if isinstance(value, float):
        return _plain_float(value)
    return isinstance(value, str | int)  # their subclasses (a StrEnum): both write the plain value


def _plain_float(value: float) -> bool:
    """Finite and written without an exponent. ``repr`` uses one from 1e16 up and below 1e-4; between 1 and
    1e15 it never does (a timestamp, the usual float here), without spelling the number to find out."""
    if 1.0 <= abs(value) < 1e15:
        return True
    return math.isfinite(value) and "e" not in float.__repr__(value)


_RECORD_KINDS = _SIMPLE | {float, dict}


def _plain_besides_detail(data: Mapping[str, Any]) -> bool:
    """``_plain_values`` of a record's ``to_dict`` but its ``detail``, the usual case at C speed (2.6 -> 1.0 µs).

    ``to_dict`` makes ``time`` a float and ``detail`` a dict: when they are the only float and the only dict, and
    every other value is exactly a str, int, bool or None, only ``time`` needs looking into. Anything else (a
    float or a dict elsewhere, a str subclass) takes the general walk.
    """
    if _usual_shape(tuple(data), tuple(map(type, data.values()))):
        return _plain_values(data["time"])
    return _plain_values({name: value for name, value in data.items() if name != "detail"})


@functools.lru_cache(maxsize=64)
def _usual_shape(names: tuple[str, ...], kinds: tuple[type, ...]) -> bool:
    """Whether a record's dict of these names and value types is the usual case of ``_plain_besides_detail``:
    its only float is ``time``, its only dict ``detail``, every other value exactly a str, int, bool or None.
    A function of the names and types alone, so remembered: records come in a handful of shapes."""
    found = dict(zip(names, kinds, strict=True))
    return (
        kinds.count(float) == 1
        and kinds.count(dict) == 1
        and _RECORD_KINDS.issuperset(kinds)
        and found.get("time") is float
        and found.get("detail") is dict
    )


LEAF_VERSION = b"\x02"


def leaf_after_seq(time: float, retention: str, event: str, body_sha256: bytes) -> bytes:
    """The part of a leaf after its position: the header a pruned record keeps, then its body hash.

    Raises ValueError, TypeError or OverflowError for values no record has (a tampered row).
    """
    return struct.pack(">d", float(time)) + _class_and_event(retention, event) + body_sha256


@functools.lru_cache(maxsize=256)
def _class_and_event(retention: str, event: str) -> bytes:
    """The leaf header's two counted texts: a handful of pairs, spelled once each, not per record."""
    return _counted(retention) + _counted(event)


def leaf_at(seq: int, after_seq: bytes) -> bytes:
    return LEAF_VERSION + seq.to_bytes(8, "big") + after_seq


def leaf_input(seq: int, time: float, retention: str, event: str, body_sha256: bytes) -> bytes:
    """The leaf of a record from what survives its pruning (``leaf_bytes`` of the record it was)."""
    if len(body_sha256) != hashlib.sha256().digest_size:
        raise ValueError("a body hash is 32 bytes")
    return leaf_at(seq, leaf_after_seq(time, retention, event, body_sha256))


def _counted(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data
