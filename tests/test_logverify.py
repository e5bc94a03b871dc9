"""``audit verify`` (gateway.audit.verify) against signed checkpoints: each check by its exact verdict.

tests/test_audit_tamper.py tampers with records; here the attacker (or an
accident) works on the checkpoints and the tail, and each test asserts the
whole verdict: where verification stopped, and why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.audit import records as audit
from gateway.audit.checkpoints import LogSigner, load_public_keys
from gateway.audit.export import checkpoint_json
from gateway.audit.leaf import leaf_input
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.records import ERASED_VIEWER_RETENTION, RETENTION_SECONDS, AuditEvent
from gateway.audit.retention import CLOCK_SKEW, DAY
from gateway.audit.verify import Report, _ExportedLeaves, verify_log
from gateway.services import Services
from gateway.store import rows
from gateway.store.base import Checkpoint, Store
from tests.audit_support import db, fill
from tests.support import ADMIN, World

NO_OUTSIDE = "no checkpoint outside the database: tail truncation cannot be detected"
ALTERED = "records up to #{n} were altered, inserted, reordered or deleted"


@pytest.fixture
async def sealed(world: World) -> World:
    """20 records under a signed checkpoint, kept in the database and exported off-box."""
    await fill(world, 15)  # + 5 set-up records (principals, keys, media)
    await world.services.checkpointer.write(world.clock())
    assert (await world.services.store.audit.frontier()).size == 20
    return world


def _signer(services: Services) -> LogSigner:
    return LogSigner.load(services.config.log_signing_key_path)


async def _verify(
    services: Services,
    export_dir: Path | None,
    progress: list[tuple[int, int]] | None = None,
    now: float | None = None,
) -> Report:
    keys = load_public_keys([services.config.log_signing_key_path.with_suffix(".pub")])
    record = (lambda done, total: progress.append((done, total))) if progress is not None else None
    when = services.clock() if now is None else now
    return await verify_log(services.store, keys, export_dir, record, now=when, key_opens=services.audit_log.key_opens)


def _export_dir(services: Services) -> Path:
    assert services.config.export_dir is not None
    return services.config.export_dir


async def _replace_database_checkpoints(services: Services, *checkpoints: Checkpoint) -> None:
    db(services).execute("DELETE FROM checkpoints")
    async with services.store.transaction() as tx:
        for checkpoint in checkpoints:
            await tx.audit.add_checkpoint(checkpoint)


async def test_an_empty_log_verifies_with_nothing_counted(store: Store) -> None:
    report = await verify_log(store, {}, None, now=1_800_000_000.0)
    assert report == Report(records=0, checkpoints_checked=0, problem=None, first_bad=None, notes=[NO_OUTSIDE])


async def test_an_untouched_log_is_counted_and_reports_its_progress(sealed: World) -> None:
    progress: list[tuple[int, int]] = []
    report = await _verify(sealed.services, _export_dir(sealed.services), progress)
    assert report == Report(records=20, checkpoints_checked=2, problem=None, first_bad=None, notes=[])
    assert progress == [(20, 20)]
    without_export = await _verify(sealed.services, None)
    assert without_export == Report(records=20, checkpoints_checked=1, problem=None, first_bad=None, notes=[NO_OUTSIDE])


@pytest.mark.parametrize("size", [20, 10, 1])
async def test_the_tree_head_is_compared_with_every_signed_checkpoint(sealed: World, size: int) -> None:
    """A correctly signed checkpoint of another history (a fork, or a rewrite signed with a stolen key)."""
    services = sealed.services
    forged = _signer(services).sign(size, bytes(32), sealed.clock())
    await _replace_database_checkpoints(services, forged)
    report = await _verify(services, None)
    problem = f"tree head after record #{size} does not match its signed checkpoint: {ALTERED.format(n=size)}"
    assert (report.ok, report.first_bad, report.problem) == (False, size, problem)
    assert report.checkpoints_checked == 1


async def test_a_signed_checkpoint_of_the_true_head_mid_log_passes(sealed: World) -> None:
    services = sealed.services
    [checkpoint] = await services.store.audit.checkpoints()
    await _replace_database_checkpoints(services, checkpoint)
    assert (await _verify(services, None)).ok


@pytest.mark.parametrize("outside", [True, False], ids=["outside-the-database", "in-the-database"])
async def test_a_log_one_record_short_of_its_newest_checkpoint_is_truncated(sealed: World, outside: bool) -> None:
    services = sealed.services
    db(services).execute("DELETE FROM audit WHERE seq = 20")
    report = await _verify(services, _export_dir(services) if outside else None)
    where = "outside the database" if outside else "in the database"
    problem = f"log truncated: records #20..#20 are missing (the newest signed checkpoint, {where}, covers 20)"
    assert (report.ok, report.first_bad, report.problem, report.records) == (False, 20, problem, 19)


async def test_truncation_is_named_outside_the_database_even_when_the_database_checkpoint_is_older(
    sealed: World,
) -> None:
    """The database's own checkpoint was rolled back with the tail: the exported one still covers it."""
    services = sealed.services
    [checkpoint] = await services.store.audit.checkpoints()
    await fill(sealed, 3)
    newer = await services.checkpointer.write(sealed.clock())
    assert newer.tree_size == 23
    db(services).execute("DELETE FROM audit WHERE seq > 20")
    await _replace_database_checkpoints(services, checkpoint)
    report = await _verify(services, _export_dir(services))
    problem = (
        "log truncated: records #21..#23 are missing (the newest signed checkpoint, outside the database, covers 23)"
    )
    assert (report.first_bad, report.problem) == (21, problem)


