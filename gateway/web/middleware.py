"""Request ids and the one place errors become HTTP responses."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from aiohttp import web

from gateway.errors import GatewayError
from gateway.web.schemas import Error

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
    431: "headers_too_large",
}
_ENCODE = msgspec.json.Encoder().encode


def request_id(request: web.Request) -> str:
    return request[REQUEST_ID]


def json_response(body: msgspec.Struct, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A body declared in ``gateway.web.schemas``, encoded as the OpenAPI document says."""
    return web.Response(
        body=_ENCODE(body), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )


def error_code(status: int) -> str:
    return _HTTP_CODES.get(status, "http_error")


def error_response(status: int, code: str, message: str) -> web.Response:
    response = json_response(Error(error=code, message=message), status=status)
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
        return error_response(exc.status, error_code(exc.status), exc.reason)
    except Exception:
        log.exception("unhandled error in request %s", request.get(REQUEST_ID))
        return error_response(500, "internal", "internal error")
