"""JWTs: principals' API tokens and viewers' identity tokens.

Every token is read the same way, and everything that can be wrong with one
is a 401 (``Unauthenticated``) whose message says what, never a 500:

1. shape: at most ``MAX_TOKEN_LENGTH`` characters, three base64url segments;
2. header and payload are strict JSON (``gateway.strictjson``): no NaN,
   Infinity or 1e999, no duplicate names, so no claim can be read two ways;
3. the algorithm is on the caller's allow-list and the key is of its family
   (an RS256 token against an Ed25519 key is refused here: pyjwt would raise
   a TypeError); pyjwt then checks the signature, ``aud`` and ``iss``;
4. time claims must be finite numbers, checked here against an explicit
   ``now`` so the core never reads the clock. ``exp``, ``iat`` and ``sub`` are
   always required.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gateway import strictjson
from gateway.errors import InvalidInput, Unauthenticated
from gateway.model import CREDENTIAL_ID_PREFIX, Viewer, check_name

# The public key types viewer tokens may be signed with (no shared secrets).
VerifyKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
PRINCIPAL_ALGORITHMS = ["EdDSA"]
# Identity providers that pack many groups into a token reach a few KiB; 8 KiB is the usual header limit.
MAX_TOKEN_LENGTH = 8192
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")  # JWS compact form, unpadded
_CREDENTIAL_ID = re.compile(re.escape(CREDENTIAL_ID_PREFIX) + r"[A-Za-z0-9]{1,64}")
# The key family each algorithm needs, by the algorithm's first two letters.
_FAMILIES: dict[str, tuple[type, ...]] = {
    "RS": (RSAPublicKey,),
    "PS": (RSAPublicKey,),
    "ES": (EllipticCurvePublicKey,),
    "Ed": (Ed25519PublicKey, Ed448PublicKey),
}
_LEEWAY = 30  # seconds of clock skew tolerated between caller and gateway
_MAX_TIME = 2**53  # seconds; past this a float no longer holds whole seconds (and a big int cannot become one)
_DECODE_OPTIONS: Any = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "require": ["exp", "iat", "sub"],
}
# pyjwt's refusals in the gateway's words; the first class that matches wins (a bad signature is a DecodeError).
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "invalid token: bad signature"),
    (jwt.InvalidAudienceError, "invalid token: wrong audience"),
    (jwt.InvalidIssuerError, "invalid token: wrong issuer"),
    (jwt.InvalidAlgorithmError, "invalid token: algorithm not allowed"),
    (jwt.InvalidKeyError, "invalid token: the key does not fit the token's algorithm"),
)


_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")


class _SegmentJWS(jwt.PyJWS):
    """pyjwt's segment decoding with its alphabet check as one regular expression.

    pyjwt 2.15 tests each character of each segment in a Python loop (about a third of a principal token's
    verification, more than the Ed25519 check); the rules are the same: at most two '=' and only where they
    pad, the base64url alphabet, and the canonical encoding of what was decoded.
    """

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if padding > 2 or (padding and len(segment) % 4) or len(stripped) % 4 == 1 or not _SEGMENT.fullmatch(stripped):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class _StrictJWT(jwt.PyJWT):
    """pyjwt reading the payload with strictjson, through its documented hook for payload decoding."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _SegmentJWS(options=self._get_sig_options())

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        return _json_object(decoded["payload"], "payload", jwt.DecodeError)


_JWT = _StrictJWT()


def _json_object(raw: bytes, what: str, error: type[Exception]) -> dict[str, Any]:
    try:
        value = strictjson.loads(raw)
    except strictjson.StrictJSONError as exc:
        raise error(f"the {what} is not strict JSON: {exc}") from None
    if not isinstance(value, dict):
        raise error(f"the {what} is not a JSON object")
    return value


