"""Envelope encryption of private key material under a master key.

``MasterKey`` is the interface; ``LocalMasterKey`` keeps a 256-bit AES-GCM key
in a 0600 file (the embedded default). A KMS-held master key implements the
same two coroutines and never reveals its key.
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

_VERSION = b"\x01"
_NONCE_BYTES = 12


class MasterKey(Protocol):
    @property
    def key_id(self) -> str: ...

    async def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    async def unseal(self, sealed: bytes, context: bytes) -> bytes: ...


class LocalMasterKey:
    """AES-256-GCM under a key read from a local file; ``context`` is bound as AAD."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the master key must be 32 bytes")
        self._aead = AESGCM(key)
        self._key_id = "local:" + hashlib.sha256(key).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._key_id

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

    async def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    async def unseal(self, sealed: bytes, context: bytes) -> bytes:
        if not sealed.startswith(_VERSION) or len(sealed) < 1 + _NONCE_BYTES + 16:
            raise StoreUnavailable("sealed key material is malformed")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], context)
        except InvalidTag:
            raise StoreUnavailable("sealed key material does not open under this master key") from None