async def test_two_signed_checkpoints_of_one_size_must_agree(sealed: World) -> None:
    services = sealed.services
    forged = _signer(services).sign(20, bytes(32), sealed.clock())
    (_export_dir(services) / "checkpoints" / "forged.json").write_text(json.dumps(checkpoint_json(forged)))
    report = await _verify(services, _export_dir(services))
    assert (report.ok, report.first_bad, report.problem, report.records) == (
        False, None, "two signed checkpoints disagree about the tree at size 20", 0,
    )  # fmt: skip


async def test_a_checkpoint_signed_by_an_unknown_key_stops_verification(sealed: World, tmp_path: Path) -> None:
    services = sealed.services
    LogSigner.create(tmp_path / "other.key")
    stranger = LogSigner.load(tmp_path / "other.key").sign(20, (await services.store.audit.frontier()).root(), 0)
    await _replace_database_checkpoints(services, stranger)
    report = await _verify(services, None)
    assert (report.ok, report.problem, report.checkpoints_checked, report.records) == (
        False, "checkpoint at size 20 has a bad or unknown signature", 0, 0,
    )  # fmt: skip


@pytest.mark.parametrize("text", ["{", "[]", '{"tree_size": 20}'], ids=["not-json", "not-an-object", "incomplete"])
async def test_an_unreadable_exported_checkpoint_is_a_failure_not_skipped(sealed: World, text: str) -> None:
    """Skipped, a damaged newest checkpoint would hide a truncated tail."""
    services = sealed.services
    damaged = _export_dir(services) / "checkpoints" / "zzz-damaged.json"
    damaged.write_text(text)
    report = await _verify(services, _export_dir(services))
    assert (report.ok, report.first_bad, report.records, report.checkpoints_checked) == (False, None, 0, 0)
    assert (report.problem or "").startswith(f"exported checkpoint {damaged} cannot be read: ")


async def test_no_export_directory_means_no_outside_checkpoints(sealed: World, tmp_path: Path) -> None:
    report = await _verify(sealed.services, tmp_path / "never-exported")
    assert (report.ok, report.checkpoints_checked, report.notes) == (True, 1, [NO_OUTSIDE])


async def test_files_in_the_export_that_are_no_segment_are_ignored(sealed: World) -> None:
    """Only ``<first>-<last>.jsonl`` names a segment: an operator's notes or a copy beside them are not read."""
    services = sealed.services
    segments = _export_dir(services) / "segments"
    directory = next(p for p in segments.iterdir() if p.is_dir())
    for name in ("notes.jsonl", "copy-of-1.jsonl", "1-last.jsonl"):
        (directory / name).write_text("not json\n")
    report = await _verify(services, _export_dir(services))
    assert (report.ok, report.records) == (True, 20)


def test_a_report_names_the_first_problem_it_was_given() -> None:
    report = Report().fail(7, "record #7 was altered").fail(9, "record #9 is missing (deleted)")
    assert (report.ok, report.first_bad, report.problem) == (False, 7, "record #7 was altered")
    assert Report().ok


