"""The OpenAPI 3.1 document, generated from the route table and the body models.

Nothing here is written by hand but prose: paths, operations, parameters
and every schema come from ``gateway.web.routes.ROUTES`` and
``gateway.web.schemas`` (JSON Schema 2020-12 from msgspec, which OpenAPI 3.1
uses as is). Built once at start-up and served as bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from gateway.web.routes import EDGE, PRINCIPAL, VIEWER, VIEWER_COOKIE, Reply, Route
from gateway.web.schemas import REFERENCED_ONLY, SCHEMA_REF

TITLE = "media-gateway"
VERSION = "0.1.0"
_REGEX_PARAM = re.compile(r"\{(\w+):[^}]*\}")


def document(routes: Iterable[Route], *, viewer_cookie: str) -> dict[str, Any]:
    routes = tuple(routes)
    types = _types(routes)
    schemas, components = msgspec.json.schema_components(types, ref_template=SCHEMA_REF)
    schema_of = _Schemas(types, schemas)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        method = "get" if route.method == "*" else route.method.lower()
        paths.setdefault(path_of(route.path), {})[method] = _operation(route, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": 'Signed URLs for media. Every error is JSON: {"error": code, "message": text}.',
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _security_schemes(viewer_cookie)},
    }


def encode(doc: dict[str, Any]) -> bytes:
    return msgspec.json.encode(doc)


class _Schemas:
    """The schema msgspec drew for each type (types are compared with ``==``: Annotated ones do not hash alike)."""

    def __init__(self, types: list[Any], schemas: tuple[dict[str, Any], ...]) -> None:
        self._pairs = list(zip(types, schemas, strict=True))

    def __call__(self, kind: Any) -> dict[str, Any]:
        return next(schema for known, schema in self._pairs if known == kind)


def _types(routes: tuple[Route, ...]) -> list[Any]:
    found: list[Any] = list(REFERENCED_ONLY)
    for route in routes:
        for kind in (route.body, *route.path_params.values(), *(r.body for r in route.replies.values())):
            if kind is not None and kind not in found:
                found.append(kind)
    return found


def path_of(aiohttp_path: str) -> str:
    return _REGEX_PARAM.sub(r"{\1}", aiohttp_path)


def _operation(route: Route, schema_of: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema_of(kind)}
        for name, kind in route.path_params.items()
    ] + [
        {"name": name, "in": "header", "required": False, "description": text, "schema": {"type": "string"}}
        for name, text in route.header_params.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        content = {"application/json": {"schema": schema_of(route.body)}}
        operation["requestBody"] = {"required": True, "content": content}
    operation["responses"] = {str(status): _response(reply, schema_of) for status, reply in route.replies.items()}
    operation["security"] = [{name: []} for name in route.security]
    return operation


def _response(reply: Reply, schema_of: _Schemas) -> dict[str, Any]:
    response: dict[str, Any] = {"description": reply.description}
    if reply.body is not None:
        response["content"] = {"application/json": {"schema": schema_of(reply.body)}}
    if reply.headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in reply.headers.items()
        }
    return response


def _security_schemes(viewer_cookie: str) -> dict[str, Any]:
    return {
        PRINCIPAL: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "EdDSA JWT signed by the principal's credential (gatewayctl token)",
        },
        VIEWER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "the viewer's IdP token"},
        VIEWER_COOKIE: {
            "type": "apiKey",
            "in": "cookie",
            "name": viewer_cookie,
            "description": "the same, as a cookie",
        },
        EDGE: {"type": "http", "scheme": "bearer", "description": "edge.token_file's token (or mutual TLS: edge.mtls)"},
    }
