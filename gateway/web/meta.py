"""Health, readiness and the public signing keys."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import StateStale
from gateway.keys.material import b64url
from gateway.model import KeyAlgorithm, KeyState
from gateway.web.appkeys import OPENAPI, SERVICES
from gateway.web.middleware import json_response
from gateway.web.schemas import Jwk, Jwks, Status


async def healthz(request: web.Request) -> web.Response:
    return json_response(Status(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """Ready while the store answers and the state view is current (a stale replica leaves the rotation)."""
    services = request.app[SERVICES]
    if not services.state.current():
        raise StateStale(f"the state view was last proved current {services.state.age():.1f} s ago")
    await services.store.ping()
    return json_response(Status(status="ready"))


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json", charset="utf-8")


async def jwks(request: web.Request) -> web.Response:
    """Active Ed25519 URL-signing keys, so anyone can verify native URLs offline."""
    services = request.app[SERVICES]
    now = services.clock()
    keys = [
        Jwk(kty="OKP", crv="Ed25519", x=b64url(k.public_key), kid=k.kid, use="sig", alg="EdDSA")
        for k in services.state.view.keys.values()
        if k.algorithm is KeyAlgorithm.ED25519 and k.public_key and k.state(now) is KeyState.ACTIVE
    ]
    return json_response(Jwks(keys=keys), headers={"Cache-Control": "max-age=60"})