@pytest.mark.parametrize("seq", [1, 13, 20], ids=["first-of-a-segment", "inside", "last-of-a-segment"])
async def test_a_rewritten_leaf_is_named_by_the_exported_copy_wherever_it_lies(sealed: World, seq: int) -> None:
    """The exported copy is checked first: it names a rewritten leaf whatever the contents now hash to."""
    db(sealed.services).execute("UPDATE audit SET leaf_hash = zeroblob(32) WHERE seq = ?", (seq,))
    report = await _verify(sealed.services, _export_dir(sealed.services))
    assert (report.first_bad, report.problem) == (
        seq,
        f"record #{seq} differs from the copy exported off-box at its checkpoint",
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("body_sha256 = NULL", "has no body hash: written before schema v5 in the pre-release leaf layout "
                               "(docs/audit.md, 'Leaf format'), or altered"),
        ("body_sha256 = zeroblob(32)", "was altered: its stored body hash does not match its contents"),
        ("reason = 'rewritten'", "was altered: its contents do not match its leaf hash"),
        ("event = 'bogus'", "was altered: a column holds a value no record has"),
    ],
    ids=["no-body-hash", "wrong-body-hash", "edited", "unreadable"],
)  # fmt: skip
async def test_each_way_a_record_stops_matching_its_leaf_is_named(sealed: World, change: str, problem: str) -> None:
    db(sealed.services).execute(f"UPDATE audit SET {change} WHERE seq = 7")  # noqa: S608 (fixed test values)
    report = await _verify(sealed.services, None)
    assert (report.first_bad, report.problem) == (7, f"record #7 {problem}")


def _prune_by_hand(services: Services, seq: int, pruned_at: float) -> tuple[float, str]:
    """What a prune run does to one record: its personal columns cleared, the header and body hash kept."""
    conn = db(services)
    cleared = ", ".join(f"{c} = NULL" for c in rows.PRUNABLE_COLUMNS)
    conn.execute(f"UPDATE audit SET {cleared}, pruned_at = ? WHERE seq = ?", (pruned_at, seq))  # noqa: S608
    time, retention = conn.execute("SELECT time, retention FROM audit WHERE seq = ?", (seq,)).fetchone()
    return time, retention


async def _log_prune(services: Services, at: float, records_pruned: int = 1) -> None:
    """The audit:pruned record a prune run appends beside what it prunes (gateway.audit.retention)."""
    sealed_upto = (await services.store.audit.checkpoints())[-1].tree_size
    detail = {"records_pruned": records_pruned, "raw_entries_purged": 0, "sealed_upto": sealed_upto}
    async with services.store.transaction() as tx:
        await tx.audit.append([audit.change(ADMIN, AuditEvent.AUDIT_PRUNED, now=at, detail=detail)])


async def test_a_viewer_record_may_be_pruned_from_the_end_of_the_erased_retention_and_not_before(
    sealed: World,
) -> None:
    """A pruned viewer record may have been erased early (30 days): that is the bound, to the second."""
    services = sealed.services
    time, retention = _prune_by_hand(services, 6, 0)
    assert retention == "viewer"
    ends = time + ERASED_VIEWER_RETENTION
    _prune_by_hand(services, 6, ends)
    await _log_prune(services, ends)
    assert (await _verify(services, None, now=ends - CLOCK_SKEW)).ok
    too_early = "record #6 was pruned before its retention ended"
    assert (await _verify(services, None, now=ends - CLOCK_SKEW - 1)).problem == too_early  # by the verifier's clock
    _prune_by_hand(services, 6, ends - 1)
    await _log_prune(services, ends - 1)
    assert (await _verify(services, None, now=ends)).problem == too_early  # by the stored prune time


async def test_an_engineer_record_keeps_its_six_years(sealed: World) -> None:
    services = sealed.services
    time, retention = _prune_by_hand(services, 1, 0)
    assert retention == "engineer"
    ends = time + RETENTION_SECONDS["engineer"]
    _prune_by_hand(services, 1, time + 31 * DAY)  # past an erased viewer's 30 days: no excuse for an engineer record
    await _log_prune(services, time + 31 * DAY)
    assert (await _verify(services, None, now=ends)).problem == "record #1 was pruned before its retention ended"
    _prune_by_hand(services, 1, ends)
    await _log_prune(services, ends)
    assert (await _verify(services, None, now=ends)).ok


async def test_a_record_wiped_without_a_logged_prune_is_named(sealed: World) -> None:
    """Red team 2026-11-25: viewer records wiped by hand with a made-up prune time 40 days on passed verify."""
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    at = time + 40 * DAY
    _prune_by_hand(services, 6, at)
    report = await _verify(services, None, now=at)
    assert (report.first_bad, report.problem) == (6, f"record #6 was pruned at {at:.0f} by no prune the log records")


