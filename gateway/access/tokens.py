"""JWTs: principals' API tokens and viewers' identity tokens.

pyjwt checks signatures, the algorithm allow-list, ``aud`` and ``iss``; time
claims are checked here against an explicit ``now`` so the core never reads
the clock. ``exp`` and ``iat`` are always required.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gateway.errors import Unauthenticated
from gateway.model import CREDENTIAL_ID_PREFIX, Viewer, check_name

# The public key types viewer tokens may be signed with (no shared secrets).
VerifyKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
PRINCIPAL_ALGORITHMS = ["EdDSA"]
_LEEWAY = 30  # seconds of clock skew tolerated between caller and gateway
_DECODE_OPTIONS: Any = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "require": ["exp", "iat"],
}


def unverified_key_id(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("malformed bearer token") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated("bearer token has no key id")
    return kid


def _decode(
    token: str,
    key: VerifyKey,
    algorithms: Sequence[str],
    audience: str,
    issuer: str | None,
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=list(algorithms),
            audience=audience,
            issuer=issuer,
            options=_DECODE_OPTIONS,
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None
    return claims


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"invalid token: {name} must be a number")
    return float(value)


def check_times(claims: dict[str, Any], now: float, max_lifetime: float | None) -> None:
    expires, issued = _number(claims, "exp"), _number(claims, "iat")
    if now >= expires + _LEEWAY:
        raise Unauthenticated("token has expired")
    if issued > now + _LEEWAY or ("nbf" in claims and _number(claims, "nbf") > now + _LEEWAY):
        raise Unauthenticated("token is not valid yet")
    if max_lifetime is not None and expires - issued > max_lifetime:
        raise Unauthenticated(f"token lifetime exceeds {int(max_lifetime)} seconds")


def principal_claims(
    token: str,
    principal_id: str,
    public_key: bytes,
    audience: str,
    now: float,
    max_lifetime: float,
) -> dict[str, Any]:
    """Claims of a principal's token signed by its credential (iss = sub = principal id)."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    claims = _decode(token, key, PRINCIPAL_ALGORITHMS, audience, principal_id)
    if claims.get("sub") != principal_id:
        raise Unauthenticated("token subject does not match its issuer")
    check_times(claims, now, max_lifetime)
    return claims


def mint_principal_token(
    *,
    credential_id: str,
    principal_id: str,
    private_seed: bytes,
    audience: str,
    now: float,
    ttl: int,
) -> str:
    if not credential_id.startswith(CREDENTIAL_ID_PREFIX):
        raise ValueError("not a credential id")
    claims = {
        "iss": principal_id,
        "sub": principal_id,
        "aud": audience,
        "iat": int(now),
        "exp": int(now) + ttl,
        "jti": secrets.token_urlsafe(12),
    }
    key = Ed25519PrivateKey.from_private_bytes(private_seed)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": credential_id})


def viewer_from_token(
    token: str,
    key: VerifyKey,
    *,
    algorithms: Sequence[str],
    issuer: str,
    audience: str,
    workspaces_claim: str,
    now: float,
) -> Viewer:
    claims = _decode(token, key, algorithms, audience, issuer)
    check_times(claims, now, None)
    workspaces = claims.get(workspaces_claim, [])
    if not isinstance(workspaces, list):
        raise Unauthenticated(f"invalid token: {workspaces_claim} must be a list")
    try:
        subject = check_name(claims.get("sub"), "viewer subject")
        spaces = frozenset(check_name(w, "workspace") for w in workspaces)
    except Exception as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None
    return Viewer(subject=subject, workspaces=spaces, source="token")


def mint_viewer_token(
    *,
    private_key: Ed25519PrivateKey,
    issuer: str,
    audience: str,
    subject: str,
    workspaces: Sequence[str],
    workspaces_claim: str,
    now: float,
    ttl: int,
) -> str:
    """Development identity provider only: real viewers' tokens come from the application's IdP."""
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        workspaces_claim: list(workspaces),
        "iat": int(now),
        "exp": int(now) + ttl,
    }
    return jwt.encode(claims, private_key, algorithm="EdDSA", headers={"kid": "dev-idp"})
