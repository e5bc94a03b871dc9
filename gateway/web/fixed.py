"""A 200 whose bytes are known before the request: written in one transport write, below ``web.Response``.

Why: a remembered ``/v1/verify`` (an HLS player's every segment) decides in ≈ 10 µs, and aiohttp's
``web.Response`` then spends more than that again on the answer: a header multidict copied and filled
(Content-Length, Date, Server), its keep-alive and body-length rules, the headers serialised, two writer
coroutines (issue 18: the target is 0.75 of a hello-world's rate). The allow answer is the same bytes for every
segment of a token but for the Date and the request id, so its head is built once per token
(``gateway.web.verify``) and each request joins six byte strings.

The bytes are ``web.Response``'s, in its order (``tests/test_verify_direct.py`` compares them byte for byte with
the router path, keep-alive and ``Connection: close``, GET and HEAD): the status line; the answer's own
headers; ``X-Request-Id``; ``Content-Length``; ``Date`` (aiohttp's once-a-second string); ``Server``;
``Connection: close`` when the client asked for it. Only HTTP/1.1 is answered this way (``gateway.web.direct``
checks): 1.0's keep-alive rules go the ordinary way, as does an app with an ``on_response_prepare`` hook.
Written against aiohttp 3.14's ``StreamResponse`` protocol (``RequestHandler.finish_response`` calls
``prepare`` then ``write_eof`` and reads ``keep_alive``).
"""

from __future__ import annotations

from typing import NamedTuple

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_writer import StreamWriter
from multidict import CIMultiDict

_STATUS_LINE = b"HTTP/1.1 200 OK\r\n"
_SERVER = f"\r\nServer: {SERVER_SOFTWARE}\r\n".encode("ascii")
_CLOSE = b"Connection: close\r\n"


class FixedParts(NamedTuple):
    """A fixed answer's bytes but the request id and date: built once, joined per request."""

    head: bytes  # status line, own headers, "X-Request-Id: "
    length: bytes  # "\r\nContent-Length: N\r\nDate: "
    body: bytes
    headers: CIMultiDict[str]  # the own headers, for whoever reads ``response.headers`` (the access log)


def fixed_parts(headers: CIMultiDict[str], body: bytes) -> FixedParts | None:
    """``headers`` and ``body`` as a fixed 200; None when a value is not plain printable ASCII (the ordinary
    ``web.Response`` then writes, or refuses, it)."""
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    if not all(line[:-2].isascii() and line[:-2].isprintable() for line in lines):
        return None
    head = _STATUS_LINE + "".join(lines).encode("ascii") + b"X-Request-Id: "
    return FixedParts(head, f"\r\nContent-Length: {len(body)}\r\nDate: ".encode("ascii"), body, headers)


class FixedAnswer(web.StreamResponse):
    """``parts`` answered with ``request_id``, as ``web.Response(body=..., headers=...)`` would write it."""

    def __init__(self, parts: FixedParts, request_id: str) -> None:
        super().__init__(_real_headers=parts.headers)  # shared, never written to: see ``headers``
        self._parts = parts
        self._request_id = request_id

    @property
    def headers(self) -> CIMultiDict[str]:
        """A copy with the request id, as the ordinary answer holds them before it is sent (read by the
        access log); the shared headers stay as built."""
        headers = self._parts.headers.copy()
        headers["X-Request-Id"] = self._request_id
        return headers

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent or self._payload_writer is not None:
            return self._payload_writer
        parts = self._parts
        if self._keep_alive is None:
            self._keep_alive = request.keep_alive
        writer = request.writer
        assert isinstance(writer, StreamWriter)  # aiohttp's, whose _write the answer uses
        self._req, self._payload_writer = request, writer
        body = b"" if request.method == hdrs.METH_HEAD else parts.body
        ending = _SERVER if self._keep_alive else _SERVER + _CLOSE
        # StreamWriter._write: counts the output and refuses a closing transport (ConnectionResetError, which
        # finish_response takes as the client gone), as every aiohttp write does.
        writer._write(b"".join((parts.head, self._request_id.encode("ascii"), parts.length,
                                rfc822_formatted_time().encode("ascii"), ending, b"\r\n", body)))  # fmt: skip
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        writer = self._payload_writer
        assert isinstance(writer, StreamWriter) and not data
        await writer.drain()  # a client not reading: wait as aiohttp does (bounded by the transport's limits)
        writer._eof = True
        self._eof_sent, self._req, self._payload_writer = True, None, None
        self._body_length = writer.output_size
