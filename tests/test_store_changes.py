"""The store contract for what replicas share: the change feed, media claims, link revocations, one audit log."""

from __future__ import annotations

import asyncio

import pytest

from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.records import AuditEvent, AuditRecord
from gateway.errors import StoreUnavailable
from gateway.model import (
    Credential,
    Grant,
    KeyAlgorithm,
    MediaItem,
    Permission,
    Principal,
    PrincipalKind,
    Rendition,
    SigningKey,
    Visibility,
)  # fmt: skip
from gateway.store.base import Change, RevokedPath, Store

P = Principal("svc", PrincipalKind.SERVICE, frozenset({Permission.SIGN}), 1.0)


def _media(media_id: str, video: str, prefix: str | None = None, thumb: str | None = None) -> MediaItem:
    paths = {Rendition.VIDEO: video, **({Rendition.THUMBNAIL: thumb} if thumb else {})}
    prefixes = {Rendition.VIDEO: prefix} if prefix else {}
    return MediaItem(media_id, "alice", "w1", Visibility.PRIVATE, paths, 1.0, prefixes=prefixes)


async def test_every_administrative_write_appends_one_change_in_commit_order(store: Store) -> None:
    assert await store.changes.head() == 0
    async with store.transaction() as tx:
        await tx.principals.add(P)
        await tx.principals.add_credential(Credential("gwc_1", "svc", b"k" * 32, 1.0))
        await tx.keys.add(SigningKey("gwk_1", "svc", KeyAlgorithm.ED25519, b"s", 1.0, b"p" * 32))
    async with store.transaction() as tx:
        await tx.keys.revoke("gwk_1", 2.0, "leaked", "admin")
        await tx.principals.revoke_credential("gwc_1", 2.0)
        await tx.principals.disable("svc", 2.0)
        await tx.grants.add(Grant("gwg_1", "svc", "m1", "r", "a", 1.0, 100.0))
        await tx.grants.revoke("gwg_1", 3.0)
        await tx.media.put(_media("m1", "/v/m1/a.m3u8"))
        await tx.media.revoke_links("m1", 4.0)
        await tx.media.delete("m1", 5.0)
        await tx.subjects.erase("sub_x", 6.0)
        await tx.keys.link("gwk_1", "K1")
    changes = await store.changes.since(0, 100)
    assert [(c.kind, c.ref) for c in changes] == [
        ("principal", "svc"), ("credential", "gwc_1"), ("key", "gwk_1"),
        ("key", "gwk_1"), ("credential", "gwc_1"), ("principal", "svc"), ("grant", "gwg_1"), ("grant", "gwg_1"),
        ("media", "m1"),  # a revoked grant also revokes its grantee's links to the item: replicas reload them
        ("media", "m1"), ("media", "m1"), ("media", "m1"), ("subject", "sub_x"), ("key", "gwk_1"),
    ]  # fmt: skip
    assert [c.seq for c in changes] == list(range(1, 15))
    assert await store.changes.head() == 14
    assert await store.changes.since(12, 100) == [Change(13, "subject", "sub_x"), Change(14, "key", "gwk_1")]
    assert [c.seq for c in await store.changes.since(0, 2)] == [1, 2]


