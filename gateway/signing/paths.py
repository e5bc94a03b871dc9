"""Canonical URL paths: one spelling per path, so every parser in the chain reads the same thing.

The canonical form (docs/paths.md) is a *check*, not a normaliser: the verifier
refuses any request whose raw path is not already canonical, so the path a
dialect compares is byte for byte the path nginx, the CDN and the origin see.

A path is canonical when:
- it starts with ``/`` and is ASCII;
- it holds only RFC 3986 ``pchar`` characters except ``;`` (unreserved,
  ``!$&'()*+,=:@``), ``/`` and ``%XX`` escapes with upper-case hex;
- no escape encodes a character a path may hold literally: an unreserved
  one (RFC 3986 §2.3: ``%7E`` *is* ``~``) or one of ``!$&'()*+,=:@``.
  RFC 3986 §2.2 calls ``%2C`` and ``,`` different URIs, but every origin we
  sit in front of (nginx's static files, S3 keys) decodes both to the same
  file, so a second spelling would let two items claim one file. Nor may an
  escape encode ``/``, ``\\``, ``;``, ``%``, NUL or another control byte;
- escaped bytes >= 0x80 are well-formed UTF-8, free of control, format and
  unassigned characters, and no character folds (NFKC, or a known look-alike)
  to ASCII punctuation such as ``.`` ``/`` ``\\`` ``;`` ``%``;
- no segment is empty (``//``) except the last (a trailing ``/`` names a
  directory), and no segment consists only of dots (and spaces).

Media paths are written by administrators, so ``canonical_path`` first fixes
harmless spelling (escape case, needless escapes, raw non-ASCII) and then
applies the same check; it never resolves dot segments or decodes ``%2F``.
So one file has exactly one canonical spelling: comparing canonical paths
byte for byte (claims, overlaps, prefixes, link revocations) compares the
files an origin serves.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

from gateway.errors import InvalidInput

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_LITERAL = _UNRESERVED | frozenset("!$&'()*+,=:@")
_PLAIN_SEGMENT = r"(?!\.+(?:/|$))[-A-Za-z0-9._~!$&'()*+,=:@]+"
# The common case, a path of plain segments, is decided by one precompiled regex.
_PLAIN_PATH = re.compile(rf"/|(?:/{_PLAIN_SEGMENT})+/?")
_ESCAPED_PATH = re.compile(r"(?:/(?:[-A-Za-z0-9._~!$&'()*+,=:@]|%[0-9A-F]{2})*)+")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_SPLIT_ESCAPES = re.compile(r"(%[0-9A-F]{2})")  # escapes as separate pieces
_SPLIT_ANY_ESCAPES = re.compile(r"(%[0-9A-Fa-f]{2})")
# ASCII bytes that may only travel escaped, and bytes that may not travel at all.
_REFUSED_BYTES = frozenset([*range(0x20), 0x7F, ord("/"), ord("\\"), ord(";"), ord("%")])
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Not folded by NFKC, yet read as '/', '\' or '.' by some "best fit" decoders and by people.
_LOOK_ALIKES = frozenset("\u2215\u2044\u29f8\u2216\u29f9\u3002\uff61\u0338")


def path_problem(path: str) -> str | None:
    """Why ``path`` is not canonical, or None when it is. Pure and fast for plain paths."""
    if _PLAIN_PATH.fullmatch(path):
        return None
    if not path.startswith("/"):
        return "a URL path must start with '/'"
    if not path.isascii():
        return "raw non-ASCII in the URL path (percent-encode it as UTF-8)"
    if not _ESCAPED_PATH.fullmatch(path):
        return _character_problem(path)
    return _segments_problem(path)


def _character_problem(path: str) -> str:
    for index, char in enumerate(path):
        if char in ";\\":
            return f"{char!r} is not allowed in a URL path"
        if char == "%" and not _ESCAPE.match(path, index):
            return "a malformed percent-escape"
        if char == "%" and not _SPLIT_ESCAPES.match(path, index):
            return "percent-escapes are written with upper-case hex"
        if char not in _LITERAL and char not in "/%":
            return f"{char!r} must be percent-encoded"
    return "not a URL path"


def _segments_problem(path: str) -> str | None:
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        if segment == "" and index != len(segments) - 1:
            return "empty segments ('//') are not allowed"
        decoded = _decoded_segment(segment)
        if isinstance(decoded, _Problem):
            return decoded.text
        if decoded and not decoded.strip(". "):
            return "dot segments ('.', '..') are not allowed in any spelling"
    return None


class _Problem:
    def __init__(self, text: str) -> None:
        self.text = text


def _decoded_segment(segment: str) -> str | _Problem:
    """The segment's text after one percent-decoding, or the reason it cannot be canonical."""
    if "%" not in segment:
        return segment
    raw = bytearray()
    for piece in _SPLIT_ESCAPES.split(segment):
        if not piece.startswith("%"):
            raw += piece.encode("ascii")
            continue
        byte = int(piece[1:], 16)
        if byte < 0x80 and chr(byte) in _LITERAL:
            return _Problem(f"{piece} is a second spelling of {chr(byte)!r}: write it unescaped")
        if byte in _REFUSED_BYTES:
            return _Problem(f"{piece} (an encoded '/', '\\', ';', '%' or control byte) is not allowed")
        raw.append(byte)
    try:
        text = raw.decode("utf-8")  # strict: refuses overlong forms and surrogates
    except UnicodeDecodeError:
        return _Problem("percent-encoded bytes that are not well-formed UTF-8")
    return _unicode_problem(text) or text


