"""Who is calling: principals by their credential-signed JWT, viewers by their IdP's JWT."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.access import tokens
from gateway.access.tokens import VerifyKey
from gateway.config import Config
from gateway.errors import ConfigError, Unauthenticated, Unavailable
from gateway.model import Principal, Viewer
from gateway.store.base import Store


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
    def __init__(self, store: Store, config: Config, viewer_keys: ViewerKeys) -> None:
        self._store = store
        self._config = config
        self._viewer_keys = viewer_keys

    async def principal(self, token: str, now: float) -> Principal:
        credential = await self._store.principals.credential(tokens.unverified_key_id(token))
        if credential is None or credential.revoked_at is not None:
            raise Unauthenticated("unknown or revoked credential")
        tokens.principal_claims(
            token,
            credential.principal_id,
            credential.public_key,
            self._config.api_audience,
            now,
            self._config.max_token_lifetime,
        )
        principal = await self._store.principals.get(credential.principal_id)
        if principal is None or principal.disabled:
            raise Unauthenticated("principal is disabled")
        return principal

    async def viewer(self, token: str, now: float) -> Viewer:
        viewer = self._config.viewer
        if not viewer.issuer:
            raise Unauthenticated("viewer tokens are not configured (viewer.issuer)")
        return tokens.viewer_from_token(
            token,
            await self._viewer_keys.key_for(token),
            algorithms=viewer.algorithms,
            issuer=viewer.issuer,
            audience=viewer.audience,
            workspaces_claim=viewer.workspaces_claim,
            now=now,
        )