async def test_a_rolled_back_change_leaves_no_position_behind(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.principals.add(P)
            raise RuntimeError("boom")
    async with store.transaction() as tx:
        await tx.principals.add(P)
    assert await store.changes.since(0, 10) == [Change(1, "principal", "svc")]


async def test_a_write_outside_a_transaction_is_refused_rather_than_missing_from_the_feed(store: Store) -> None:
    with pytest.raises(StoreUnavailable, match="outside a transaction"):
        await store.principals.add(P)
    assert await store.principals.get("svc") is None


async def test_prefix_claims_find_every_overlap_in_both_directions(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.media.put(_media("a", "/v/a/master.m3u8", prefix="/v/a/", thumb="/t/a.jpg"))
        await tx.media.put(_media("b", "/v/b/master.m3u8", prefix="/v/b/"))
    # a prefix that would cover another item's paths (and prefix)
    assert await store.media.overlapping(_media("c", "/v/c.m3u8", prefix="/v/")) == [
        ("a", "/v/a/"), ("a", "/v/a/master.m3u8"), ("b", "/v/b/"), ("b", "/v/b/master.m3u8"),
    ]  # fmt: skip
    # a path inside another item's prefix
    assert await store.media.overlapping(_media("d", "/v/a/extra.m3u8")) == [("a", "/v/a/")]
    # a thumbnail directory shared by everyone: a prefix over it covers a's thumbnail
    assert await store.media.overlapping(_media("e", "/t/e/x.jpg", prefix="/t/")) == [("a", "/t/a.jpg")]
    # the same file under another id (an alias anyone allowed the alias could read the original through)
    assert await store.media.overlapping(_media("g", "/t/a.jpg")) == [("a", "/t/a.jpg")]
    # the item itself, and items whose paths merely share a string prefix, do not overlap
    assert await store.media.overlapping(_media("a", "/v/a/master.m3u8", prefix="/v/a/")) == []
    assert await store.media.overlapping(_media("f", "/v/ab/master.m3u8", prefix="/v/ab/")) == []


async def test_deleting_an_item_releases_its_claims_and_revokes_its_links(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.media.put(_media("a", "/v/a/master.m3u8", prefix="/v/a/"))
        await tx.media.delete("a", 7.0)
    assert await store.media.overlapping(_media("b", "/v/a/other.m3u8")) == []
    deleted = await store.media.get("a")
    assert deleted is not None and (deleted.deleted_at, deleted.links_revoked_at) == (7.0, 7.0)
    assert deleted.prefixes == {Rendition.VIDEO: "/v/a/"}


async def test_link_revocations_are_kept_per_path_and_outlive_a_move(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.media.put(_media("a", "/v/a/x.m3u8", prefix="/v/a/"))
        await tx.media.put(_media("b", "/v/b/x.m3u8"))
        await tx.media.put(_media("c", "/v/c/x.m3u8"))
        await tx.media.revoke_links("a", 10.0)
        await tx.media.revoke_links("b", 20.0)
        await tx.media.put(_media("a", "/w/a/x.m3u8"))  # moved: the old paths' revocation stays
        await tx.media.revoke_links("a", 12.0)
    assert await store.media.revoked_paths(15.0) == [RevokedPath("b", "/v/b/x.m3u8", False, 20.0)]
    assert sorted(await store.media.revoked_paths(0.0, "a"), key=lambda r: (r.path, r.is_prefix)) == [
        RevokedPath("a", "/v/a/", True, 10.0), RevokedPath("a", "/v/a/x.m3u8", False, 10.0),
        RevokedPath("a", "/w/a/x.m3u8", False, 12.0),
    ]  # fmt: skip
    async with store.transaction() as tx:
        await tx.media.delete("b", 30.0)
    assert [r.at for r in await store.media.revoked_paths(0.0, "b")] == [30.0]


async def test_revoking_chosen_claims_records_them_and_a_change(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.media.put(_media("a", "/v/a/x.m3u8", prefix="/v/a/"))
    head = await store.changes.head()
    async with store.transaction() as tx:
        await tx.media.revoke_claims("a", [("/v/a/", True), ("/v/a/x.m3u8", False)], 5.0)
        await tx.media.revoke_claims("a", [("/v/a/", True)], 3.0)  # older: the newest revocation stays
    assert sorted(await store.media.revoked_paths(0.0, "a"), key=lambda r: (r.path, r.is_prefix)) == [
        RevokedPath("a", "/v/a/", True, 5.0), RevokedPath("a", "/v/a/x.m3u8", False, 5.0),
    ]  # fmt: skip
    assert [(c.kind, c.ref) for c in await store.changes.since(head, 100)][-1] == ("media", "a")


async def test_live_grants_and_erased_subjects_for_the_state_view(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.principals.add(P)
        await tx.grants.add(Grant("gwg_1", "svc", "m1", "r", "a", 1.0, 100.0))
        await tx.grants.add(Grant("gwg_2", "svc", "m1", "r", "a", 1.0, 50.0))
        await tx.grants.add(Grant("gwg_3", "svc", "m1", "r", "a", 1.0, 100.0))
        await tx.grants.revoke("gwg_3", 2.0)
        await tx.subjects.erase("sub_a", 3.0)
    assert [g.id for g in await store.grants.live(60.0)] == ["gwg_1"]
    assert await store.subjects.erased_refs() == ["sub_a"]


async def test_only_one_holder_of_an_exclusive_lock_at_a_time(store: Store) -> None:
    held = store.exclusive("checkpoint")
    async with held as first, store.exclusive("checkpoint") as second, store.exclusive("other") as unrelated:
        assert (first, second, unrelated) == (True, False, True)
    async with store.exclusive("checkpoint") as again:
        assert again is True


async def test_concurrent_group_commits_make_one_gapless_merkle_sequence(store: Store) -> None:
    """Replicas append at once (here: many concurrent groups on one store); no gap, no fork."""

    def records(group: int) -> list[AuditRecord]:
        return [AuditRecord(float(group), AuditEvent.URL_ISSUED, f"r{group}", detail={"n": n}) for n in range(5)]

    results = await asyncio.gather(*(store.append_audit_group(records(g), [], [], 0.0) for g in range(8)))
    assert sorted(seq for seqs in results for seq in seqs) == list(range(1, 41))
    entries = await store.audit.entries(0, 100)
    frontier = Frontier()
    for entry in entries:
        assert entry.record is not None and entry.leaf_hash == leaf_hash(entry.record.leaf_bytes(entry.seq))
        frontier.append(entry.leaf_hash)
    assert (await store.audit.frontier()).root() == frontier.root()


async def test_migrating_a_version_2_database_keeps_its_media_and_claims_owned_directories(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from gateway.store.sqlite import SqliteStore
    from gateway.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].statements:
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    insert = (
        "INSERT INTO media (id, owner, workspace, visibility, paths, updated_at) VALUES (?, 'o', 'w', 'private', ?, 1)"
    )
    conn.execute(insert, ("intro", '{"video": "/v/intro/master.m3u8", "thumbnail": "/t/intro.jpg"}'))
    conn.execute(insert, ("flat", '{"video": "/media/flat.mp4"}'))
    conn.close()
    behind = f"schema v2, behind this gateway's v{SCHEMA_VERSION}: run 'gatewayctl migrate'"
    with pytest.raises(StoreUnavailable, match=behind):
        await SqliteStore.open(path)
    store = await SqliteStore.open(path, migrate=True)
    try:
        intro, flat = await store.media.get("intro"), await store.media.get("flat")
        assert intro is not None and intro.prefixes == {Rendition.VIDEO: "/v/intro/"}
        assert flat is not None and flat.prefixes == {}
        assert await store.media.overlapping(_media("x", "/v/intro/seg.ts")) == [("intro", "/v/intro/")]
        assert await store.media.overlapping(_media("y", "/t/y/", prefix="/t/")) == [("intro", "/t/intro.jpg")]
        assert await store.changes.head() == 0
    finally:
        await store.close()
