"""Remembered verified JWTs (gateway.access.verified_tokens): only inside the token's window, bounded, LRU."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from gateway.access.verified_tokens import Remembered, VerifiedTokens


def test_a_remembered_token_answers_from_its_not_before_up_to_but_not_at_its_not_after() -> None:
    cache: VerifiedTokens[str] = VerifiedTokens(4)
    digest = VerifiedTokens.digest("header.payload.signature")
    cache.put(digest, "web", not_before=100.0, not_after=200.0)
    assert cache.get(digest, 99.999) is None
    assert cache.get(digest, 100.0) == "web"
    assert cache.get(digest, 199.999) == "web"
    assert cache.get(digest, 200.0) is None
    assert cache.get(VerifiedTokens.digest("another.token.here"), 150.0) is None
    assert (cache.hits, cache.misses) == (2, 3)


def test_the_cache_is_keyed_by_the_sha256_of_the_token_never_the_token() -> None:
    assert VerifiedTokens.digest("a.b.c") == hashlib.sha256(b"a.b.c").digest()
    # A stray byte that reached the header as a lone surrogate is hashed, not an exception.
    assert VerifiedTokens.digest("a.b\udc80") == hashlib.sha256(b"a.b\xed\xb2\x80").digest()


def test_the_least_recently_used_goes_first_and_the_capacity_holds() -> None:
    cache: VerifiedTokens[str] = VerifiedTokens(2)
    a, b, c, d = (VerifiedTokens.digest(t) for t in ("a.a.a", "b.b.b", "c.c.c", "d.d.d"))
    cache.put(a, "a", 0, 10)
    cache.put(b, "b", 0, 10)
    assert len(cache) == 2
    assert (cache.get(a, 5), cache.get(b, 5)) == ("a", "b")  # both kept at exactly the capacity
    assert cache.get(a, 5) == "a"  # a used last: b is now the least recently used
    cache.put(c, "c", 0, 10)
    assert len(cache) == 2
    assert (cache.get(b, 5), cache.get(a, 5), cache.get(c, 5)) == (None, "a", "c")
    cache.put(a, "a2", 0, 10)  # put again: a is the newest, c the oldest
    cache.put(d, "d", 0, 10)
    assert (cache.get(c, 5), cache.get(a, 5), cache.get(d, 5)) == (None, "a2", "d")
    assert len(cache) == 2


def test_what_is_remembered_cannot_be_stretched_once_stored() -> None:
    cache: VerifiedTokens[str] = VerifiedTokens(1)
    digest = VerifiedTokens.digest("a.b.c")
    cache.put(digest, "web", 0.0, 10.0)
    remembered = cache._items[digest]
    assert remembered == Remembered("web", 0.0, 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        remembered.not_after = 1e18  # type: ignore[misc]
    assert cache.get(digest, 10.0) is None
