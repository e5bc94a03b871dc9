"""Health, readiness and the public signing keys."""

from __future__ import annotations

from aiohttp import web

from gateway.keys.material import b64url
from gateway.model import KeyAlgorithm, KeyState
from gateway.web.appkeys import SERVICES


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    await request.app[SERVICES].store.ping()
    return web.json_response({"status": "ready"})


async def jwks(request: web.Request) -> web.Response:
    """Active Ed25519 URL-signing keys, so anyone can verify native URLs offline."""
    services = request.app[SERVICES]
    now = services.clock()
    keys = [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(k.public_key),
            "kid": k.kid,
            "use": "sig",
            "alg": "EdDSA",
        }
        for k in await services.store.keys.all()
        if k.algorithm is KeyAlgorithm.ED25519 and k.public_key and k.state(now) is KeyState.ACTIVE
    ]
    return web.json_response({"keys": keys}, headers={"Cache-Control": "max-age=60"})
