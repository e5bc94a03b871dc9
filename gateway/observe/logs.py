"""Structured logs: one JSON object per line, each with the request id, no personal data.

``gatewayctl serve`` installs ``JsonFormatter`` on stderr (``[logging]
format = "json"``, the default; ``"text"`` for people at a terminal). Every
line is ``{"time", "level", "logger", "message", "request_id"?, ...}``; the
request id comes from ``REQUEST_ID_VAR``, which the request middleware sets
for the task serving each request, so a line logged anywhere below a handler
names the request that caused it.

Personal data: the gateway logs no viewer ids, tokens or URLs. As a net under
that rule, every IPv4 or IPv6 address in a message is masked to its /24 or /48
(``gateway.netaddr.mask_ip``) before it is written, whoever logged it; and so
is every URL's password (``gateway.redact``: a database URL quoted by a driver).

The access log (``logging.access_log``, off by default) is one line per
request: method, the matched route's *pattern* (``/m/{media_id}/{rendition}``
— never the path itself, which for Envoy's ``/v1/verify/…`` is a signed URL),
status, duration and the masked client network.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import re
import sys
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway import redact
from gateway.netaddr import mask_ip

REQUEST_ID_VAR: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
ACCESS_LOGGER = "gateway.access"
# Candidates only: each match is checked by ipaddress before it is masked.
# An address may carry a prefix length: a network already masked (``127.0.0.0/24``) is left as it is.
_ADDRESS = re.compile(
    r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?:/\d{1,3})?(?![\w.:])"
)
_MASKED_PREFIX = {4: 24, 6: 48}  # what gateway.netaddr.mask_ip keeps
# LogRecord attributes that are not "extra" fields given by the caller.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def mask_addresses(text: str) -> str:
    """``text`` with every IP address replaced by its masked network (and every URL's password masked)."""
    text = redact.text(text)
    return _ADDRESS.sub(_mask_match, text) if ("." in text or ":" in text) else text


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    address, slash, prefix = found.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return found
    if slash and int(prefix) <= _MASKED_PREFIX[ip.version]:
        return found  # a network no narrower than a masked one names nobody
    return mask_ip(address) or found


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_addresses(record.getMessage()),
        }
        request_id = REQUEST_ID_VAR.get()
        if request_id is not None:
            line["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line:
                line[name] = value if isinstance(value, int | float | bool | None) else mask_addresses(str(value))
        if record.exc_info:
            line["exception"] = mask_addresses(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_addresses(super().format(record))


def configure(fmt: str, level: str, stream: Any = None) -> logging.Handler:
    """Send the gateway's logs to ``stream`` (stderr) as JSON lines or text; returns the handler installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_gateway", False)]:
        root.removeHandler(old)
    handler._gateway = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The access log is asked for by logging.access_log, not by the level: it logs at INFO whatever the level.
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    return handler


class AccessLogger(AbstractAccessLogger):
    """One line per request, as structured fields (see the module docstring for what is and is not logged)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, duration: float) -> None:
        route = "-"
        match_info = getattr(request, "match_info", None)
        resource = match_info.route.resource if match_info is not None else None
        if resource is not None:
            route = resource.canonical
        self.logger.info(
            "%s %s %d",
            request.method,
            route,
            response.status,
            extra={
                "request_id": response.headers.get("X-Request-Id"),
                "method": request.method,
                "route": route,
                "status": response.status,
                "duration_ms": round(duration * 1000, 3),
                "client": mask_ip(request.remote),
            },
        )
