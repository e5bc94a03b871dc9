"""Envelope encryption of secrets under a master key, and the sealed envelope's format.

``MasterKey`` is the interface. Both implementations hold a 256-bit AES-GCM
key in memory and bind the caller's ``context`` as AAD: ``LocalMasterKey``
reads it from a 0600 file (the embedded default); the KMS master key
(``gateway.keys.kms``) is a data key that AWS KMS unwrapped at start.

A sealed blob names the master key that sealed it, so several master keys
can coexist while secrets move from one to another (``gatewayctl master-key
rewrap``) and a running process opens either (``gateway.keys.masters``):

    v2: 0x02 | len(key_id) (1 byte) | key_id (ASCII) | nonce (12) | AES-GCM ciphertext + tag
    v1: 0x01 | nonce (12) | ciphertext + tag      (written by the local key before v2; still opened)
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigError, StoreUnavailable

_V1 = 0x01
_V2 = 0x02
_NONCE_BYTES = 12
_TAG_BYTES = 16
LEGACY = "local"  # what sealed_by() answers for a v1 blob: only the local master key ever wrote them


class MasterKey(Protocol):
    @property
    def key_id(self) -> str: ...

    async def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    async def unseal(self, sealed: bytes, context: bytes) -> bytes: ...


def sealed_by(sealed: bytes) -> str:
    """The id of the master key that sealed ``sealed`` (``LEGACY`` for a v1 blob)."""
    if sealed[:1] == bytes([_V1]):
        return LEGACY
    if sealed[:1] == bytes([_V2]) and len(sealed) >= 2 and len(sealed) > 2 + sealed[1]:
        key_id = sealed[2 : 2 + sealed[1]]
        if key_id and key_id.isascii():
            return key_id.decode("ascii")
    raise StoreUnavailable("sealed key material is malformed")


def _body(sealed: bytes) -> bytes:
    """Nonce, ciphertext and tag: what follows the header."""
    start = 1 if sealed[0] == _V1 else 2 + sealed[1]
    body = sealed[start:]
    if len(body) < _NONCE_BYTES + _TAG_BYTES:
        raise StoreUnavailable("sealed key material is malformed")
    return body


class AesGcmMasterKey:
    """AES-256-GCM under a key held in memory; ``context`` is bound as AAD, the header names the key."""

    def __init__(self, key: bytes, key_id: str, *, opens_legacy: bool = False) -> None:
        if len(key) != 32:
            raise ConfigError("a master key must be 32 bytes")
        if not key_id.isascii() or not 0 < len(key_id) < 256:
            raise ValueError("a master key id is 1-255 ASCII characters")
        self._aead = AESGCM(key)
        self._key_id = key_id
        self._header = bytes([_V2, len(key_id)]) + key_id.encode("ascii")
        self._opens_legacy = opens_legacy

    @property
    def key_id(self) -> str:
        return self._key_id

    async def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return self._header + nonce + self._aead.encrypt(nonce, plaintext, context)

    async def unseal(self, sealed: bytes, context: bytes) -> bytes:
        owner = sealed_by(sealed)
        if owner != self._key_id and not (owner == LEGACY and self._opens_legacy):
            raise StoreUnavailable(f"sealed key material belongs to master key {owner}, not {self._key_id}")
        body = _body(sealed)
        try:
            return self._aead.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], context)
        except InvalidTag:
            raise StoreUnavailable("sealed key material does not open under this master key") from None


def fingerprint_id(kind: str, key: bytes) -> str:
    """A master key's id: its kind and a hash of the key, so the same key always has the same id."""
    return f"{kind}:{hashlib.sha256(key).hexdigest()[:16]}"


class LocalMasterKey(AesGcmMasterKey):
    """The master key in a local 0600 file; it also opens the v1 blobs written before key ids."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the master key must be 32 bytes")
        super().__init__(key, fingerprint_id("local", key), opens_legacy=True)

    @classmethod
    def load(cls, path: Path) -> LocalMasterKey:
        try:
            mode = path.stat().st_mode & 0o777
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"master key {path} is missing: run 'gatewayctl init'") from None
        if mode & 0o077:
            raise ConfigError(f"master key {path} is readable by others (mode {mode:o}); chmod 600")
        return cls(data)

    @staticmethod
    def create(path: Path) -> bool:
        """Write a new key with mode 0600 unless one exists; True when created."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        return True