async def test_a_prune_that_wiped_more_than_it_counted_is_named(sealed: World) -> None:
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    at = time + 40 * DAY
    await _log_prune(services, at, records_pruned=1)
    for seq in (6, 7):
        _prune_by_hand(services, seq, at)
    report = await _verify(services, None, now=at)
    assert (report.first_bad, report.problem) == (
        7,
        f"2 records were pruned at {at:.0f}, but that prune recorded 1: records were wiped by hand",
    )


async def test_a_pruned_record_keeps_the_header_its_leaf_was_made_of(sealed: World) -> None:
    """Moving a pruned record's time back would make an early prune look due: its leaf says otherwise."""
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    _prune_by_hand(services, 6, time + 400 * DAY)
    db(services).execute("UPDATE audit SET time = time - 400 * 86400 WHERE seq = 6")
    report = await _verify(services, None, now=time + 400 * DAY)
    assert report.problem == (
        "record #6 was altered: the time, class, event and body hash it kept when pruned do not match its leaf hash"
    )


async def test_a_pruned_record_of_an_unknown_class_is_a_failure(sealed: World) -> None:
    """Even with a leaf recomputed to match, nobody can tell when a record of an unknown class was due."""
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    _prune_by_hand(services, 6, time + 400 * DAY)
    conn = db(services)
    event, body = conn.execute("SELECT event, body_sha256 FROM audit WHERE seq = 6").fetchone()
    forged = leaf_hash(leaf_input(6, time, "forever", event, bytes(body)))
    conn.execute("UPDATE audit SET retention = 'forever', leaf_hash = ? WHERE seq = 6", (forged,))
    report = await _verify(services, None, now=time + 400 * DAY)
    assert (report.first_bad, report.problem) == (
        6, "record #6 has an unknown retention class 'forever': when it could be pruned cannot be told",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("UPDATE audit SET reason = 'rewritten' WHERE seq = 7",
         "record #7 was altered: its contents do not match its leaf hash"),
        ("DELETE FROM audit WHERE seq = 7", "record #7 is missing (deleted)"),
    ],
    ids=["edited", "deleted"],
)  # fmt: skip
async def test_verification_stops_at_the_first_bad_record_and_counts_nothing_after_it(
    sealed: World, change: str, problem: str
) -> None:
    """The whole verdict: a failed walk does not go on to report the rest of the log as verified."""
    db(sealed.services).execute(change)
    report = await _verify(sealed.services, None)
    assert report == Report(records=0, checkpoints_checked=1, problem=problem, first_bad=7, notes=[])


