"""Signed checkpoints of the audit log's Merkle tree, with a key of their own.

A checkpoint says "the log had N records and this tree head" at a time, signed
with the log-signing key (never a URL-signing key). Its body is a fixed text,
so any Ed25519 implementation can check it:

    media-gateway/audit-log
    <tree size>
    <base64 tree head>
    <unix time>
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from gateway.errors import ConfigError, InvalidInput
from gateway.store.base import Checkpoint
from gateway.store.files import create_private, replace_private

ORIGIN = "media-gateway/audit-log"


def body(tree_size: int, root: bytes, time: float) -> bytes:
    return f"{ORIGIN}\n{tree_size}\n{base64.b64encode(root).decode()}\n{int(time)}\n".encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "log:" + hashlib.sha256(raw).hexdigest()[:16]


def signature_ok(checkpoint: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> bool:
    public = keys.get(checkpoint.key_id)
    if public is None:
        return False
    try:
        public.verify(checkpoint.signature, body(checkpoint.tree_size, checkpoint.root, checkpoint.time))
    except InvalidSignature:
        return False
    return True


class LogSigner:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    def sign(self, tree_size: int, root: bytes, time: float) -> Checkpoint:
        time = float(int(time))
        signature = self._private.sign(body(tree_size, root, time))
        return Checkpoint(tree_size, time, root, self.key_id, signature)

    @classmethod
    def load(cls, path: Path) -> LogSigner:
        try:
            key = load_pem_private_key(path.read_bytes(), None)
        except FileNotFoundError:
            raise ConfigError(f"log-signing key {path} is missing: run 'gatewayctl init'") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 private key")
        return cls(key)

    @staticmethod
    def create(path: Path) -> bool:
        """A new log-signing key (0600) and its public half beside it; False if one exists."""
        if path.exists():
            return False
        key = Ed25519PrivateKey.generate()
        create_private(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        # Owner-only like every file in keys/: copies made for verifiers off-box are theirs to share.
        replace_private(path.with_suffix(".pub"), public_pem)
        return True


def load_public_keys(paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    """The log-signing public keys in ``paths``. A file that cannot be used is an error naming it:
    skipped, it would make every checkpoint it signed look forged."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            public = load_pem_public_key(path.read_bytes())
        except OSError as exc:
            raise InvalidInput(f"cannot read log-signing public key {path}: {exc.strerror}") from None
        except ValueError:
            raise InvalidInput(f"{path} is not a PEM public key") from None
        if not isinstance(public, Ed25519PublicKey):
            raise InvalidInput(f"{path} is not an Ed25519 public key (the log-signing key's .pub)")
        keys[key_id(public)] = public
    return keys
