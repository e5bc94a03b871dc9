"""RFC 6962 tree heads: the Certificate Transparency test vectors, and the frontier against the recursive definition."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, node_hash

# certificate-transparency merkle_tree_test.cc: leaves and the tree heads of their prefixes
LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_ct_vectors() -> None:
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for data, expected in zip(LEAVES, ROOTS, strict=True):
        frontier.append(leaf_hash(bytes.fromhex(data)))
        assert frontier.root().hex() == expected


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written as the RFC says."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70))
def test_frontier_matches_the_recursive_definition_and_survives_serialisation(data: list[bytes]) -> None:
    frontier = Frontier()
    leaves = [leaf_hash(d) for d in data]
    for i, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        frontier = Frontier.from_bytes(frontier.to_bytes())
        assert frontier.root() == _mth(leaves[:i])
