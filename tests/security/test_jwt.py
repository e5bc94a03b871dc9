"""The JWT attack classes (../shared/reference), one test each, against the live app over HTTP.

Principal tokens are presented to POST /v1/sign, viewer tokens to the page URL
GET /m/m1/video. Every refusal is a 401 with the JSON error body and the exact
message that names what was wrong; none is a 500 or leaves a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import jwt
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.access.tokens import MAX_TOKEN_LENGTH
from gateway.model import Permission
from gateway.services import Services
from gateway.web.app import create_app
from tests.http_support import GatewayTestServer, dev_idp_key, hmac_jwt, principal_key, raw_jwt
from tests.support import World

BODY = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}


@pytest.fixture
async def web(world: World) -> World:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.principal("other", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")  # private, owned by alice
    return world


@pytest.fixture
async def live(services: Services, aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(GatewayTestServer(create_app(services, close_services=False)))


def _principal_token(world: World, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    credential_id, key = principal_key(world, "web")
    now = int(world.clock())
    payload = {"iss": "web", "sub": "web", "aud": world.services.config.api_audience, "iat": now, "exp": now + 600}
    payload.update(claims)
    head = {"alg": "EdDSA", "typ": "JWT", "kid": credential_id, **(header or {})}
    return raw_jwt(head, {k: v for k, v in payload.items() if v is not None}, key)


def _viewer_token(world: World, **claims: Any) -> str:
    config = world.services.config.viewer
    now = int(world.clock())
    payload = {"iss": config.issuer, "aud": config.audience, "sub": "alice", "iat": now, "exp": now + 600}
    payload.update(claims)
    return raw_jwt(
        {"alg": "EdDSA", "typ": "JWT"}, {k: v for k, v in payload.items() if v is not None}, dev_idp_key(world)
    )


async def _sign(client: TestClient, token: str) -> ClientResponse:
    return await client.post("/v1/sign", json=BODY, headers={"Authorization": f"Bearer {token}"})


async def _page(client: TestClient, token: str) -> ClientResponse:
    return await client.get("/m/m1/video", headers={"Authorization": f"Bearer {token}"}, allow_redirects=False)


async def _refused(response: ClientResponse, message: str) -> None:
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="media-gateway"'
    assert await response.json() == {"error": "unauthenticated", "message": message}


async def test_honest_tokens_are_accepted(live: TestClient, web: World) -> None:
    assert (await _sign(live, _principal_token(web))).status == 200
    assert (await _page(live, _viewer_token(web))).status == 302


async def test_alg_none(live: TestClient, web: World) -> None:
    credential_id, _ = principal_key(web, "web")
    now = int(web.clock())
    claims = {"iss": "web", "sub": "web", "aud": "media-gateway", "iat": now, "exp": now + 60}
    unsigned = raw_jwt({"alg": "none", "kid": credential_id}, claims, None)
    await _refused(await _sign(live, unsigned), "invalid token: algorithm not allowed")
    viewer = raw_jwt({"alg": "none"}, {**claims, "iss": web.services.config.viewer.issuer, "sub": "alice"}, None)
    await _refused(await _page(live, viewer), "invalid token: algorithm not allowed")


async def test_hs256_with_the_public_key_as_the_secret(live: TestClient, web: World) -> None:
    credential_id, key = principal_key(web, "web")
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = int(web.clock())
    claims = {"iss": "web", "sub": "web", "aud": "media-gateway", "iat": now, "exp": now + 60}
    forged = hmac_jwt({"alg": "HS256", "kid": credential_id}, claims, public)
    await _refused(await _sign(live, forged), "invalid token: algorithm not allowed")
    pem = web.services.config.dev_idp_key_path.with_suffix(".pub").read_bytes()
    viewer_claims = {**claims, "iss": web.services.config.viewer.issuer, "aud": web.services.config.viewer.audience}
    forged_viewer = hmac_jwt({"alg": "HS256"}, {**viewer_claims, "sub": "alice"}, pem)
    await _refused(await _page(live, forged_viewer), "invalid token: algorithm not allowed")


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "' OR '1'='1",
        "gwc_x'; DROP TABLE credentials; --",
        "gwc_\x1b[31mred",
        "gwc_" + "a" * 65,
    ],
    ids=["path", "sql", "sql-with-prefix", "escape", "over-long"],
)
async def test_kid_injection_never_reaches_a_lookup(live: TestClient, web: World, kid: str) -> None:
    await _refused(await _sign(live, _principal_token(web, header={"kid": kid})), "unknown or revoked credential")


async def test_kid_of_another_principal_does_not_lend_its_key(live: TestClient, web: World) -> None:
    others_credential, _ = principal_key(web, "other")
    token = _principal_token(web, header={"kid": others_credential}, iss="other", sub="other")
    await _refused(await _sign(live, token), "invalid token: bad signature")


async def test_kid_that_is_not_a_string(live: TestClient, web: World) -> None:
    await _refused(await _sign(live, _principal_token(web, header={"kid": 7})), "bearer token has no key id")


async def test_expired(live: TestClient, web: World) -> None:
    now = int(web.clock())
    await _refused(await _sign(live, _principal_token(web, iat=now - 700, exp=now - 31)), "token has expired")
    await _refused(await _page(live, _viewer_token(web, iat=now - 700, exp=now - 31)), "token has expired")


async def test_nbf_in_the_future(live: TestClient, web: World) -> None:
    now = int(web.clock())
    await _refused(await _sign(live, _principal_token(web, nbf=now + 31)), "token is not valid yet")
    await _refused(await _page(live, _viewer_token(web, nbf=now + 31)), "token is not valid yet")
    await _refused(await _page(live, _viewer_token(web, iat=now + 31)), "token is not valid yet")


async def test_exp_boundary_is_exact(live: TestClient, web: World) -> None:
    """30 s of skew are tolerated, not one instant more."""
    exp = int(web.clock()) + 60
    token, viewer = _principal_token(web, exp=exp), _viewer_token(web, exp=exp)
    web.clock.now = exp + 29.999
    assert (await _sign(live, token)).status == 200
    assert (await _page(live, viewer)).status == 302
    web.clock.now = exp + 30
    await _refused(await _sign(live, token), "token has expired")
    await _refused(await _page(live, viewer), "token has expired")


async def test_wrong_audience(live: TestClient, web: World) -> None:
    await _refused(await _sign(live, _principal_token(web, aud="another-service")), "invalid token: wrong audience")
    await _refused(await _page(live, _viewer_token(web, aud="another-app")), "invalid token: wrong audience")


async def test_wrong_issuer(live: TestClient, web: World) -> None:
    await _refused(await _sign(live, _principal_token(web, iss="other")), "invalid token: wrong issuer")
    await _refused(await _page(live, _viewer_token(web, iss="https://evil.example")), "invalid token: wrong issuer")


async def test_missing_sub(live: TestClient, web: World) -> None:
    await _refused(await _sign(live, _principal_token(web, sub=None)), "invalid token: no sub claim")
    await _refused(await _page(live, _viewer_token(web, sub=None)), "invalid token: no sub claim")


async def test_principal_sub_must_equal_iss(live: TestClient, web: World) -> None:
    token = _principal_token(web, sub="other")
    await _refused(await _sign(live, token), "token subject does not match its issuer")


async def test_oversize_token(live: TestClient, web: World) -> None:
    body = {**BODY, "viewer": None, "viewer_token": "a" * (MAX_TOKEN_LENGTH + 1)}
    response = await live.post("/v1/sign", json=body, headers={"Authorization": f"Bearer {_principal_token(web)}"})
    await _refused(response, f"token too large: more than {MAX_TOKEN_LENGTH} characters")


def _with_literal(token_claims: dict[str, Any], claim: str, literal: str) -> bytes:
    """The claims as JSON with one claim's value replaced by a literal no JSON library would write."""
    text = "{" + ", ".join(f'"{k}": {"@" if k == claim else json.dumps(v)}' for k, v in token_claims.items())
    return (text + "}").replace("@", literal).encode()


