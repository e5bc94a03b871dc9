"""Request headers a proxy sets: read every copy, never just the first.

HTTP lets a header appear on several lines; the lines mean their values
joined with commas (RFC 9110, section 5.3). A proxy that appends its own
``X-Forwarded-For`` line (HAProxy's ``option forwardfor``) after the client's
therefore puts the address it saw *last*, and reading the first line would
let the client choose its own address.
"""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web

from gateway.errors import VerificationFailed


def forwarded_for(request: web.Request) -> str | None:
    """Every ``X-Forwarded-For`` line, joined in order: the rightmost entries are the nearest proxies'."""
    lines = request.headers.getall(hdrs.X_FORWARDED_FOR, ())
    return ", ".join(lines) if lines else None


def only_one(request: web.Request, name: str) -> str | None:
    """A header that names one thing (the URI to verify, the profile): two copies are refused, not picked from.

    ``name``: an ``istr`` where it is asked per request (``multidict`` then skips folding its case each time)."""
    lines = request.headers.getall(name, ())
    if len(lines) > 1:
        raise VerificationFailed("duplicate-header")
    return lines[0] if lines else None


def bearer_matches(request: web.Request, token: str) -> bool:
    """Whether ``Authorization: Bearer <token>`` names ``token``, compared in constant time.

    aiohttp hands bytes that are not UTF-8 over as lone surrogates; ``surrogateescape`` turns them back into
    those bytes, which never match a token read from a text file, instead of raising (a 500, a traceback).
    """
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    presented = given.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented, token.encode())
