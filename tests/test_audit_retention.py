"""Pruning and erasure enforce retention and privacy, and the log still verifies."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.audit.records import RequestContext
from gateway.audit.retention import DAY, prune
from gateway.model import Permission, PrincipalKind
from gateway.store.base import AuditQuery
from tests.audit_support import db, fill, verify
from tests.support import ADMIN, World

CTX = RequestContext(actor="ops")


async def test_prune_removes_only_sealed_viewer_data_past_90_days_and_verify_stays_green(world: World) -> None:
    await fill(world, 10)
    await world.services.checkpointer.write(world.clock())
    await fill(world, 5)  # not yet sealed by a checkpoint
    world.clock.advance(91 * DAY)
    counts = await prune(world.services.store, CTX, world.clock(), 7)
    assert counts["records_pruned"] == 10  # the sealed viewer records; engineer actions stay 6 years
    remaining = await world.services.store.audit.search(AuditQuery(event="url:issued", limit=100))
    assert len(remaining) == 5
    assert await world.services.store.audit.search(AuditQuery(event="key:created", limit=10))
    report = await verify(world.services)
    assert report.ok, report.problem


async def test_engineer_actions_outlive_viewer_data(world: World) -> None:
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.services.checkpointer.write(world.clock())
    world.clock.advance(5 * 365 * DAY)
    await prune(world.services.store, CTX, world.clock(), 7)
    assert await world.services.store.audit.search(AuditQuery(event="principal:created", limit=10))
    world.clock.advance(366 * DAY)
    await world.services.checkpointer.write(world.clock())
    await prune(world.services.store, CTX, world.clock(), 7)
    assert not await world.services.store.audit.search(AuditQuery(event="principal:created", limit=10))
    assert (await verify(world.services)).ok


async def test_raw_technical_log_keeps_full_ips_for_seven_days_only(world: World) -> None:
    await fill(world, 3)
    await world.services.behind.flush()  # the raw log is written behind (within a second)
    conn = db(world.services)
    assert conn.execute("SELECT count(*) FROM raw_log").fetchone()[0] == 3
    world.clock.advance(8 * DAY)
    counts = await prune(world.services.store, CTX, world.clock(), 7)
    assert counts["raw_entries_purged"] == 3
    assert conn.execute("SELECT count(*) FROM raw_log").fetchone()[0] == 0


async def test_erasure_shreds_personal_fields_and_the_log_still_verifies(world: World, tmp_path: Path) -> None:
    await fill(world, 4, viewer="bob", media="film9")
    await world.media("mine", owner="bob")
    before = await world.services.subjects.export(ADMIN, "bob", world.clock())
    issued = [r for r in before["audit_records"] if r["event"] == "url:issued"]
    assert len(issued) == 4 and all(r["personal"]["subject"] == "bob" for r in issued)
    assert [m["id"] for m in before["media_owned"]] == ["film9", "mine"]
    raw = sqlite3.connect(world.services.config.sqlite_path).execute("SELECT * FROM audit").fetchall()
    assert "bob" not in json.dumps([[str(c) for c in row] for row in raw])  # never stored in clear
    counts = await world.services.subjects.erase(ADMIN, "bob", "GDPR request 77", world.clock())
    assert counts["media_deleted"] == 2
    after = await world.services.subjects.export(ADMIN, "bob", world.clock())
    assert after["erased"] and after["media_owned"] == []
    assert all(r["personal"] is None for r in after["audit_records"])  # crypto-shredded
    assert (await verify(world.services)).ok


async def test_an_erased_viewer_gets_no_new_urls(world: World) -> None:
    await fill(world, 1, viewer="carol")
    await world.services.subjects.erase(ADMIN, "carol", "request", world.clock())
    await fill(world, 1, viewer="carol")
    [denied] = await world.services.store.audit.search(AuditQuery(event="url:denied", limit=5))
    assert denied.reason == "subject-erased"


async def test_erased_viewer_data_is_pruned_30_days_after_erasure(world: World) -> None:
    await fill(world, 3, viewer="dave")
    await fill(world, 2, viewer="erin")
    await world.services.subjects.erase(ADMIN, "dave", "request", world.clock())
    await world.services.checkpointer.write(world.clock())
    world.clock.advance(31 * DAY)
    counts = await prune(world.services.store, CTX, world.clock(), 7)
    assert counts["records_pruned"] == 3  # dave's; erin's stay until day 90
    assert (await verify(world.services)).ok
