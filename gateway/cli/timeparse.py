"""Durations (``90s``, ``15m``, ``2h``, ``7d``) and instants (epoch or ISO 8601)."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime

from gateway.errors import InvalidInput

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> int:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 7d)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def instant(text: str) -> float:
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"not a time: {text!r} (use epoch seconds or ISO 8601)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def instant_argument(text: str) -> float:
    """``instant`` as an argparse type (``--now``): a usage error, never NaN or infinity.

    ``float`` took ``nan``, with which every comparison is false: an expired URL was judged still good.
    """
    try:
        return instant(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
