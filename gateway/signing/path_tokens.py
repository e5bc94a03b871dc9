"""Where a native path token sits in a URL path: ``/_t/<token>/<path>`` (docs/native-format.md, "Path tokens").

A path token is a prefix token carried as the first path segment instead of
in the query, so every relative URL of an HLS or DASH playlist inherits it.
The proxy takes the segment off before the origin sees the path; the gateway
verifies the path *after* it (``resource_path``), with the same canonical-path
gate and prefix rules as for a query token. This module only splits: it never
decodes the token (``gateway.signing.dialects.native`` does).

One spelling: the marker is exactly ``/_t/`` (``/_T/`` or ``/%5Ft/`` is
another path, which the canonical-path gate or the missing token refuses),
the token is one non-empty segment, and what follows is a path of its own —
never a second ``/_t/`` segment. A media path may not start with ``/_t/``
(``reserved``): a URL for it would read as a path token.
"""

from __future__ import annotations

from gateway.errors import InvalidInput, VerificationFailed

MARKER = "/_t/"


def split(path: str) -> tuple[str, str] | None:
    """(token, the path after it) of a canonical request path that carries a path token; None when it does not.

    Raises VerificationFailed("malformed") for ``/_t/`` without a token and a path after it, or with a
    second token segment after the first.
    """
    if not path.startswith(MARKER):
        return None
    end = path.find("/", len(MARKER))
    if end <= len(MARKER):
        raise VerificationFailed("malformed")  # "/_t/TOKEN" with no path, or "/_t//..." (refused earlier anyway)
    rest = path[end:]
    if rest.startswith(MARKER):
        raise VerificationFailed("malformed")  # doubled: a proxy strips one segment, the origin would see the other
    return path[len(MARKER) : end], rest


def resource_path(path: str) -> str:
    """The path a request is for: after the token segment when it has one, otherwise the path itself."""
    if not path.startswith(MARKER):
        return path
    found = split(path)
    assert found is not None
    return found[1]


def join(token: str, path: str) -> str:
    return f"{MARKER[:-1]}/{token}{path}"


def check_not_reserved(path: str) -> str:
    """A media path (canonical); InvalidInput when it lies under ``/_t/``, where URLs are read as path tokens."""
    if path.startswith(MARKER) or path == MARKER[:-1]:
        raise InvalidInput(f"URL path {path!r} is not allowed: paths under {MARKER} are reserved for path tokens")
    return path
