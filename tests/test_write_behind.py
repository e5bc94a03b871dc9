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
