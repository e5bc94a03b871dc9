"""Running the app: aiohttp's runner, with its own error pages replaced by the JSON error body.

Some requests never reach the app or its middlewares: aiohttp's HTTP parser
refuses them first (a header or request line over 8190 bytes, a malformed
request line, bad framing) and answers with a plain-text page, logging a
traceback each time. ``Runner`` is ``web.AppRunner`` whose connections answer
those, too, with ``{"error": code, "message": ...}`` and log them at debug
level without a traceback (one line per junk request is log amplification).

aiohttp has no public hook for this: ``RequestHandler.handle_error`` is the
one place it builds those pages, and ``Server`` builds the handlers. Written
against aiohttp 3.14; ``tests/security/test_http_input.py`` sends junk over a
real socket and fails if an upgrade brings the plain-text pages back.
"""

from __future__ import annotations

from typing import Any

from aiohttp import http_exceptions as parse_errors
from aiohttp import web

from gateway.web.appkeys import SERVICES
from gateway.web.connections import ConnectionLimits, GuardedHandler, GuardedServer, connection_limits
from gateway.web.direct import direct_verify
from gateway.web.middleware import error_code, error_response

# Fixed words per refusal: aiohttp's own messages quote the offending bytes back.
_PARSE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (parse_errors.LineTooLong, "the request line or a header is too long"),
    (parse_errors.BadStatusLine, "the request line is malformed"),
    (parse_errors.InvalidHeader, "a header is malformed"),
    (parse_errors.TransferEncodingError, "the body's framing is malformed"),
    (parse_errors.ContentLengthError, "the body's length is malformed"),
)
_STATUS_CODES = {500: "internal", 504: "timeout"}


def _message(status: int, exc: BaseException | None) -> str:
    if status >= 500:
        return "internal error" if status == 500 else "the request took too long"
    for kind, text in _PARSE_ERRORS:
        if isinstance(exc, kind):
            return f"malformed HTTP request: {text}"
    return "malformed HTTP request"


class _JsonErrorHandler(GuardedHandler):
    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A client's malformed body read after the answer (keep-alive draining) is its fault: one debug line."""
        if isinstance(kwargs.get("exc_info"), web.RequestPayloadError | parse_errors.HttpProcessingError):
            self.log_debug("dropped a malformed request body: %s", type(kwargs["exc_info"]).__name__)
            return
        super().log_exception(*args, **kwargs)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            self.log_debug("refused a malformed request from %s: %s", request.remote, type(exc).__name__)
        if request.writer.output_size > 0:  # as aiohttp: too late for any answer but a closed connection
            raise ConnectionError("the response has started; cannot send an error instead")
        response = error_response(status, _STATUS_CODES.get(status) or error_code(status), _message(status, exc))
        response.force_close()
        return response


class _JsonErrorServer(GuardedServer):
    def __call__(self) -> web.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose every answer, including aiohttp's own refusals, is the JSON error body, and
    whose connections are bounded (``gateway.web.connections``)."""

    def __init__(
        self, app: web.Application, *, limits: ConnectionLimits | None = None, direct: bool = True, **kwargs: Any
    ) -> None:
        config = app[SERVICES].config
        kwargs.setdefault("keepalive_timeout", config.keepalive_timeout)
        super().__init__(app, **kwargs)
        self.limits = limits or connection_limits(config)
        self.direct = direct  # False: every request through the router and middlewares (the differential tests)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the app's startup has run; its handler and request factory
        metrics = self.app[SERVICES].metrics
        handler = server.request_handler  # Application._handle
        if self.direct:
            # GET/HEAD /v1/verify skip the router and the middleware chain, same answers (gateway.web.direct):
            # issue 18's per-segment verify pays aiohttp's dispatch more than its own work.
            handler = direct_verify(self.app, handler, access_log=server._kwargs.get("access_log", True) is not None)
        guarded = _JsonErrorServer(
            handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            limits=self.limits,
            closed=metrics.connections,
            **server._kwargs,
        )
        metrics.gauges.connections_open = lambda: float(len(guarded))
        metrics.gauges.connections_max = lambda: float(self.limits.max_connections)
        return guarded