def _unicode_problem(text: str) -> _Problem | None:
    for char in text:
        if char.isascii():
            continue
        folded = unicodedata.normalize("NFKC", char)
        if (
            unicodedata.category(char) in _REFUSED_CATEGORIES
            or char in _LOOK_ALIKES
            or any(c.isascii() and not c.isalnum() for c in folded)
        ):
            return _Problem(f"U+{ord(char):04X} is a control character or a look-alike of ASCII punctuation")
    # A dot followed by combining marks reads as a dot to a parser that strips marks.
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.category(c).startswith("M"))
    if stripped and not stripped.strip(". "):
        return _Problem("dot segments ('.', '..') are not allowed in any spelling")
    return None


def is_canonical_path(path: str) -> bool:
    # The plain path tried here first: one call less on every verify (path_problem tries it first, too).
    return _PLAIN_PATH.fullmatch(path) is not None or path_problem(path) is None


def normalised_spelling(path: str) -> str:
    """Fix spelling only: escape case, needless escapes (of anything a path may hold literally), raw characters
    outside the path alphabet.

    Never resolves dot segments and never decodes an escape that may not be
    literal, so the result is checked afterwards like any other path.
    """

    out: list[str] = []
    for piece in _SPLIT_ANY_ESCAPES.split(path):
        if _ESCAPE.fullmatch(piece):
            char = chr(int(piece[1:], 16))
            out.append(char if char in _LITERAL else piece.upper())
            continue
        out.extend(c if c in _LITERAL or c in "/%" else "".join(f"%{b:02X}" for b in c.encode()) for c in piece)
    return "".join(out)


def canonical_path(path: str) -> str:
    """A media path in canonical form; raises InvalidInput when it cannot be one (signing-time rule)."""
    if _PLAIN_PATH.fullmatch(path):
        return path  # nothing to respell and nothing to refuse: every issuance of a plain path (most) stops here
    if not path.isascii() and any("\ud800" <= c <= "\udfff" for c in path):
        raise InvalidInput(f"URL path {path!r} is not allowed: it holds a byte that is no UTF-8 text")
    spelled = normalised_spelling(path)
    problem = path_problem(spelled)
    if problem is not None:
        raise InvalidInput(f"URL path {path!r} is not allowed: {problem}")
    return spelled


def canonical_prefix(prefix: str) -> str:
    """A directory prefix: a canonical path ending in '/'."""
    canonical = canonical_path(prefix)
    if not canonical.endswith("/"):
        raise InvalidInput("a path prefix must end with '/'")
    return canonical


def path_within(path: str, prefix: str) -> bool:
    """True when canonical ``path`` lies under ``prefix``, at a segment boundary.

    ``/v/abc/`` and ``/v/abc`` both cover ``/v/abc/x``; neither covers ``/v/abcd``.
    """
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def url_path(url: str) -> str:
    """The raw path of an absolute or origin-form URL: after the authority, up to the first '?'.

    A '#' is deliberately kept: clients never send fragments, so one in the
    path makes it non-canonical rather than silently cut off.
    """
    match = _AUTHORITY.match(url)
    start = match.end() if match else 0
    end = url.find("?", start)  # found in place: a signed URL's query is most of it, and is not copied
    return url[start:end] if end >= 0 else url[start:]


def origin_and_path(url: str, *, keep_query: bool = False) -> tuple[str, str]:
    """(``scheme://host``, path) of an absolute URL; ("", text) for anything else."""
    match = _AUTHORITY.match(url)
    origin = match.group(0) if match else ""
    rest = url[len(origin) :]
    return origin, rest if keep_query else rest.split("?", 1)[0]


def strip_authority(url: str) -> str:
    """An absolute URL's path and query, its scheme and host dropped; any other text unchanged."""
    match = _AUTHORITY.match(url)
    return url[match.end() :] if match else url


def split_query(query: str) -> list[tuple[str, str]]:
    """Raw ``name=value`` pairs in order; '+' is kept literally (no form decoding)."""
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((name, value))
    return pairs


_QUERY_SAFE = _UNRESERVED | frozenset("!$'()*+,;:@/?")


def _canonical_query_text(text: str) -> str:
    """Query spelling for the native format's string to sign (unchanged since GW1: see the vectors)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            match = _ESCAPE.match(text, i)
            if match is None:
                raise InvalidInput("malformed percent-escape in URL")
            byte = int(match.group(1), 16)
            out.append(chr(byte) if chr(byte) in _UNRESERVED else f"%{byte:02X}")
            i += 3
            continue
        out.extend([char] if char in _QUERY_SAFE else [f"%{b:02X}" for b in char.encode("utf-8")])
        i += 1
    return "".join(out)


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    """Pairs canonicalised and sorted by (name, value): the native format's signed query."""
    canonical = [(_canonical_query_text(n), _canonical_query_text(v)) for n, v in pairs]
    return "&".join(f"{n}={v}" for n, v in sorted(canonical))
