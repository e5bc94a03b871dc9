"""The store contract, run against every implementation (the ``store`` fixture in conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.audit.records import AuditEvent, AuditRecord
from gateway.errors import Conflict
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
from gateway.store.base import AuditQuery, Store
from gateway.store.sqlite import SqliteStore

P = Principal("svc", PrincipalKind.SERVICE, frozenset({Permission.SIGN}), 1.0, frozenset({Rendition.THUMBNAIL}))


async def _with_principal(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.principals.add(P)


async def test_principals_roundtrip_and_disable(store: Store) -> None:
    await _with_principal(store)
    assert await store.principals.get("svc") == P
    async with store.transaction() as tx:
        await tx.principals.disable("svc", 5.0)
        await tx.principals.add_credential(Credential("gwc_1", "svc", b"k" * 32, 2.0))
    assert (await store.principals.get("svc")).disabled_at == 5.0  # type: ignore[union-attr]
    assert (await store.principals.credential("gwc_1")).public_key == b"k" * 32  # type: ignore[union-attr]
    assert await store.principals.get("nobody") is None


async def test_credentials_list_and_revoke_once(store: Store) -> None:
    await _with_principal(store)
    async with store.transaction() as tx:
        await tx.principals.add_credential(Credential("gwc_2", "svc", b"b" * 32, 2.0))
        await tx.principals.add_credential(Credential("gwc_1", "svc", b"a" * 32, 1.0))
    async with store.transaction() as tx:
        await tx.principals.revoke_credential("gwc_1", 10.0)
        await tx.principals.revoke_credential("gwc_1", 20.0)  # the first revocation stands
    assert [(c.id, c.revoked_at) for c in await store.principals.credentials("svc")] == [
        ("gwc_1", 10.0), ("gwc_2", None),
    ]  # fmt: skip
    assert [c.id for c in await store.principals.credentials()] == ["gwc_1", "gwc_2"]
    assert await store.principals.credentials("other") == []


async def test_open_refuses_to_create_a_missing_database_unless_asked(tmp_path: Path) -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        await SqliteStore.open(tmp_path / "typo" / "g.db", create=False)
    assert refused.value.message == (
        f"database {tmp_path / 'typo' / 'g.db'} does not exist: check database.url, "
        "or run 'gatewayctl init' to create it"
    )
    assert not (tmp_path / "typo").exists()


async def test_duplicate_principal_is_a_conflict(store: Store) -> None:
    await _with_principal(store)
    with pytest.raises(Conflict):
        await _with_principal(store)


async def test_keys_revoke_once_and_touch(store: Store) -> None:
    await _with_principal(store)
    key = SigningKey("gwk_a", "svc", KeyAlgorithm.ED25519, b"sealed", 3.0, b"p" * 32)
    async with store.transaction() as tx:
        await tx.keys.add(key)
    assert await store.keys.get("gwk_a") == key
    async with store.transaction() as tx:
        await tx.keys.revoke("gwk_a", 10.0, "leaked", "admin")
        await tx.keys.revoke("gwk_a", 20.0, "again", "admin")  # the first revocation stands
        await tx.keys.touch("gwk_a", 9.0)
    got = await store.keys.get("gwk_a")
    assert got is not None and (got.revoked_at, got.revoked_reason, got.last_used_at) == (10.0, "leaked", 9.0)
    assert [k.kid for k in await store.keys.all("svc")] == ["gwk_a"]
    assert await store.keys.all("other") == []


async def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.principals.add(P)
            await tx.audit.append([AuditRecord(1.0, AuditEvent.PRINCIPAL_CREATED, "x")])
            raise RuntimeError("boom")
    assert await store.principals.get("svc") is None
    assert await store.audit.tail(10) == []


async def test_media_put_replace_delete(store: Store) -> None:
    item = MediaItem("m1", "alice", "w1", Visibility.PRIVATE, {Rendition.VIDEO: "/v/m1.mp4"}, 1.0)
    async with store.transaction() as tx:
        await tx.media.put(item)
        await tx.media.put(MediaItem("m1", "alice", "w1", Visibility.PUBLIC, item.paths, 2.0))
    assert (await store.media.get("m1")).visibility is Visibility.PUBLIC  # type: ignore[union-attr]
    async with store.transaction() as tx:
        await tx.media.delete("m1", 3.0)
    assert (await store.media.get("m1")).deleted  # type: ignore[union-attr]


async def test_grants_for_media_skip_revoked(store: Store) -> None:
    await _with_principal(store)
    async with store.transaction() as tx:
        await tx.grants.add(Grant("gwg_1", "svc", "m1", "r", "a", 1.0, 100.0))
        await tx.grants.add(Grant("gwg_2", "svc", "m1", "r", "a", 1.0, 100.0))
        await tx.grants.revoke("gwg_2", 2.0)
    assert [g.id for g in await store.grants.for_media("svc", "m1")] == ["gwg_1"]
    assert len(await store.grants.all("svc")) == 2


async def test_audit_append_orders_and_searches(store: Store) -> None:
    records = [
        AuditRecord(float(i), AuditEvent.URL_ISSUED if i % 2 else AuditEvent.URL_DENIED, "svc",
                    kid=f"k{i % 3}",
                    detail={"i": i})
        for i in range(10)
    ]  # fmt: skip
    async with store.transaction() as tx:
        seqs = await tx.audit.append(records)
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    tail = await store.audit.tail(3)
    assert [r.detail["i"] for r in tail] == [7, 8, 9]
    found = await store.audit.search(AuditQuery(event="url:issued", kid="k1", since=2.0))
    assert [r.detail["i"] for r in found] == [7]
    assert found[0].seq == seqs[7]


async def test_both_append_paths_store_leaves_that_match_the_records_read_back(store: Store) -> None:
    from gateway.audit.merkle import leaf_hash

    made = [
        AuditRecord(1_800_000_000 + i, AuditEvent.URL_ISSUED, "web", kid="k", expires_at=9,  # type: ignore[arg-type]
                    detail={"n": i}, personal=b"\x00\xff" * i)
        for i in range(4)
    ]  # fmt: skip
    async with store.transaction() as tx:
        await tx.audit.append(made[:2])
    await store.append_audit_group(made[2:], [], [], 0.0)
    entries = await store.audit.entries(0, 10)
    assert len(entries) == 4
    for entry in entries:
        assert entry.record is not None
        assert entry.leaf_hash == leaf_hash(entry.record.leaf_bytes(entry.seq))


async def test_a_database_of_another_schema_version_is_refused_by_name(tmp_path: Path) -> None:
    import sqlite3

    from gateway.errors import StoreUnavailable

    first = await SqliteStore.open(tmp_path / "old.db", create=True)
    await first.close()
    sqlite3.connect(tmp_path / "old.db", isolation_level=None).execute(
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'"
    )
    from gateway.store.sqlite.schema import SCHEMA_VERSION

    behind = f"schema v1, behind this gateway's v{SCHEMA_VERSION}: run 'gatewayctl migrate'"
    with pytest.raises(StoreUnavailable, match=behind):
        await SqliteStore.open(tmp_path / "old.db")


async def test_a_read_paused_mid_way_does_not_hide_a_revocation_from_the_next_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement left active between awaits pins SQLite's reader to an old snapshot. Pause one read
    after its first trip to the database thread; a revocation committed meanwhile by another process
    (gatewayctl) must still be seen by the next read."""
    import contextvars

    import aiosqlite

    store = await SqliteStore.open(tmp_path / "contract.db", create=True)
    await _with_principal(store)
    async with store.transaction() as tx:
        await tx.keys.add(SigningKey("gwk_b", "svc", KeyAlgorithm.ED25519, b"sealed", 3.0, b"p" * 32))
    pause: contextvars.ContextVar[tuple[asyncio.Event, asyncio.Event] | None] = contextvars.ContextVar("pause")
    original = aiosqlite.Connection._execute

    async def paused_execute(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = await original(self, fn, *args, **kwargs)
        events = pause.get(None)
        if events is not None:
            pause.set(None)
            events[0].set()
            await events[1].wait()
        return result

    monkeypatch.setattr(aiosqlite.Connection, "_execute", paused_execute)
    paused, resume = asyncio.Event(), asyncio.Event()
    context = contextvars.copy_context()
    context.run(pause.set, (paused, resume))
    slow = asyncio.create_task(store.keys.get("gwk_b"), context=context)
    await paused.wait()
    other = await SqliteStore.open(tmp_path / "contract.db")  # another process, e.g. gatewayctl keys revoke
    async with other.transaction() as tx:
        await tx.keys.revoke("gwk_b", 10.0, "leaked", "admin")
    await other.close()
    try:
        got = await store.keys.get("gwk_b")
        assert got is not None and got.revoked_at == 10.0
    finally:
        resume.set()
        await slow
        await store.close()


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_transaction_cancelled_as_it_begins_leaves_the_database_writable(store: Store, turns: int) -> None:
    """A task cancelled while its transaction is starting (a background job stopped at shutdown, a timeout):
    SQLite's worker thread still ran the BEGIN IMMEDIATE, and nothing ended it. The writer connection then
    sat in a transaction holding the database's write lock: every later transaction failed ("cannot start a
    transaction within a transaction") and other processes' writes waited out their busy timeout."""
    started = asyncio.Event()

    async def write() -> None:
        started.set()
        async with store.transaction() as tx:
            await tx.principals.add(Principal("never", PrincipalKind.SERVICE, frozenset(), 1.0))

    task = asyncio.create_task(write())
    await started.wait()
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.transaction() as tx:
        await tx.principals.add(P)
    assert await store.principals.get(P.id) == P
