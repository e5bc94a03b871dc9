"""RFC 6962 Merkle tree hashing with an append-only frontier (compact range).

The frontier holds one root per perfect subtree in the binary decomposition of
the tree size, so appending a leaf and computing the tree head take O(log n)
time and memory: a verifier can walk millions of records in bounded memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass
class Frontier:
    size: int = 0
    # Roots of the perfect subtrees, largest first; their sizes are the set bits of ``size``.
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        self.hashes.append(leaf)
        self.size += 1
        merges = (self.size & -self.size).bit_length() - 1  # trailing zero bits of the new size
        for _ in range(merges):
            right = self.hashes.pop()
            left = self.hashes.pop()
            self.hashes.append(node_hash(left, right))

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def to_bytes(self) -> bytes:
        return self.size.to_bytes(8, "big") + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        if len(hashes) != size.bit_count() or len(body) % HASH_SIZE:
            raise ValueError("corrupt Merkle frontier")
        return cls(size, hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))
