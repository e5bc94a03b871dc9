"""Signing-key material: generation, signing and verification primitives.

The private half only ever exists sealed (see ``gateway.sealing``) except in
memory while the gateway signs with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.model import CREDENTIAL_ID_PREFIX, KEY_ID_PREFIX, KeyAlgorithm

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_id(prefix: str, length: int = 20) -> str:
    """A random id with a recognisable prefix, so leaked ids can be found by scanning."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_key_id() -> str:
    return new_id(KEY_ID_PREFIX)


def new_credential_id() -> str:
    return new_id(CREDENTIAL_ID_PREFIX)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url; raises ValueError on anything else."""
    if not text or "=" in text or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


@dataclass(frozen=True, repr=False)
class KeyMaterial:
    """What a dialect needs to sign or verify: the secret is absent for verify-only keys."""

    kid: str
    algorithm: KeyAlgorithm
    public: bytes | None
    secret: bytes | None

    def __repr__(self) -> str:
        return f"KeyMaterial(kid={self.kid!r}, algorithm={self.algorithm.value!r})"

    def sign(self, message: bytes) -> bytes:
        if self.secret is None:
            raise ValueError(f"key {self.kid} has no private material here")
        if self.algorithm is KeyAlgorithm.ED25519:
            return Ed25519PrivateKey.from_private_bytes(self.secret).sign(message)
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.algorithm is KeyAlgorithm.ED25519:
            if self.public is None:
                return False
            try:
                Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
            except InvalidSignature:
                return False
            return True
        if self.secret is None:
            return False
        expected = hmac.new(self.secret, message, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)


def generate_secret(algorithm: KeyAlgorithm) -> tuple[bytes, bytes | None]:
    """(secret, public): an Ed25519 seed and its public key, or a 256-bit HMAC secret."""
    if algorithm is KeyAlgorithm.ED25519:
        private = Ed25519PrivateKey.generate()
        return private.private_bytes_raw(), ed25519_public(private.private_bytes_raw())
    return secrets.token_bytes(32), None


def ed25519_public(seed: bytes) -> bytes:
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)
