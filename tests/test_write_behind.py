"""The raw technical log and first redemptions, written behind (issue 18, decisions 4 and 5).

An issuance's audit record is durable before its URL leaves; its raw-log entry, and a redemption's
record, follow within a second. Queueing never blocks: a full queue drops, counts and logs.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.audit import records as audit
from gateway.audit.behind import WriteBehind
from gateway.audit.log import Pending
from gateway.errors import AuditUnavailable
from gateway.store.base import AuditQuery, RawEntry
from tests.audit_support import db, fill
from tests.support import ADMIN, World


def _raw(i: int) -> RawEntry:
    return RawEntry(1_800_000_000.0 + i, "url:issued", f"req_{i}", "gwk_A", "203.0.113.7", "curl/8")


def _redeemed(i: int) -> audit.AuditRecord:
    return audit.redeemed(ADMIN, now=1_800_000_000.0 + i, kid="gwk_A", url=f"https://cdn/{i}", expires_at=1,
                          profile="native")  # fmt: skip


async def test_the_issuance_record_is_durable_at_once_and_its_raw_entry_follows(world: World) -> None:
    await fill(world, 1)
    conn = db(world.services)
    issued = await world.services.store.audit.search(AuditQuery(event="url:issued"))
    assert len(issued) == 1  # before the answer: fail-closed, as always
    assert conn.execute("SELECT count(*) FROM raw_log").fetchone()[0] == 0  # queued, not yet written
    assert world.services.behind.waiting() == 1
    await world.services.behind.flush()
    assert conn.execute("SELECT event, client_ip FROM raw_log").fetchall() == [("url:issued", None)]


async def test_a_full_queue_drops_counts_and_logs_without_blocking(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    behind = WriteBehind(world.services.batcher, capacity=3)
    with caplog.at_level(logging.WARNING, logger="gateway.audit.behind"):
        behind.raw([_raw(i) for i in range(2)])
        assert behind.redemption(_redeemed(0), _raw(9)) is True
        behind.raw([_raw(3), _raw(4)])
        assert behind.redemption(_redeemed(1), None) is False
    assert behind.waiting() == 3
    assert behind.dropped == {"raw": 2, "redemption": 1}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["audit write-behind queue full (3 waiting)"]
    await behind.flush()
    assert behind.waiting() == 0
    [written] = await world.services.store.audit.search(AuditQuery(event="url:redeemed"))
    assert written.url_sha256 == audit.url_digest("https://cdn/0")
    rows = db(world.services).execute("SELECT request_id FROM raw_log ORDER BY id").fetchall()
    assert rows == [("req_9",), ("req_0",), ("req_1",)]


async def test_drops_are_in_metrics(world: World) -> None:
    world.services.behind.dropped["raw"] += 5
    text = world.services.metrics.exposition().decode()
    assert 'gateway_audit_write_behind_dropped_total{kind="raw"} 5.0' in text
    assert 'gateway_audit_write_behind_dropped_total{kind="redemption"} 0.0' in text
    assert "gateway_audit_write_behind_waiting 0.0" in text


async def test_the_background_task_flushes_without_being_asked(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    committed = asyncio.Event()
    real = world.services.batcher.submit

    async def submit(batch):  # type: ignore[no-untyped-def]
        seqs = await real(batch)
        committed.set()
        return seqs

    monkeypatch.setattr(world.services.batcher, "submit", submit)
    task = asyncio.create_task(world.services.behind.run())
    try:
        world.services.behind.raw([_raw(1)])
        await asyncio.wait_for(committed.wait(), 30)  # an event, not a clock: FLUSH_EVERY is 1 s
    finally:
        task.cancel()
    assert db(world.services).execute("SELECT request_id FROM raw_log").fetchall() == [("req_1",)]


class _Database:
    """A batcher whose database refuses one entry (any commit holding it), or everything while it is down."""

    def __init__(self, refused: str = "", failing: int = 0) -> None:
        self.refused, self.down, self.failing = refused, False, failing
        self.written: list[str] = []
        self.attempts = 0

    async def submit(self, pending: Pending) -> list[int]:
        self.attempts += 1
        ids = [e.request_id or "" for e in pending.raw] + [r.url_sha256 or "" for r in pending.records]
        self.failing -= 1
        if self.down or self.refused in ids or self.failing >= 0:
            raise AuditUnavailable("database error: invalid byte sequence")
        self.written += ids
        return list(range(len(pending.records)))


async def test_one_entry_no_database_accepts_is_isolated_and_dropped_not_blocking_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = _Database(refused="req_3")
    behind = WriteBehind(database)  # type: ignore[arg-type]
    behind.raw([_raw(i) for i in range(8)])
    with caplog.at_level(logging.ERROR, logger="gateway.audit.behind"):
        for more in range(8, 14):  # a flush a second, traffic arriving between them
            await behind.flush()
            behind.raw([_raw(more)])
        await behind.flush()
    assert sorted(database.written) == sorted(f"req_{i}" for i in range(14) if i != 3)
    assert (behind.waiting(), behind.dropped["raw"]) == (0, 1)
    assert "audit write-behind: dropped one raw entry the database refuses on its own" in caplog.text


async def test_while_the_database_is_down_nothing_is_dropped_and_a_flush_tries_three_times_at_most() -> None:
    database = _Database()
    database.down = True
    behind = WriteBehind(database)  # type: ignore[arg-type]
    behind.raw([_raw(i) for i in range(5)])
    behind.redemption(_redeemed(0), _raw(9))
    for _ in range(3):
        await behind.flush()
    assert (behind.waiting(), behind.dropped, database.attempts) == (6, {"raw": 0, "redemption": 0}, 9)
    database.down = False
    await behind.flush()
    assert behind.waiting() == 0 and len(database.written) == 7  # six raw entries and the redemption's record


@pytest.mark.parametrize("failing", [1, 2])
async def test_a_commit_that_failed_once_drops_nothing(failing: int) -> None:
    """A database that fails one commit (or two: the whole and a half) and then works is no reason to drop."""
    database = _Database(failing=failing)
    behind = WriteBehind(database)  # type: ignore[arg-type]
    behind.raw([_raw(0)])
    behind.redemption(_redeemed(1), None)
    await behind.flush()
    await behind.flush()
    assert (behind.waiting(), behind.dropped) == (0, {"raw": 0, "redemption": 0})
    assert sorted(database.written) == sorted(["req_0", audit.url_digest("https://cdn/1")])


async def test_a_redemption_no_database_accepts_is_counted_as_a_dropped_redemption() -> None:
    poison = audit.url_digest("https://cdn/2")
    database = _Database(refused=poison)
    behind = WriteBehind(database)  # type: ignore[arg-type]
    for i in range(4):
        behind.redemption(_redeemed(i), None)
    for i in range(4, 8):  # a flush a second, traffic arriving between them
        await behind.flush()
        behind.redemption(_redeemed(i), None)
    await behind.flush()
    assert (behind.waiting(), behind.dropped) == (0, {"raw": 0, "redemption": 1})
    assert poison not in database.written and len(database.written) == 7
