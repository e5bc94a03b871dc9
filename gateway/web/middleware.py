"""Request ids and the one place errors become HTTP responses."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.errors import GatewayError

log = logging.getLogger("gateway.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def request_id(request: web.Request) -> str:
    return request[REQUEST_ID]


def error_response(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": code, "message": message}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="media-gateway"'
    return response


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    request[REQUEST_ID] = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
    response = await handler(request)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        if exc.status >= 500:
            log.error("request %s failed: %s", request.get(REQUEST_ID), exc.message)
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)
    except Exception:
        log.exception("unhandled error in request %s", request.get(REQUEST_ID))
        return error_response(500, "internal", "internal error")
