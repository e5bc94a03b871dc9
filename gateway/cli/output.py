"""Printing results (human-readable lines, or ``--json`` for scripts) and writing owner-only files.

Every human-readable line goes through ``printable``: values come from the
database, from HTTP requests (media ids, user agents) and from the command
line, and a raw ESC, CR, newline or bidi override in one would let it rewrite
the terminal or forge a line of ``audit tail``. They are shown as ``\\xNN`` /
``\\uNNNN`` instead. JSON output needs nothing: the encoder escapes them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import Conflict, InvalidInput
from gateway.store.files import create_private

# C0 controls (newline and tab included: a value is never several lines), DEL, C1 controls,
# Unicode line/paragraph separators and the bidirectional overrides/isolates ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as text that cannot control a terminal. Idempotent: its output has nothing left to escape."""
    return _UNSAFE.sub(_escape, str(value))


def when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit(data: Any, *, as_json: bool, text: str | Sequence[str] | None = None) -> None:
    """Print ``data`` as JSON, or ``text``: one line, or a sequence of lines, each made printable."""
    if as_json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    elif text is not None:
        print_lines([text] if isinstance(text, str) else text)


def print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(printable(line))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    if not rows:
        return ["(none)"]
    # Escaped before measuring, so the columns line up as printed.
    cells = [[printable(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return lines


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (new directories 0700); never overwrite."""
    try:
        create_private(path, (text + "\n").encode())
    except FileExistsError:
        raise Conflict(f"{path} already exists; choose a new file (it is never overwritten)") from None
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None
