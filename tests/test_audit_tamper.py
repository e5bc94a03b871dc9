"""Tampering with the audit log is detected, and the first bad record is named."""

from __future__ import annotations

import pytest

from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.records import RequestContext
from gateway.audit.retention import DAY, prune
from gateway.store import rows
from gateway.store.base import AuditQuery
from tests.audit_support import db, fill, verify
from tests.support import World


@pytest.fixture
async def sealed(world: World) -> World:
    """20 records under a signed, exported checkpoint."""
    await fill(world, 15)  # + 5 set-up records (principals, keys, media)
    await world.services.checkpointer.write(world.clock())
    assert (await world.services.store.audit.frontier()).size == 20
    return world


async def test_an_untouched_log_verifies(sealed: World) -> None:
    report = await verify(sealed.services)
    assert report.ok, report.problem
    assert report.records == 20 and report.checkpoints_checked >= 2


async def test_edited_record(sealed: World) -> None:
    db(sealed.services).execute("UPDATE audit SET media_id = 'other' WHERE seq = 7")
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 7) and "altered" in (report.problem or "")


async def test_deleted_record(sealed: World) -> None:
    db(sealed.services).execute("DELETE FROM audit WHERE seq = 9")
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 9) and "missing" in (report.problem or "")


async def test_reordered_records(sealed: World) -> None:
    conn = db(sealed.services)
    conn.execute("UPDATE audit SET seq = -11 WHERE seq = 11")
    conn.execute("UPDATE audit SET seq = 11 WHERE seq = 12")
    conn.execute("UPDATE audit SET seq = 12 WHERE seq = -11")
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 11)


async def test_inserted_record_with_a_well_formed_leaf(sealed: World) -> None:
    """The attacker shifts records up and inserts one whose leaf hash they compute correctly."""
    conn = db(sealed.services)
    conn.execute("UPDATE audit SET seq = -seq WHERE seq >= 5")
    conn.execute("UPDATE audit SET seq = -seq + 1 WHERE seq < 0")
    [record] = await sealed.services.store.audit.search(AuditQuery(after_seq=3, limit=1))
    forged = record.__class__(**{**record.__dict__, "seq": None, "reason": "forged"})
    columns = (*rows.AUDIT_COLUMNS, "seq", "leaf_hash")
    values = (*rows.audit_values(forged), 5, leaf_hash(forged.leaf_bytes(5)))
    insert = f"INSERT INTO audit ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608
    conn.execute(insert, values)
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 5)


async def test_tail_truncation_is_caught_by_the_checkpoint_outside_the_database(sealed: World) -> None:
    conn = db(sealed.services)
    conn.execute("DELETE FROM audit WHERE seq > 15")
    conn.execute("DELETE FROM checkpoints")  # the attacker also removes what the database knew
    frontier = Frontier()
    for (leaf,) in conn.execute("SELECT leaf_hash FROM audit ORDER BY seq"):
        frontier.append(leaf)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_frontier'", (frontier.to_bytes(),))
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 16)
    assert "truncated" in (report.problem or "") and "outside the database" in (report.problem or "")


async def test_a_full_rewrite_with_recomputed_hashes_is_named_by_the_exported_copy(sealed: World) -> None:
    """An attacker with the database recomputes every leaf and the frontier: only off-box copies can tell."""
    conn = db(sealed.services)
    conn.execute("DELETE FROM checkpoints")
    records = await sealed.services.store.audit.search(AuditQuery(limit=100))
    frontier = Frontier()
    for record in records:
        assert record.seq is not None
        changed = record.__class__(**{**record.__dict__, "reason": "rewritten"}) if record.seq == 13 else record
        leaf = leaf_hash(changed.leaf_bytes(record.seq))
        conn.execute("UPDATE audit SET reason = ?, leaf_hash = ? WHERE seq = ?", (changed.reason, leaf, record.seq))
        frontier.append(leaf)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_frontier'", (frontier.to_bytes(),))
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 13) and "exported" in (report.problem or "")


async def test_a_forged_checkpoint_signature_fails(sealed: World) -> None:
    db(sealed.services).execute("UPDATE checkpoints SET root = zeroblob(32)")
    report = await verify(sealed.services)
    assert not report.ok and "signature" in (report.problem or "")


async def test_records_after_the_last_checkpoint_are_still_checked(sealed: World) -> None:
    await fill(sealed, 3)
    db(sealed.services).execute("UPDATE audit SET kid = 'gwk_x' WHERE seq = 22")
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 22)


async def test_a_record_hidden_as_pruned_before_its_retention_is_caught(sealed: World) -> None:
    now = sealed.clock()
    db(sealed.services).execute("UPDATE audit SET media_id = NULL, pruned_at = ? WHERE seq = 6", (now,))
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 6) and "pruned before" in (report.problem or "")


