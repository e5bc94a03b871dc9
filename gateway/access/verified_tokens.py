"""Verified JWTs remembered until they expire, so a caller's token costs one signature check, not one per request.

Keyed by the SHA-256 of the token (the cache never holds a usable bearer
token), bounded (least recently used goes first). What is remembered is only
what the signature proved: who the token names and its time claims. Whether
that credential is still unrevoked and its principal still enabled is checked
on every use against the state view, so a revocation is honoured no later
than without the cache.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Remembered(Generic[T]):
    value: T
    # The token's own window, with the verifier's clock-skew leeway already applied.
    not_before: float
    not_after: float


class VerifiedTokens(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[bytes, Remembered[T]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, digest: bytes, now: float) -> T | None:
        """The remembered value while ``now`` lies in the token's window; None otherwise (verify it afresh)."""
        found = self._items.get(digest)
        if found is None or not found.not_before <= now < found.not_after:
            self.misses += 1
            return None
        self._items.move_to_end(digest)
        self.hits += 1
        return found.value

    def put(self, digest: bytes, value: T, not_before: float, not_after: float) -> None:
        self._items[digest] = Remembered(value, not_before, not_after)
        self._items.move_to_end(digest)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
