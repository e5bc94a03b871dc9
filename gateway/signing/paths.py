"""Canonical forms of URL paths and queries, so signer and verifier agree byte for byte.

Rules (see docs/native-format.md):
- percent-escapes are normalised: escapes of unreserved characters are decoded,
  all other escapes use upper-case hex; characters outside RFC 3986's path
  alphabet are percent-encoded as UTF-8;
- encoded ``/`` and ``\\``, NUL, empty segments and dot segments are refused,
  because a CDN or origin may resolve them differently from the verifier
  (a token for ``/v/abc/`` must never open ``/v/abcd/`` or ``/v/abc/../x``).
"""

from __future__ import annotations

import re
import string

from gateway.errors import InvalidInput

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_QUERY_SAFE = (_PATH_SAFE | frozenset("?")) - frozenset("&=")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_FORBIDDEN_BYTES = frozenset({0x00, 0x2F, 0x5C})  # NUL, '/', '\'


def _canonical_text(text: str, safe: frozenset[str], forbid_encoded: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            match = _ESCAPE.match(text, i)
            if match is None:
                raise InvalidInput("malformed percent-escape in URL")
            byte = int(match.group(1), 16)
            if forbid_encoded and byte in _FORBIDDEN_BYTES:
                raise InvalidInput("encoded '/', '\\' or NUL in URL path")
            out.append(chr(byte) if chr(byte) in _UNRESERVED else f"%{byte:02X}")
            i += 3
            continue
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{b:02X}" for b in char.encode("utf-8"))
        i += 1
    return "".join(out)


def canonical_path(path: str) -> str:
    """The canonical form of an absolute URL path; raises InvalidInput when unsafe."""
    if not path.startswith("/"):
        raise InvalidInput("URL path must start with '/'")
    if "\\" in path or "\x00" in path:
        raise InvalidInput("URL path contains '\\' or NUL")
    canonical = _canonical_text(path, _PATH_SAFE, forbid_encoded=True)
    segments = canonical.split("/")[1:]
    for index, segment in enumerate(segments):
        if segment in (".", ".."):
            raise InvalidInput("dot segments are not allowed in URL paths")
        if segment == "" and index != len(segments) - 1:
            raise InvalidInput("empty segments ('//') are not allowed in URL paths")
    return canonical


def canonical_prefix(prefix: str) -> str:
    """A directory prefix: a canonical path ending in '/'."""
    canonical = canonical_path(prefix)
    if not canonical.endswith("/"):
        raise InvalidInput("a path prefix must end with '/'")
    return canonical


def path_within(path: str, prefix: str) -> bool:
    """True when canonical ``path`` lies under canonical directory ``prefix``."""
    return prefix.endswith("/") and path.startswith(prefix)


def split_query(query: str) -> list[tuple[str, str]]:
    """Raw ``name=value`` pairs in order; '+' is kept literally (no form decoding)."""
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((name, value))
    return pairs


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    """Pairs canonicalised and sorted by (name, value)."""
    canonical = [(_canonical_text(n, _QUERY_SAFE, False), _canonical_text(v, _QUERY_SAFE, False)) for n, v in pairs]
    return "&".join(f"{n}={v}" for n, v in sorted(canonical))
