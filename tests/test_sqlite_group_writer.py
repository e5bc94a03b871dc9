"""SQLite's group writer (gateway/store/sqlite/group.py): turns on the writer lock file, bounded, fail closed.

Several processes' group writers on one database (``serve --workers N``) take turns on a ``flock`` beside
it instead of SQLite's sleeping busy wait. A group waits for its turn, is written once it comes, and one
whose turn does not come within the bound is refused (the issuance fails closed) and never written later.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.audit.merkle import leaf_hash
from gateway.audit.records import AuditEvent, AuditRecord
from gateway.errors import AuditUnavailable
from gateway.store.sqlite import SqliteStore, group


def _records(tag: str, count: int) -> list[AuditRecord]:
    return [
        AuditRecord(1_800_000_000.0, AuditEvent.URL_ISSUED, "web", kid="k", detail={"tag": tag, "n": i})
        for i in range(count)
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "g.db", create=True)
    try:
        yield opened
    finally:
        await opened.close()


@contextmanager
def writer_lock_held(database: Path) -> Iterator[None]:
    """The lock file taken as another process's group writer takes it."""
    fd = os.open(database.with_name(f"{database.name}.audit-writer.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


async def _tags(store: SqliteStore) -> list[str]:
    return [e.record.detail["tag"] for e in await store.audit.entries(0, 100) if e.record is not None]


async def test_a_group_waits_for_its_turn_and_is_written_when_it_comes(store: SqliteStore, tmp_path: Path) -> None:
    with writer_lock_held(tmp_path / "g.db"):
        task = asyncio.create_task(store.append_audit_group(_records("a", 2), [], [], 0.0))
        done, _ = await asyncio.wait({task}, timeout=0.1)
        assert not done  # the other writer holds the lock: nothing is written meanwhile
        assert await _tags(store) == []
    assert await task == [1, 2]
    assert await _tags(store) == ["a", "a"]


async def test_a_group_whose_turn_does_not_come_in_time_fails_closed_and_is_never_written(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group, "WAIT_SECONDS", 0.05)
    refused = pytest.raises(AuditUnavailable, match=r"^the audit log's writer lock was not free within 0\.05 s$")
    with writer_lock_held(tmp_path / "g.db"), refused:
        await store.append_audit_group(_records("given up", 3), [], [], 0.0)
    # The writer thread got the lock after all, and refused the group given up: the next one is #1.
    assert await store.append_audit_group(_records("next", 1), [], [], 0.0) == [1]
    assert await _tags(store) == ["next"]


async def test_two_writers_on_one_database_take_turns_without_colliding(store: SqliteStore, tmp_path: Path) -> None:
    """Two stores on one file, as two workers: every group gets positions of its own, every leaf proves."""
    other = await SqliteStore.open(tmp_path / "g.db")
    try:
        appends = [
            writer.append_audit_group(_records(f"{name}{i}", 1 + i % 4), [], [], 0.0)
            for i in range(30)
            for name, writer in (("x", store), ("y", other))
        ]
        seqs = [seq for written in await asyncio.gather(*appends) for seq in written]
    finally:
        await other.close()
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    entries = await store.audit.entries(0, 1000)
    assert [e.seq for e in entries] == sorted(seqs)
    assert all(e.record is not None and e.leaf_hash == leaf_hash(e.record.leaf_bytes(e.seq)) for e in entries)


async def test_a_writer_lock_that_cannot_be_opened_fails_closed(store: SqliteStore, tmp_path: Path) -> None:
    (tmp_path / "g.db.audit-writer.lock").mkdir()  # not a file: open() fails as it would on a read-only disk
    with pytest.raises(AuditUnavailable, match=r"^the audit log's writer lock: Is a directory$"):
        await store.append_audit_group(_records("a", 1), [], [], 0.0)
    assert await _tags(store) == []


async def test_closing_does_not_wait_for_a_lock_another_process_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutdown is bounded even while another process holds the lock: the group waiting for it was given up."""
    monkeypatch.setattr(group, "WAIT_SECONDS", 0.05)
    own = await SqliteStore.open(tmp_path / "own.db", create=True)
    with writer_lock_held(tmp_path / "own.db"):
        with pytest.raises(AuditUnavailable):
            await own.append_audit_group(_records("given up", 1), [], [], 0.0)
        await own.close()  # returns while the lock is still held
        assert "the audit writer is still waiting for its lock: closed without it" in caplog.messages


async def test_a_group_cancelled_before_its_turn_is_never_written(store: SqliteStore, tmp_path: Path) -> None:
    """The writer thread of its own (a queue, not an executor) drops a group whose waiter was cancelled first."""
    with writer_lock_held(tmp_path / "g.db"):
        task = asyncio.create_task(store.append_audit_group(_records("cancelled", 2), [], [], 0.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await store.append_audit_group(_records("next", 1), [], [], 0.0) == [1]
    assert await _tags(store) == ["next"]


async def test_groups_queued_together_are_written_in_order_and_each_answered(store: SqliteStore) -> None:
    appends = [store.append_audit_group(_records(f"g{i}", 1 + i % 3), [], [], 0.0) for i in range(40)]
    seqs = await asyncio.gather(*appends)
    assert [seq for written in seqs for seq in written] == list(range(1, sum(1 + i % 3 for i in range(40)) + 1))
    assert await _tags(store) == [f"g{i}" for i in range(40) for _ in range(1 + i % 3)]


async def test_closing_ends_the_writer_thread(tmp_path: Path) -> None:
    own = await SqliteStore.open(tmp_path / "own.db", create=True)
    await own.append_audit_group(_records("a", 1), [], [], 0.0)
    thread = own._group._thread
    assert thread is not None and thread.is_alive()
    await own.close()
    assert not thread.is_alive()
    with pytest.raises(AuditUnavailable, match="closed"):
        await own._group.append(_records("late", 1), [], [], 0.0)


def test_the_writer_connection_keeps_its_statement_journal_in_memory_and_stays_durable(tmp_path: Path) -> None:
    """A batch's multi-row INSERT spilled its statement journal to a temporary file; the crash journal (WAL,
    synchronous=FULL: every commit fsync'd) is what durability rests on, and it is unchanged."""
    writer = group.GroupWriter(tmp_path / "g.db")
    try:
        conn = writer._connection()
        pragmas = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("temp_store", "synchronous")}
        assert pragmas == {"temp_store": 2, "synchronous": 2}  # MEMORY, FULL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        writer.close()