_NOT_JSON = {
    "NaN": "NaN is not a JSON number",
    "Infinity": "Infinity is not a JSON number",
    "-Infinity": "-Infinity is not a JSON number",
    "1e999": "1e999 does not fit a finite number",
}


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("literal", list(_NOT_JSON))
async def test_non_finite_time_claims(live: TestClient, web: World, claim: str, literal: str) -> None:
    """A NaN expiry fails every comparison, so it used to never expire."""
    credential_id, key = principal_key(web, "web")
    now = int(web.clock())
    claims = {"iss": "web", "sub": "web", "aud": "media-gateway", "iat": now, "exp": now + 600, "nbf": now}
    token = raw_jwt({"alg": "EdDSA", "kid": credential_id}, _with_literal(claims, claim, literal), key)
    await _refused(await _sign(live, token), f"malformed token: the payload is not strict JSON: {_NOT_JSON[literal]}")
    viewer_claims = {**claims, "iss": web.services.config.viewer.issuer, "aud": web.services.config.viewer.audience}
    viewer = raw_jwt(
        {"alg": "EdDSA"}, _with_literal({**viewer_claims, "sub": "alice"}, claim, literal), dev_idp_key(web)
    )
    await _refused(await _page(live, viewer), f"malformed token: the payload is not strict JSON: {_NOT_JSON[literal]}")


