"""The edge feed's documents: what nginx needs to apply the rules of docs/edge.md, full or since a version.

Pure: built from the state view (``gateway.state.view``) and the changes this
process has applied to it (``ChangeLog``), with no I/O. The version is the
change-feed position of the view, the same on every replica. A delta names
the keys and principals touched after ``since`` with their current state, and
the revocation tables whole when any media item or grant changed (they are
few: only revocations younger than ``signing.max_ttl`` are held). A ``since``
this process cannot answer from its change log gets the full state.

HMAC secrets are never in a document unless the caller passes them in
(``secrets``): the web layer does only over mutual TLS with
``edge.hmac_secrets`` on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.keys.material import b64url
from gateway.model import KeyAlgorithm, SigningKey
from gateway.state.view import StateView

# Kinds of change the edge's state depends on; the others (credentials, subjects) are skipped.
_KEY, _PRINCIPAL = "key", "principal"
_REVOCATIONS = frozenset({"media", "grant"})
EDGE_ALGORITHMS = (KeyAlgorithm.ED25519, KeyAlgorithm.HMAC_SHA256)


@dataclass
class ChangeLog:
    """The (seq, kind, ref) of the last ``capacity`` changes applied to the view since ``base`` (its load)."""

    base: int = 0
    capacity: int = 10_000
    entries: deque[tuple[int, str, str]] = field(default_factory=deque)

    def reset(self, seq: int) -> None:
        self.base = seq
        self.entries.clear()

    def add(self, seq: int, kind: str, ref: str) -> None:
        self.entries.append((seq, kind, ref))
        if len(self.entries) > self.capacity:
            self.base = self.entries.popleft()[0]

    def since(self, seq: int) -> list[tuple[int, str, str]] | None:
        """The changes after ``seq``; None when they are not all known here (before ``base``)."""
        if seq < self.base:
            return None
        return [entry for entry in self.entries if entry[0] > seq]


def key_entry(key: SigningKey, secret: bytes | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kid": key.kid,
        "algorithm": key.algorithm.value,
        "principal": key.principal_id,
        "not_after": key.not_after,
        "revoked": key.revoked_at is not None,
    }
    if key.algorithm is KeyAlgorithm.ED25519 and key.public_key is not None:
        entry["public"] = b64url(key.public_key)
    if secret is not None:
        entry["secret"] = b64url(secret)
    return entry


def _edge_key(key: SigningKey) -> bool:
    """Native keys only: a key known to a CDN by another id verifies that CDN's format, at the gateway."""
    return key.algorithm in EDGE_ALGORITHMS and not key.external_id


def revocations(view: StateView) -> dict[str, list[list[Any]]]:
    index = view.revocation_index()
    links = [[path, False, at] for path, at in index.paths.items()]
    links += [[path, True, at] for path, at in index.dirs.items()]
    grants = [[principal, path, False, at] for (principal, path), at in index.grant_paths.items()]
    grants += [[principal, path, True, at] for (principal, path), at in index.grant_dirs.items()]
    return {"links": links, "grants": grants}


@dataclass(frozen=True)
class Document:
    version: int
    full: bool
    keys: list[dict[str, Any]]
    principals: list[dict[str, Any]]
    revocations: dict[str, list[list[Any]]] | None

    def as_json(self, *, age: float, max_expiry_ahead: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": self.version, "full": self.full, "age": round(age, 3), "max_expiry_ahead": max_expiry_ahead,
            "keys": self.keys, "principals": self.principals,
        }  # fmt: skip
        if self.revocations is not None:
            body["revocations"] = self.revocations
        return body

    @property
    def empty(self) -> bool:
        return not self.full and not self.keys and not self.principals and self.revocations is None


def edge_keys(view: StateView, kids: Iterable[str] | None = None) -> list[SigningKey]:
    """The view's keys the edge can use (all, or those named), native ones only."""
    found = view.keys.values() if kids is None else (view.keys[k] for k in kids if k in view.keys)
    return [key for key in found if _edge_key(key)]


def document(view: StateView, log: ChangeLog, since: int, secrets: Mapping[str, bytes] | None = None) -> Document:
    """The state after ``since``: a delta when this process knows every change since, else the full state."""
    secrets = secrets or {}
    changes = log.since(since) if since > 0 else None
    if changes is None or since > view.seq:
        keys = edge_keys(view)
        principals: Iterable[str] = view.principals
        return Document(view.seq, True, [key_entry(k, secrets.get(k.kid)) for k in keys],
                        _principals(view, principals), revocations(view))  # fmt: skip
    kids = {ref for _, kind, ref in changes if kind == _KEY}
    pids = {ref for _, kind, ref in changes if kind == _PRINCIPAL}
    touched = any(kind in _REVOCATIONS for _, kind, _ in changes)
    keys = edge_keys(view, sorted(kids))
    return Document(view.seq, False, [key_entry(k, secrets.get(k.kid)) for k in keys],
                    _principals(view, sorted(pids)), revocations(view) if touched else None)  # fmt: skip


def _principals(view: StateView, ids: Iterable[str]) -> list[dict[str, Any]]:
    return [{"id": pid, "disabled": view.principals[pid].disabled} for pid in ids if pid in view.principals]
