"""Health, readiness and the public signing keys."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import StateStale
from gateway.keys.material import b64url
from gateway.model import KeyAlgorithm, KeyState, Principal
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


def _signs(principal: Principal | None) -> bool:
    """A disabled principal's keys verify nothing at the gateway: offline verifiers must not trust them either."""
    return principal is not None and not principal.disabled


async def jwks(request: web.Request) -> web.Response:
    """Active Ed25519 URL-signing keys of enabled principals, so anyone can verify native URLs offline."""
    services = request.app[SERVICES]
    now = services.clock()
    view = services.state.view
    keys = [
        Jwk(kty="OKP", crv="Ed25519", x=b64url(k.public_key), kid=k.kid, use="sig", alg="EdDSA")
        for k in view.keys.values()
        if k.algorithm is KeyAlgorithm.ED25519
        and k.public_key
        and k.state(now) is KeyState.ACTIVE
        and _signs(view.principals.get(k.principal_id))
    ]
    return json_response(Jwks(keys=keys), headers={"Cache-Control": "max-age=60"})
