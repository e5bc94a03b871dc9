"""Health, readiness, JWKS, unknown routes and methods."""

from __future__ import annotations

import base64
import re

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm, Permission
from gateway.signing.dialects.base import Redemption
from gateway.signing.dialects.native import NativeDialect
from tests.support import ADMIN, World


async def test_health_and_readiness(client: TestClient) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    assert (await client.get("/readyz")).status == 200


async def test_readiness_fails_when_the_store_is_gone(client: TestClient, world: World) -> None:
    await world.services.store.close()
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["error"] == "unavailable"


async def test_jwks_publishes_active_ed25519_keys_that_verify_urls(client: TestClient, world: World) -> None:
    key = await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    hs = await world.principal("hs", key=KeyAlgorithm.HMAC_SHA256)
    await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    kids = {k["kid"] for k in jwks["keys"]}
    assert key is not None and hs is not None and key.kid in kids and hs.kid not in kids
    jwk = next(k for k in jwks["keys"] if k["kid"] == key.kid)
    raw = base64.urlsafe_b64decode(jwk["x"] + "==")
    Ed25519PublicKey.from_public_bytes(raw)
    material = KeyMaterial(key.kid, KeyAlgorithm.ED25519, raw, None)
    assert NativeDialect().verify(Redemption(url, world.clock(), None), material).key_id == key.kid
    await world.services.admin.revoke_key(ADMIN, key.kid, "gone", world.clock())
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert key.kid not in {k["kid"] for k in jwks["keys"]}


async def test_jwks_drops_the_keys_of_a_disabled_principal(client: TestClient, world: World) -> None:
    """Red team 2026-11-25: the gateway refused its URLs (principal-disabled), offline verifiers did not."""
    key = await world.principal("svc", Permission.SIGN)
    other = await world.principal("web", Permission.SIGN)
    assert key is not None and other is not None
    await world.services.admin.disable_principal(ADMIN, "svc", world.clock())
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {other.kid, *_pages_kids(world)}


def _pages_kids(world: World) -> set[str]:
    view = world.services.state.view
    return {k.kid for k in view.keys.values() if k.principal_id == "pages" and k.algorithm is KeyAlgorithm.ED25519}


async def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    missing = await client.get("/nope")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    wrong = await client.get("/v1/sign")
    assert wrong.status == 405 and (await wrong.json())["error"] == "method_not_allowed"


async def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert (await client.get("/healthz", headers={"X-Request-Id": "abc-123"})).headers["X-Request-Id"] == "abc-123"
    generated = (await client.get("/healthz", headers={"X-Request-Id": "bad id\u00e9"})).headers["X-Request-Id"]
    again = (await client.get("/healthz")).headers["X-Request-Id"]
    # a per-process random prefix and a counter: unique within and across processes
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", generated) and generated != again
    assert generated.split("-")[0] == again.split("-")[0]