def test_exported_leaves_are_read_one_segment_at_a_time_and_found_at_both_ends(tmp_path: Path) -> None:
    """``audit verify`` holds one exported segment in memory, whichever record of it is asked for."""
    segments = {(1, 3): "viewer", (4, 6): "engineer", (7, 7): "viewer"}
    for (first, last), retention in segments.items():
        folder = tmp_path / "segments" / retention
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"seq": n, "leaf_hash": bytes([n]).hex() * 32}) for n in range(first, last + 1)]
        (folder / f"{first:012d}-{last:012d}.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "segments" / "viewer" / "notes-x.jsonl").write_text("not a segment\n")
    exported = _ExportedLeaves(tmp_path)
    for seq, held in [(1, 3), (3, 3), (2, 3), (4, 3), (6, 3), (5, 3), (7, 1), (1, 3)]:
        assert exported.get(seq) == bytes([seq]) * 32
        assert len(exported._leaves) == held  # that segment only
    assert exported.get(8) is None
    assert _ExportedLeaves(None).get(1) is None
    assert _ExportedLeaves(tmp_path / "missing").get(1) is None


async def _log_prune_detail(services: Services, at: float, detail: dict[str, object]) -> None:
    async with services.store.transaction() as tx:
        await tx.audit.append([audit.change(ADMIN, AuditEvent.AUDIT_PRUNED, now=at, detail=detail)])


@pytest.mark.parametrize(("sealed_upto", "problem"), [(6, None), (5, "that prune did not reach it")])
async def test_a_prune_reaches_only_as_far_as_the_checkpoint_it_was_bounded_by(
    sealed: World, sealed_upto: int, problem: str | None
) -> None:
    """A prune only touches sealed records: one pruned past the prune's own ``sealed_upto`` was wiped by hand."""
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    at = time + 40 * DAY
    _prune_by_hand(services, 6, at)
    await _log_prune_detail(services, at, {"records_pruned": 1, "raw_entries_purged": 0, "sealed_upto": sealed_upto})
    report = await _verify(services, None, now=at)
    expected = None if problem is None else f"record #6 was pruned at {at:.0f}, but {problem}"
    assert (report.problem, report.first_bad) == (expected, None if problem is None else 6)


async def test_a_prune_record_without_a_readable_bound_reaches_nothing(sealed: World) -> None:
    """Not even record #1: a bound that is no number counts as none."""
    services = sealed.services
    time, _ = _prune_by_hand(services, 1, 0)
    at = time + RETENTION_SECONDS["engineer"]
    _prune_by_hand(services, 1, at)
    await _log_prune_detail(services, at, {"records_pruned": 1, "raw_entries_purged": 0, "sealed_upto": "20"})
    report = await _verify(services, None, now=at)
    assert (report.first_bad, report.problem) == (
        1,
        f"record #1 was pruned at {at:.0f}, but that prune did not reach it",
    )


async def test_records_pruned_by_a_prune_whose_own_record_was_pruned_since_are_not_blamed(sealed: World) -> None:
    """Years on, the audit:pruned record is itself pruned: what it accounted for cannot be re-counted, nor blamed."""
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    at = time + 40 * DAY
    _prune_by_hand(services, 6, at)
    await _log_prune(services, at)  # record #21
    _, retention = _prune_by_hand(services, 21, 0)
    later = at + RETENTION_SECONDS[retention]
    _prune_by_hand(services, 21, later)
    await _log_prune_detail(services, later, {"records_pruned": 1, "raw_entries_purged": 0, "sealed_upto": 22})
    report = await _verify(services, None, now=later)
    assert (report.ok, report.problem, report.records) == (True, None, 22)


async def test_an_ordinary_record_at_the_made_up_prune_time_does_not_account_for_a_wiped_record(
    sealed: World,
) -> None:
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    at = time + 40 * DAY
    async with services.store.transaction() as tx:
        await tx.audit.append([audit.change(ADMIN, AuditEvent.KEY_CREATED, now=at, detail={})])
    _prune_by_hand(services, 6, at)
    report = await _verify(services, None, now=at)
    assert (report.first_bad, report.problem) == (6, f"record #6 was pruned at {at:.0f} by no prune the log records")


async def test_only_a_pruned_prune_record_excuses_the_prunes_of_its_time(sealed: World) -> None:
    """Another pruned record whose own time happens to equal a made-up prune time excuses nothing."""
    services = sealed.services
    time, _ = _prune_by_hand(services, 6, 0)
    at = time + 40 * DAY
    async with services.store.transaction() as tx:  # record #21, an engineer's, written at `at`
        await tx.audit.append([audit.change(ADMIN, AuditEvent.KEY_CREATED, now=at, detail={})])
    _, retention = _prune_by_hand(services, 21, 0)
    later = at + RETENTION_SECONDS[retention]
    _prune_by_hand(services, 21, later)  # pruned when due, by a logged prune
    await _log_prune_detail(services, later, {"records_pruned": 1, "raw_entries_purged": 0, "sealed_upto": 22})
    _prune_by_hand(services, 6, at)  # wiped by hand, its prune time made up to equal #21's time
    report = await _verify(services, None, now=later)
    assert (report.first_bad, report.problem) == (6, f"record #6 was pruned at {at:.0f} by no prune the log records")


async def test_a_log_emptied_under_a_database_checkpoint_of_one_record_is_truncated_in_the_database(
    sealed: World,
) -> None:
    """No checkpoint outside: the one that covers the missing tail is the database's own, even at size 1."""
    services = sealed.services
    tree = Frontier()
    tree.append(bytes(db(services).execute("SELECT leaf_hash FROM audit WHERE seq = 1").fetchone()[0]))
    checkpoint = _signer(services).sign(1, tree.root(), sealed.clock())
    await _replace_database_checkpoints(services, checkpoint)
    db(services).execute("DELETE FROM audit")
    report = await _verify(services, None)
    problem = "log truncated: records #1..#1 are missing (the newest signed checkpoint, in the database, covers 1)"
    assert (report.ok, report.first_bad, report.problem, report.records) == (False, 1, problem, 0)
