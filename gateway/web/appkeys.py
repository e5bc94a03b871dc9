"""Typed application keys: everything handlers need, set once in ``create_app``."""

from __future__ import annotations

from aiohttp import web

from gateway.services import Services

SERVICES = web.AppKey("services", Services)
OPENAPI = web.AppKey("openapi", bytes)  # the encoded document, built once from the route table
