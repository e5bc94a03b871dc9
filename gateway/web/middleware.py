"""Request ids and the one place errors become HTTP responses."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from aiohttp import web
from multidict import istr

from gateway import redact
from gateway.errors import GatewayError, RateLimited, RequestTimeout
from gateway.observe.logs import REQUEST_ID_VAR
from gateway.web.schemas import Error

log = logging.getLogger("gateway.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
_REQUEST_ID_HEADER = istr("X-Request-Id")  # istr: read on every request, its case folded once
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}
encode_json = msgspec.json.Encoder().encode
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def request_id(request: web.Request) -> str:
    return request[REQUEST_ID]


def json_response(body: msgspec.Struct, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A body declared in ``gateway.web.schemas``, encoded as the OpenAPI document says."""
    return web.Response(
        body=encode_json(body), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )


def error_code(status: int) -> str:
    return _HTTP_CODES.get(status, "http_error")


def error_response(status: int, code: str, message: str) -> web.Response:
    response = json_response(Error(error=code, message=redact.text(message)), status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="media-gateway"'
    return response


def _new_request_id() -> str:
    """Unique, not secret: a per-process random prefix and a counter (cheaper than fresh randomness each time)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):x}"


_ID_PREFIX = secrets.token_hex(4) + "-"
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:
    """After ``serve --workers`` forks: each worker its own prefix, or two workers would hand out the same ids."""
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = secrets.token_hex(4) + "-", itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)


def identify(request: web.Request) -> str:
    """The request's id (the caller's, if well-formed), kept on the request and in this task's log context."""
    incoming = request.headers.get(_REQUEST_ID_HEADER, "")
    rid = request[REQUEST_ID] = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else _new_request_id()
    REQUEST_ID_VAR.set(rid)  # every log line of this request carries it (gateway.observe.logs)
    return rid


def error_answer(exc: Exception, rid: str) -> web.Response:
    """The JSON error body for what a handler raised; a redirect or other non-error ``HTTPException`` re-raised."""
    if isinstance(exc, GatewayError):
        if exc.status >= 500:
            log.error("request %s failed: %s", rid, exc.message)
        response = error_response(exc.status, exc.code, exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, RequestTimeout):
            response.force_close()  # the rest of a slow body is not waited for
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return error_response(exc.status, error_code(exc.status), exc.reason)
    log.exception("unhandled error in request %s", rid, exc_info=exc)
    return error_response(500, "internal", "internal error")


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets an id (the caller's, if well-formed); every error becomes the JSON error body.

    One middleware, not two: each layer costs every request, and these two always go together.
    ``gateway.web.direct`` does the same around ``/v1/verify`` with the same two functions.
    """
    rid = identify(request)
    try:
        response = await handler(request)
    except Exception as exc:
        response = error_answer(exc, rid)
    response.headers["X-Request-Id"] = rid
    return response