async def test_a_prune_run_with_a_false_future_clock_is_caught(sealed: World) -> None:
    """A prune "as of" next year (which ``audit prune --now`` now refuses) stores that false time as the
    prune time, which passes the check against the record's own time: verify also holds every prune
    against its own clock, and no retention has ended that ends after it."""
    counts = await prune(sealed.services.store, RequestContext(actor="ops"), sealed.clock() + 400 * DAY, 7)
    assert counts["records_pruned"] == 15  # every sealed viewer record, 90 days too early
    report = await verify(sealed.services)  # at the real time: the world's clock
    assert (report.ok, report.first_bad, report.problem) == (
        False,
        6,
        "record #6 was pruned before its retention ended",
    )


async def test_segments_exported_page_by_page_still_name_a_rewritten_record(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exports are paged (bounded memory when they fall behind); every page must still back verification."""
    monkeypatch.setattr("gateway.audit.publisher._PAGE", 4)
    await fill(world, 15)
    await world.services.checkpointer.write(world.clock())
    export_dir = world.services.config.export_dir
    assert export_dir is not None
    assert len(list((export_dir / "segments").glob("*/*.jsonl"))) >= 5  # 20 records in pages of 4
    conn = db(world.services)
    conn.execute("DELETE FROM checkpoints")
    [record] = await world.services.store.audit.search(AuditQuery(after_seq=17, limit=1))
    assert record.seq == 18
    forged = leaf_hash(record.__class__(**{**record.__dict__, "reason": "x"}).leaf_bytes(18))
    conn.execute("UPDATE audit SET reason = 'x', leaf_hash = ? WHERE seq = 18", (forged,))
    frontier = Frontier()
    for (leaf,) in conn.execute("SELECT leaf_hash FROM audit ORDER BY seq"):
        frontier.append(leaf)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_frontier'", (frontier.to_bytes(),))
    report = await verify(world.services)
    assert (report.ok, report.first_bad) == (False, 18) and "exported" in (report.problem or "")


@pytest.mark.parametrize(("column", "value"), [("event", "bogus"), ("detail", "{"), ("retention", None)])
async def test_a_row_that_is_no_record_is_named_not_a_crash(sealed: World, column: str, value: str | None) -> None:
    if value is None:  # a retention too long for the leaf's length field
        value = "x" * 70_000
    db(sealed.services).execute(f"UPDATE audit SET {column} = ? WHERE seq = 8", (value,))  # noqa: S608
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 8) and "altered" in (report.problem or "")


async def test_an_index_missing_an_entry_under_its_shipped_definition_fails_verify(sealed: World) -> None:
    """Red team round 5 (SQLite): an index rebuilt without one record's entry, its definition then written back
    as shipped (writable_schema), hid that record from ``audit search --kid`` and the incident report while
    verify said ok. Verify now runs SQLite's integrity check over the audit tables' indexes."""
    conn = db(sealed.services)
    [kid] = [k.kid for k in await sealed.services.store.keys.all("web")]
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.executescript(
        "PRAGMA writable_schema = ON;"
        "DROP INDEX audit_by_kid; CREATE INDEX audit_by_kid ON audit(kid, seq) WHERE seq <> 7;"
        "UPDATE sqlite_master SET sql = 'CREATE INDEX IF NOT EXISTS audit_by_kid ON audit(kid, seq)'"
        " WHERE name = 'audit_by_kid';"
    )
    conn.execute(f"PRAGMA schema_version = {int(version) + 10}")
    conn.close()
    found = await sealed.services.store.audit.search(AuditQuery(kid=kid, limit=100))
    assert 7 not in {r.seq for r in found}  # the attack works on searches...
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, None)  # ...and verify names it
    assert report.problem is not None and "missing from index audit_by_kid" in report.problem


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE audit SET pruned_at = 'x' WHERE seq = 7", "record #7 was altered: its prune time 'x' is not a time"),
        ("UPDATE audit SET leaf_hash = 'abc' WHERE seq = 7", "record #7 differs from the copy exported off-box"),
        ("UPDATE audit SET body_sha256 = 'abc' WHERE seq = 7", "record #7 was altered: its stored body hash"),
    ],
    ids=["prune-time-text", "leaf-hash-text", "body-hash-text"],
)
async def test_a_column_of_the_wrong_type_is_named_not_a_traceback(sealed: World, tamper: str, problem: str) -> None:
    """Red team round 5: these stopped verify with a TypeError and no record number."""
    db(sealed.services).execute(tamper)
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad) == (False, 7)
    assert report.problem is not None and report.problem.startswith(problem), report.problem
