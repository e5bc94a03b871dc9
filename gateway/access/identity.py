"""Who is calling: principals by their credential-signed JWT, viewers by their IdP's JWT."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.access import tokens
from gateway.access.tokens import VerifyKey
from gateway.access.verified_tokens import VerifiedTokens
from gateway.config import Config
from gateway.errors import ConfigError, Unauthenticated, Unavailable
from gateway.model import Principal, Viewer
from gateway.state.sync import StateSync

# Bounds on remembered tokens: a few per backend for principals, one per signed-in viewer.
_PRINCIPAL_TOKENS = 10_000
_VIEWER_TOKENS = 100_000


class ViewerKeys(Protocol):
    async def key_for(self, token: str) -> VerifyKey: ...


class PemViewerKey:
    """One public key from a PEM file (also how the development IdP is trusted)."""

    def __init__(self, path: Path) -> None:
        try:
            key = load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"viewer.public_key_file: cannot load {path}: {exc}") from None
        if not isinstance(key, VerifyKey):
            raise ConfigError(f"viewer.public_key_file: {path} is not an RSA, EC or EdDSA public key")
        self._key: VerifyKey = key

    async def key_for(self, token: str) -> VerifyKey:
        return self._key


class JwksViewerKeys:
    """The IdP's JWKS, fetched and cached by pyjwt, off the event loop."""

    def __init__(self, url: str) -> None:
        self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)

    async def key_for(self, token: str) -> VerifyKey:
        tokens.unverified_header(token)  # shape and strict JSON first: pyjwt's own reading may raise anything
        try:
            signing_key = await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(f"identity provider keys unavailable: {exc}") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid viewer token: {exc}") from None
        key = signing_key.key
        if not isinstance(key, VerifyKey):
            raise Unauthenticated("the identity provider's key type is not accepted")
        return key


class NoViewerKeys:
    async def key_for(self, token: str) -> VerifyKey:
        raise Unauthenticated("viewer tokens are not configured (viewer.issuer)")


def viewer_keys_from(config: Config) -> ViewerKeys:
    viewer = config.viewer
    if viewer.jwks_url:
        return JwksViewerKeys(viewer.jwks_url)
    if viewer.public_key_file:
        path = Path(viewer.public_key_file)
        return PemViewerKey(path if path.is_absolute() else config.data_dir / path)
    return NoViewerKeys()


def bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a Bearer token is required")
    return token.strip()


class Identity:
    """Principals and viewers from their JWTs; each token's signature is checked once while it lasts
    (``VerifiedTokens``), and the credential's and principal's state on every request (the state view)."""

    def __init__(self, state: StateSync, config: Config, viewer_keys: ViewerKeys) -> None:
        self._state = state
        self._config = config
        self._viewer_keys = viewer_keys
        self.principal_tokens: VerifiedTokens[str] = VerifiedTokens(_PRINCIPAL_TOKENS)
        self.viewer_tokens: VerifiedTokens[Viewer] = VerifiedTokens(_VIEWER_TOKENS)

    async def principal(self, token: str, now: float) -> Principal:
        digest = VerifiedTokens.digest(token)
        credential_id = self.principal_tokens.get(digest, now) or self._verified_credential(token, digest, now)
        view = self._state.view
        credential = view.credentials.get(credential_id)
        if credential is None or credential.revoked_at is not None:
            raise Unauthenticated("unknown or revoked credential")
        principal = view.principals.get(credential.principal_id)
        if principal is None or principal.disabled:
            raise Unauthenticated("principal is disabled")
        return principal

    def _verified_credential(self, token: str, digest: bytes, now: float) -> str:
        header = tokens.unverified_header(token)  # read once: it names the credential, then checks the algorithm
        credential = self._state.view.credentials.get(tokens.key_id_of(header))
        if credential is None or credential.revoked_at is not None:
            raise Unauthenticated("unknown or revoked credential")
        claims = tokens.principal_claims(
            token,
            credential.principal_id,
            credential.public_key,
            self._config.api_audience,
            now,
            self._config.max_token_lifetime,
            header,
        )
        self.principal_tokens.put(digest, credential.id, *tokens.valid_window(claims))
        return credential.id

    async def viewer(self, token: str, now: float) -> Viewer:
        viewer = self._config.viewer
        if not viewer.issuer:
            raise Unauthenticated("viewer tokens are not configured (viewer.issuer)")
        digest = VerifiedTokens.digest(token)
        remembered = self.viewer_tokens.get(digest, now)
        if remembered is not None:
            return remembered
        claims = tokens.viewer_claims(
            token,
            await self._viewer_keys.key_for(token),
            algorithms=viewer.algorithms,
            issuer=viewer.issuer,
            audience=viewer.audience,
            now=now,
        )
        found = tokens.viewer_of(claims, viewer.workspaces_claim)
        self.viewer_tokens.put(digest, found, *tokens.valid_window(claims))
        return found