def unverified_header(token: str) -> dict[str, Any]:
    """The header, read strictly before anything trusts it (to choose a key, say).

    pyjwt reads the header again with ``json.loads`` (it has no hook for that);
    whatever strict JSON accepts, ``json.loads`` reads the same way.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated(f"token too large: more than {MAX_TOKEN_LENGTH} characters")
    if not _COMPACT.fullmatch(token):
        raise Unauthenticated("malformed token: not three base64url segments")
    segment = token.partition(".")[0]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        raise Unauthenticated("malformed token: the header is not base64url") from None
    try:
        return _json_object(raw, "header", ValueError)
    except ValueError as exc:
        raise Unauthenticated(f"malformed token: {exc}") from None


def unverified_key_id(token: str) -> str:
    """The principal credential a token names; anything but a credential id is refused before any lookup."""
    return key_id_of(unverified_header(token))


def key_id_of(header: dict[str, Any]) -> str:
    """``unverified_key_id`` from a header already read with ``unverified_header``."""
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated("bearer token has no key id")
    if not _CREDENTIAL_ID.fullmatch(kid):
        raise Unauthenticated("unknown or revoked credential")
    return kid


def _check_algorithm(header: dict[str, Any], key: VerifyKey, algorithms: Sequence[str]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise Unauthenticated("invalid token: algorithm not allowed")
    if not isinstance(key, _FAMILIES.get(alg[:2], ())):
        raise Unauthenticated("invalid token: the key does not fit the token's algorithm")
    return alg


def _refusal(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"invalid token: no {_quoted(exc.claim)} claim"
    for kind, message in _REFUSALS:
        if isinstance(exc, kind):
            return message
    if isinstance(exc, jwt.DecodeError):
        return f"malformed token: {_quoted(str(exc))}"
    return f"invalid token: {_quoted(str(exc))}"


def _quoted(text: str) -> str:
    """pyjwt's words can quote the token (an unknown "crit" name): control characters escaped, length bounded."""
    return repr(text)[1:-1][:200]


def _decode(
    token: str,
    key: VerifyKey,
    algorithms: Sequence[str],
    audience: str,
    issuer: str | None,
    header: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``header``: the token's, when the caller has already read it with ``unverified_header``."""
    alg = _check_algorithm(unverified_header(token) if header is None else header, key, algorithms)
    try:
        claims: dict[str, Any] = _JWT.decode(
            token, key=key, algorithms=[alg], audience=audience, issuer=issuer, options=_DECODE_OPTIONS
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(_refusal(exc)) from None
    return claims


def _seconds(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    # NaN fails every comparison, so a NaN expiry would never expire: only a finite, bounded number passes.
    if isinstance(value, bool) or not isinstance(value, int | float) or not -_MAX_TIME < value < _MAX_TIME:
        raise Unauthenticated(f"invalid token: {name} must be a finite number of seconds")
    return float(value)


def check_times(claims: dict[str, Any], now: float, max_lifetime: float | None) -> None:
    expires, issued = _seconds(claims, "exp"), _seconds(claims, "iat")
    not_before = _seconds(claims, "nbf") if "nbf" in claims else issued
    if now >= expires + _LEEWAY:
        raise Unauthenticated("token has expired")
    if issued > now + _LEEWAY or not_before > now + _LEEWAY:
        raise Unauthenticated("token is not valid yet")
    if max_lifetime is not None and expires - issued > max_lifetime:
        raise Unauthenticated(f"token lifetime exceeds {int(max_lifetime)} seconds")


def valid_window(claims: dict[str, Any]) -> tuple[float, float]:
    """[from, until): when ``check_times`` accepts these (already checked) claims, leeway included."""
    issued = _seconds(claims, "iat")
    not_before = max(issued, _seconds(claims, "nbf")) if "nbf" in claims else issued
    return not_before - _LEEWAY, _seconds(claims, "exp") + _LEEWAY


@functools.lru_cache(maxsize=4096)
def _credential_key(public_key: bytes) -> Ed25519PublicKey:
    """One parsed key object per credential: parsing and validating the point is paid once, not per token."""
    return Ed25519PublicKey.from_public_bytes(public_key)


def principal_claims(
    token: str,
    principal_id: str,
    public_key: bytes,
    audience: str,
    now: float,
    max_lifetime: float,
    header: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Claims of a principal's token signed by its credential (iss = sub = principal id).

    ``header``: the token's, when already read with ``unverified_header`` (to find the credential).
    """
    claims = _decode(token, _credential_key(public_key), PRINCIPAL_ALGORITHMS, audience, principal_id, header)
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


def viewer_claims(
    token: str,
    key: VerifyKey,
    *,
    algorithms: Sequence[str],
    issuer: str,
    audience: str,
    now: float,
) -> dict[str, Any]:
    claims = _decode(token, key, algorithms, audience, issuer)
    check_times(claims, now, None)
    return claims


def viewer_of(claims: dict[str, Any], workspaces_claim: str) -> Viewer:
    workspaces = claims.get(workspaces_claim, [])
    if not isinstance(workspaces, list):
        raise Unauthenticated(f"invalid token: {workspaces_claim} must be a list")
    try:
        subject = check_name(claims.get("sub"), "viewer subject")
        spaces = frozenset(check_name(w, "workspace") for w in workspaces)
    except InvalidInput as exc:
        raise Unauthenticated(f"invalid token: {exc.message}") from None
    return Viewer(subject=subject, workspaces=spaces, source="token")


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
    claims = viewer_claims(token, key, algorithms=algorithms, issuer=issuer, audience=audience, now=now)
    return viewer_of(claims, workspaces_claim)


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