@pytest.mark.parametrize("value", [10**400, "2027-01-01", True, [1]], ids=["beyond-float", "string", "bool", "list"])
async def test_time_claims_must_be_finite_numbers(live: TestClient, web: World, value: Any) -> None:
    credential_id, key = principal_key(web, "web")
    now = int(web.clock())
    claims = {"iss": "web", "sub": "web", "aud": "media-gateway", "iat": now, "exp": value}
    token = raw_jwt({"alg": "EdDSA", "kid": credential_id}, claims, key)
    await _refused(await _sign(live, token), "invalid token: exp must be a finite number of seconds")


async def test_duplicate_claims(live: TestClient, web: World) -> None:
    """Parsers disagree on which duplicate wins; a token that two parsers can read two ways is refused."""
    credential_id, key = principal_key(web, "web")
    now = int(web.clock())
    payload = (
        f'{{"iss": "web", "sub": "web", "aud": "media-gateway", "iat": {now}, "exp": {now - 3600}, "exp": {now + 600}}}'
    )
    token = raw_jwt({"alg": "EdDSA", "kid": credential_id}, payload.encode(), key)
    await _refused(await _sign(live, token), "malformed token: the payload is not strict JSON: duplicate key 'exp'")
    header = f'{{"alg": "none", "alg": "EdDSA", "kid": "{credential_id}"}}'.encode()
    token = raw_jwt(header, {"iss": "web", "sub": "web", "aud": "media-gateway", "iat": now, "exp": now + 60}, key)
    await _refused(await _sign(live, token), "malformed token: the header is not strict JSON: duplicate key 'alg'")


@pytest.mark.parametrize(
    ("alg", "key"),
    [("RS256", rsa.generate_private_key(65537, 2048)), ("ES256", ec.generate_private_key(ec.SECP256R1()))],
    ids=["RS256", "ES256"],
)
async def test_allowed_alg_with_the_wrong_key_type(
    live: TestClient, web: World, caplog: pytest.LogCaptureFixture, alg: str, key: Any
) -> None:
    """The IdP's key is Ed25519; an outsider's RS256/ES256 token used to be a 500 with a traceback per request."""
    config = web.services.config.viewer
    now = int(web.clock())
    claims = {"iss": config.issuer, "aud": config.audience, "sub": "alice", "iat": now, "exp": now + 60}
    with caplog.at_level(logging.DEBUG):
        response = await _page(live, jwt.encode(claims, key, algorithm=alg))
    await _refused(response, "invalid token: the key does not fit the token's algorithm")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
