"""Store contract for the audit leaf: both append paths keep the body hash, and pruning keeps the leaf's input."""

from __future__ import annotations

from pathlib import Path

from gateway.audit.leaf import leaf_input
from gateway.audit.merkle import leaf_hash
from gateway.audit.records import ENGINEER, VIEWER, AuditEvent, AuditRecord
from gateway.audit.verify import verify_log
from gateway.store.base import PrunePolicy, Store
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.schema import MIGRATIONS
from tests.support import sqlite_at_version

T = 1_800_000_000.0


def _made() -> list[AuditRecord]:
    return [
        AuditRecord(T + i, AuditEvent.URL_ISSUED, "web", kid="k", detail={"n": i}, personal=b"\x01" * i,
                    retention=VIEWER if i % 2 else ENGINEER)
        for i in range(4)
    ]  # fmt: skip


async def test_both_append_paths_store_the_body_hash_of_each_record(store: Store) -> None:
    made = _made()
    async with store.transaction() as tx:
        await tx.audit.append(made[:2])
    await store.append_audit_group(made[2:], [], [], T)
    entries = await store.audit.entries(0, 10)
    assert [e.body_sha256 for e in entries] == [r.body_sha256() for r in made]
    assert [e.event for e in entries] == ["url:issued"] * 4


async def test_a_pruned_record_keeps_what_recomputes_its_leaf(store: Store) -> None:
    made = _made()
    await store.append_audit_group(made, [], [], T)
    before = await store.audit.entries(0, 10)
    policy = PrunePolicy(sealed_upto=4, viewer_before=T + 10, engineer_before=0.0, erased_before=0.0)
    async with store.transaction() as tx:
        assert await tx.audit.prune(policy, T + 100) == 2  # the viewer records, 1 and 3
    after = await store.audit.entries(0, 10)
    assert [e.record is None for e in after] == [False, True, False, True]
    for old, new in zip(before, after, strict=True):
        assert (new.seq, new.time, new.retention, new.event) == (old.seq, old.time, old.retention, old.event)
        assert (new.body_sha256, new.leaf_hash) == (old.body_sha256, old.leaf_hash)
        assert new.body_sha256 is not None
        kept = leaf_input(new.seq, new.time, new.retention, new.event, new.body_sha256)
        assert leaf_hash(kept) == new.leaf_hash


async def test_a_log_written_before_the_body_hash_migrates_and_is_named_by_verify(tmp_path: Path) -> None:
    """Schema v5 adds the column; records of the pre-release leaf layout have none, and verify says so."""
    path = tmp_path / "v4.db"
    store = await SqliteStore.open(path, create=True)
    await store.append_audit_group(_made()[:2], [], [], T)
    await store.close()
    sqlite_at_version(path, 4)
    store = await SqliteStore.open(path, migrate=True)
    try:
        assert store.applied_migrations == [m.version for m in MIGRATIONS if m.version > 4]
        report = await verify_log(store, {}, now=T)
    finally:
        await store.close()
    assert (report.ok, report.first_bad, report.problem) == (
        False,
        1,
        "record #1 has no body hash: written before schema v5 in the pre-release leaf layout "
        "(docs/audit.md, 'Leaf format'), or altered",
    )
