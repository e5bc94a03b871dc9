"""Signing-key material: generation, signing and verification primitives.

The private half only ever exists sealed (see ``gateway.keys.sealing``) except in
memory while the gateway signs with it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_public_key,
)

from gateway.frozen import quick_init
from gateway.model import CREDENTIAL_ID_PREFIX, KEY_ID_PREFIX, KeyAlgorithm

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


@functools.lru_cache(maxsize=1024)
def ed25519_private(seed: bytes) -> Ed25519PrivateKey:
    """Parsed once per seed: parsing costs as much as signing."""
    return Ed25519PrivateKey.from_private_bytes(seed)


# Ed25519 signatures are deterministic (RFC 8032, 5.1.6): one seed and one message always give the same 64
# bytes. With the cache window (gateway.signing.issuance, on by default) every request for one item in one
# window signs the very same message, so its signature is remembered instead of recomputed (about 30 µs each).
# Bounded: emptied when full, like the other per-process memos.
_SIGNATURES: dict[tuple[bytes, bytes], bytes] = {}
_MAX_SIGNATURES = 2048


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """``ed25519_private(seed).sign(message)``, remembered (the same bytes: the algorithm is deterministic)."""
    memo = (seed, message)
    signature = _SIGNATURES.get(memo)
    if signature is None:
        if len(_SIGNATURES) >= _MAX_SIGNATURES:
            _SIGNATURES.clear()
        signature = _SIGNATURES[memo] = ed25519_private(seed).sign(message)
    return signature


@functools.lru_cache(maxsize=1024)
def ed25519_public_key(public: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public)


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


@quick_init
@dataclass(frozen=True, repr=False)
class KeyMaterial:
    """What a dialect needs to sign or verify: the secret is absent for verify-only keys."""

    kid: str
    algorithm: KeyAlgorithm
    public: bytes | None
    secret: bytes | None

    def __repr__(self) -> str:
        return f"KeyMaterial(kid={self.kid!r}, algorithm={self.algorithm.value!r})"

    def require_secret(self) -> bytes:
        if self.secret is None:
            raise ValueError(f"key {self.kid} has no private material here")
        return self.secret

    def sign(self, message: bytes) -> bytes:
        """Ed25519 or HMAC-SHA256 (the native format's primitives)."""
        if self.algorithm is KeyAlgorithm.ED25519:
            return ed25519_sign(self.require_secret(), message)
        if self.algorithm is KeyAlgorithm.HMAC_SHA256:
            return hmac.new(self.require_secret(), message, hashlib.sha256).digest()
        raise ValueError(f"{self.algorithm.value} keys do not sign native URLs")

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.algorithm not in (KeyAlgorithm.ED25519, KeyAlgorithm.HMAC_SHA256):
            return False
        if self.algorithm is KeyAlgorithm.ED25519:
            if self.public is None:
                return False
            try:
                ed25519_public_key(self.public).verify(signature, message)
            except InvalidSignature:
                return False
            return True
        if self.secret is None:
            return False
        expected = hmac.new(self.secret, message, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)


def generate_secret(algorithm: KeyAlgorithm) -> tuple[bytes, bytes | None]:
    """(secret, public) for a new key.

    Ed25519: the 32-byte seed and raw public key. RSA-2048 and ECDSA P-256:
    PKCS#8 DER private key and SubjectPublicKeyInfo DER. HMAC-SHA1 (Cloud CDN):
    16 random bytes. HMAC-SHA256 and shared secrets: 32 random bytes.
    """
    if algorithm is KeyAlgorithm.ED25519:
        private = Ed25519PrivateKey.generate()
        return private.private_bytes_raw(), ed25519_public(private.private_bytes_raw())
    if algorithm is KeyAlgorithm.RSA_2048:
        return _der_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if algorithm is KeyAlgorithm.ECDSA_P256:
        return _der_pair(ec.generate_private_key(ec.SECP256R1()))
    if algorithm is KeyAlgorithm.HMAC_SHA1:
        return secrets.token_bytes(16), None
    return secrets.token_bytes(32), None


def _der_pair(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    secret = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    public = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return secret, public


def public_pem(algorithm: KeyAlgorithm, public: bytes) -> str | None:
    """The public key as PEM (to upload to CloudFront, say), when the key has one."""
    if algorithm in (KeyAlgorithm.RSA_2048, KeyAlgorithm.ECDSA_P256):
        key = load_der_public_key(public)
    elif algorithm is KeyAlgorithm.ED25519:
        key = Ed25519PublicKey.from_public_bytes(public)
    else:
        return None
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def ed25519_public(seed: bytes) -> bytes:
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)
