"""Attack: erase a record inside its retention by dressing it up as pruned, and ``audit verify`` stays green.

Pruning clears a record's contents and keeps its position, time, class and
leaf hash. When the leaf covered only the contents, the kept ``time`` and
``retention`` were trusted as written: someone with the database clears an
engineer record (six years), sets its time seven years back and a prune
time of now, and verify calls it a due prune; or sets the class to one
verify does not know (read as 0 s). The leaf now covers a header that
survives pruning (position, time, class, event) and the body's hash, kept
beside it, so each of these changes breaks the leaf; a class without a
known retention is a failure, never 0 s.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from gateway.audit.merkle import leaf_hash
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext
from gateway.audit.retention import DAY, prune
from gateway.store import rows
from tests.audit_support import db, fill, verify
from tests.support import World

YEAR = 365 * DAY
ALTERED = "was altered: the time, class, event and body hash it kept when pruned do not match its leaf hash"


@pytest.fixture
async def sealed(world: World) -> World:
    """20 records (5 engineer set-up records, 15 viewer issuances) under a signed, exported checkpoint."""
    await fill(world, 15)
    await world.services.checkpointer.write(world.clock())
    return world


def _engineer_seq(conn: sqlite3.Connection) -> int:
    (seq,) = conn.execute("SELECT seq FROM audit WHERE retention = 'engineer' ORDER BY seq LIMIT 1").fetchone()
    return int(seq)


def _dress_as_pruned(conn: sqlite3.Connection, seq: int, now: float, **kept: object) -> None:
    """What the attacker writes: the prunable columns cleared, a prune time, and any kept column changed."""
    cleared = ", ".join(f"{c} = NULL" for c in rows.PRUNABLE_COLUMNS)
    changes = "".join(f", {name} = ?" for name in kept)
    sql = f"UPDATE audit SET {cleared}, pruned_at = ?{changes} WHERE seq = ?"  # noqa: S608 (test-chosen names)
    conn.execute(sql, (now, *kept.values(), seq))


async def test_an_engineer_record_backdated_and_dressed_as_pruned_is_caught(sealed: World) -> None:
    conn = db(sealed.services)
    seq, now = _engineer_seq(conn), sealed.clock()
    assert (await verify(sealed.services)).ok
    _dress_as_pruned(conn, seq, now, time=now - 7 * YEAR)
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad, report.problem) == (False, seq, f"record #{seq} {ALTERED}")


@pytest.mark.parametrize("retention", ["x", "viewer", ""])
async def test_a_record_given_another_class_and_dressed_as_pruned_is_caught(sealed: World, retention: str) -> None:
    """'x' was read as 0 s of retention; 'viewer' is 30 days where the truth is six years."""
    conn = db(sealed.services)
    seq, now = _engineer_seq(conn), sealed.clock()
    _dress_as_pruned(conn, seq, now, time=now - 100 * DAY, retention=retention)
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad, report.problem) == (False, seq, f"record #{seq} {ALTERED}")


async def test_a_pruned_record_without_its_body_hash_is_caught(sealed: World) -> None:
    sealed.clock.advance(91 * DAY)
    counts = await prune(sealed.services.store, RequestContext(actor="ops"), sealed.clock(), 7)
    assert counts["records_pruned"] == 15 and (await verify(sealed.services)).ok
    conn = db(sealed.services)
    (seq,) = conn.execute("SELECT min(seq) FROM audit WHERE pruned_at IS NOT NULL").fetchone()
    conn.execute("UPDATE audit SET body_sha256 = NULL WHERE seq = ?", (seq,))
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad, report.problem) == (False, seq, f"record #{seq} {ALTERED}")


async def test_a_record_of_an_unknown_class_is_a_failure_once_pruned_not_zero_seconds(world: World) -> None:
    """Even a record written with a class verify does not know (its leaf intact) cannot be judged pruned in time."""
    record = AuditRecord(world.clock(), AuditEvent.KEY_CREATED, "ops", retention="x")
    [seq] = await world.services.store.append_audit_group([record], [], [], world.clock())
    await world.services.checkpointer.write(world.clock())
    assert (await verify(world.services)).ok
    world.clock.advance(DAY)
    cleared = ", ".join(f"{c} = NULL" for c in rows.PRUNABLE_COLUMNS)
    db(world.services).execute(f"UPDATE audit SET {cleared}, pruned_at = ? WHERE seq = ?", (world.clock(), seq))  # noqa: S608
    report = await verify(world.services)
    assert (report.ok, report.first_bad, report.problem) == (
        False,
        seq,
        f"record #{seq} has an unknown retention class 'x': when it could be pruned cannot be told",
    )


async def test_a_stored_body_hash_that_does_not_match_the_record_is_caught_before_pruning(sealed: World) -> None:
    """Changed while the record is whole, it would carry a false body into the leaf once pruned."""
    conn = db(sealed.services)
    seq = _engineer_seq(conn)
    conn.execute("UPDATE audit SET body_sha256 = zeroblob(32) WHERE seq = ?", (seq,))
    report = await verify(sealed.services)
    assert (report.ok, report.first_bad, report.problem) == (
        False,
        seq,
        f"record #{seq} was altered: its stored body hash does not match its contents",
    )


async def test_exported_segments_carry_what_recomputes_every_leaf(sealed: World) -> None:
    """Off-box, a segment line alone gives its leaf: header, body hash, and the record that hashes to it."""
    from gateway.audit.leaf import leaf_input  # here: the module imports on the code before the fix

    export_dir = sealed.services.config.export_dir
    assert export_dir is not None
    lines = [json.loads(line) for path in sorted((export_dir / "segments").glob("*/*.jsonl"))
             for line in path.read_text().splitlines()]  # fmt: skip
    assert sorted(line["seq"] for line in lines) == list(range(1, 21))
    for line in lines:
        body = bytes.fromhex(line["body_sha256"])
        leaf = leaf_input(line["seq"], line["time"], line["retention"], line["event"], body)
        assert leaf_hash(leaf).hex() == line["leaf_hash"]
        record = {k: v for k, v in line["record"].items() if k != "seq"}
        dumped = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        assert hashlib.sha256(dumped).digest() == body
