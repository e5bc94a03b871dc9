"""The shipped nginx site (deploy/nginx/) in tests: the snippet without TLS, tools the stack needs, raw HTTPS GETs."""

from __future__ import annotations

import http.client
import shutil
import ssl
import urllib.parse

from tests.conftest import require_service

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
    url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` exactly as written, never following a redirect: status, headers, body."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context, timeout=10)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
