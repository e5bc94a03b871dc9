"""The shipped nginx site (deploy/nginx/) in tests: the snippet without TLS, tools the stack needs, raw HTTPS GETs."""

from __future__ import annotations

import http.client
import shutil
import ssl
import urllib.parse
from pathlib import Path

from examples.demo import stack as local
from tests.conftest import require_service
from tests.processes import wait_until

VERIFY_CACHE_INCLUDE = "    include /etc/nginx/snippets/gateway-verify-cache.conf;\n"


def plain_http_snippet(text: str) -> str:
    """deploy/nginx/gateway-verify.conf for a gateway without TLS and without the decision cache."""
    for shipped in ("proxy_pass https://media_gateway/v1/verify;", VERIFY_CACHE_INCLUDE):
        assert shipped in text, f"deploy/nginx/gateway-verify.conf no longer has {shipped!r}"
    return text.replace("https://media_gateway", "http://media_gateway").replace(VERIFY_CACHE_INCLUDE, "")


def require_tool(name: str, install: str) -> str:
    found = shutil.which(name)
    if found is None:
        require_service(f"{name} ({install})")
    assert found is not None
    return found


def fetch(
    url: str,
    context: ssl.SSLContext,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """``method`` (GET) ``url`` exactly as written, never following a redirect: status, headers, body.
    ``body``: sent with its Content-Length, whatever the method."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context, timeout=10)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def origin_requests(log: Path, context: ssl.SSLContext, sentinel: str, marker: str) -> list[str]:
    """The request lines the origin has logged, once it has logged the request for ``sentinel``.

    The sentinel (a URL nginx serves, its origin path holding ``marker``) is fetched after the requests
    under test: once the origin has logged it, whatever it was sent before is in its log too.
    """
    assert fetch(sentinel, context)[0] == 200

    def logged() -> list[str] | None:
        lines = [line.split('"')[1] for line in log.read_text().splitlines()] if log.exists() else []
        return lines if any(marker in line for line in lines) else None

    found: list[str] = wait_until(logged, "the origin to log the sentinel request")
    return found


# Headers that make many web frameworks treat a request as another method: a signed read URL must not
# carry a write to the origin under one of them.
OVERRIDES = {
    "X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "PUT", "X-Method-Override": "POST",
    "X-Forwarded-Method": "DELETE", "X-Original-Method": "PUT", "X-Original-HTTP-Method": "PATCH",
}  # fmt: skip
NONE_SEEN = "|".join("-" for _ in local.ORIGIN_NEVER_SEES)


def overrides_seen(log: Path, marker: str) -> list[str]:
    """What of ``local.ORIGIN_NEVER_SEES`` the origin received (``a|b|…``, ``-`` if absent) on each logged request
    for ``marker`` (examples/demo/stack.py logs them); call after ``origin_requests`` has seen the sentinel."""
    return [line.rsplit('overrides="', 1)[1].rstrip('"') for line in log.read_text().splitlines() if marker in line]
