"""``audit verify``: walk the log and its checkpoints, and name the first bad record.

Checks, in one pass in bounded memory (a page of records and an O(log n)
Merkle frontier at a time):

- positions are contiguous (a deleted record leaves a gap);
- each record's contents hash to its stored leaf (an edit, or a record moved
  to another position, no longer matches: positions are part of the leaf);
  a pruned record's kept header (position, time, class, event) and body hash
  do too, so its time and class cannot be changed to make a prune look due;
- each leaf equals the copy exported off-box at its checkpoint, when present
  (names the first record an attacker rewrote together with its hashes);
- the tree head equals every signed checkpoint, in the database and off-box;
- a pruned record was pruned no earlier than its retention allowed, by the
  stored prune time *and* by the verifier's own clock (a prune run with a
  false clock stores a false time; a retention not yet over is over for
  nobody); a class without a known retention is a failure;
- the log is not shorter than the newest checkpoint held outside the database
  (tail truncation);
- the child rows of batch records (``audit_urls``, the index by key, media
  and URL digest) are exactly each batch record's list of URLs: a row added,
  removed or altered names its record (a search would otherwise find a URL
  the log never issued, or miss one it did); none belongs to a pruned record,
  a record of another kind or a position outside the log;
- every viewer whose personal fields the log holds sealed still has the key
  that opens them, unless the log records their erasure (``subject:erased``):
  a key deleted by hand makes those fields unreadable as surely as an erasure,
  with nothing on record; and, given the means to open keys (``key_opens``:
  ``gatewayctl audit verify`` passes the master key's), each such key still opens
  the first record sealed under it (a key overwritten by hand is as lost as one
  deleted).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.checkpoints import signature_ok
from gateway.audit.export import checkpoint_from_json
from gateway.audit.leaf import leaf_input
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.records import (
    ERASED_VIEWER_RETENTION,
    RETENTION_SECONDS,
    VIEWER,
    AuditEvent,
)
from gateway.audit.retention import CLOCK_SKEW
from gateway.store.base import Checkpoint, LogEntry, Store
from gateway.store.rows import child_rows

PAGE = 5000
_NO_SEQ = -(2**63)  # below every position a child row could name
_URL_CHUNK = 500  # records whose child rows are read at once (a batch record has at most 100)
_FORMAT = "docs/audit.md, 'Leaf format'"
Progress = Callable[[int, int], None]
KeyOpens = Callable[[str, bytes, bytes], Awaitable[bool]]  # (ref, sealed fields, sealed key)
_KEY_PAGE = 1000


@dataclass
class Report:
    records: int = 0
    checkpoints_checked: int = 0
    problem: str | None = None
    first_bad: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def fail(self, seq: int | None, problem: str) -> Report:
        if self.problem is None:
            self.first_bad, self.problem = seq, problem
        return self


def external_checkpoints(export_dir: Path | None, report: Report) -> list[Checkpoint] | None:
    """The checkpoints exported off-box; None (and a failed report) when one cannot be read:
    skipping it would let a damaged newest checkpoint hide a truncated tail."""
    if export_dir is None or not (export_dir / "checkpoints").is_dir():
        return []
    found = []
    for path in sorted((export_dir / "checkpoints").glob("*.json")):
        try:
            found.append(checkpoint_from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            report.fail(None, f"exported checkpoint {path} cannot be read: {exc}")
            return None
    return found


class _ExportedLeaves:
    """Leaf hashes from exported segments, one segment file in memory at a time."""

    def __init__(self, export_dir: Path | None) -> None:
        self._files: list[tuple[int, int, Path]] = []
        if export_dir is not None and (export_dir / "segments").is_dir():
            for path in (export_dir / "segments").glob("*/*.jsonl"):
                first, _, last = path.stem.partition("-")
                if first.isdigit() and last.isdigit():
                    self._files.append((int(first), int(last), path))
        self._range = (0, -1)
        self._leaves: dict[int, bytes] = {}

    def get(self, seq: int) -> bytes | None:
        if not self._range[0] <= seq <= self._range[1]:
            self._load(seq)
        return self._leaves.get(seq)

    def _load(self, seq: int) -> None:
        self._leaves = {}
        self._range = (seq, seq)
        for first, last, path in self._files:
            if first <= seq <= last:
                self._range = (first, last)
                for line in path.read_text().splitlines():
                    item = json.loads(line)
                    self._leaves[int(item["seq"])] = bytes.fromhex(item["leaf_hash"])


def _record_problem(entry: LogEntry) -> str | None:
    """Why a record's contents do not give its leaf, or its stored body hash, or None."""
    assert entry.record is not None
    if entry.body_sha256 is None:
        return f"has no body hash: written before schema v5 in the pre-release leaf layout ({_FORMAT}), or altered"
    record = entry.record
    try:
        body = record.body_sha256()
        leaf = leaf_hash(leaf_input(entry.seq, record.time, record.retention, record.event.value, body))
    except (TypeError, ValueError, OverflowError):  # a column of a type no record has
        return "was altered: its contents do not match its leaf hash"
    if leaf != entry.leaf_hash:
        return "was altered: its contents do not match its leaf hash"
    if body != entry.body_sha256:
        # Unused until the record is pruned, when it alone carries the body into the leaf.
        return "was altered: its stored body hash does not match its contents"
    return None


def _pruned_problem(entry: LogEntry, now: float) -> str | None:
    """Why a pruned record's kept header does not give its leaf, or its prune was not yet due, or None."""
    if entry.pruned_at is None:
        return "was altered: a column holds a value no record has"
    try:
        body = entry.body_sha256 or b""  # none: written in the pre-release layout, or removed
        leaf = leaf_hash(leaf_input(entry.seq, entry.time, entry.retention, entry.event, body))
    except (TypeError, ValueError, OverflowError):
        leaf = None
    if leaf != entry.leaf_hash:
        return "was altered: the time, class, event and body hash it kept when pruned do not match its leaf hash"
    if entry.retention not in RETENTION_SECONDS:
        return f"has an unknown retention class {entry.retention!r}: when it could be pruned cannot be told"
    if not isinstance(entry.pruned_at, int | float) or isinstance(entry.pruned_at, bool):
        return f"was altered: its prune time {entry.pruned_at!r} is not a time"
    # Whether a viewer was erased is gone with the record: the shorter, erased retention is the bound.
    shortest = ERASED_VIEWER_RETENTION if entry.retention == VIEWER else RETENTION_SECONDS[entry.retention]
    ends = entry.time + shortest
    if entry.pruned_at < ends or now + CLOCK_SKEW < ends:
        return "was pruned before its retention ended"
    return None


@dataclass
class _Prunes:
    """Every pruned record must have been pruned by a prune the log records (``audit:pruned``, same time),
    and no prune may have pruned more records than it counted: a record wiped early by hand, with a made-up
    prune time, is found even when its retention bound alone would let it pass."""

    pruned: dict[float, list[int]] = field(default_factory=dict)
    logged: dict[float, list[tuple[int, object, object]]] = field(default_factory=dict)
    unreadable: set[float] = field(default_factory=set)  # prune records since pruned themselves (years on)

    def note(self, entry: LogEntry) -> None:
        if entry.record is None:
            if entry.event == AuditEvent.AUDIT_PRUNED.value:
                self.unreadable.add(entry.time)
            if entry.pruned_at is not None:
                self.pruned.setdefault(entry.pruned_at, []).append(entry.seq)
        elif entry.record.event is AuditEvent.AUDIT_PRUNED:
            detail = entry.record.detail
            operation = (entry.seq, detail.get("records_pruned"), detail.get("sealed_upto"))
            self.logged.setdefault(float(entry.record.time), []).append(operation)

    def problem(self) -> tuple[int, str] | None:
        for at, seqs in sorted(self.pruned.items()):
            if at in self.unreadable:
                continue
            operations = self.logged.get(at, [])
            if not operations:
                return seqs[0], f"record #{seqs[0]} was pruned at {at:.0f} by no prune the log records"
            counted = sum(n for _, n, _ in operations if isinstance(n, int))
            last, sealed = (
                max(seq for seq, _, _ in operations),
                max((s for _, _, s in operations if isinstance(s, int)), default=0),
            )
            for seq in seqs:
                if seq > last or seq > sealed:
                    return seq, f"record #{seq} was pruned at {at:.0f}, but that prune did not reach it"
            if len(seqs) > counted:
                return seqs[counted], (
                    f"{len(seqs)} records were pruned at {at:.0f}, but that prune recorded {counted}: "
                    "records were wiped by hand"
                )
        return None


def _check_entry(entry: LogEntry, expected: int, exported: _ExportedLeaves, report: Report, now: float) -> bool:
    if entry.seq != expected:
        what = "is missing (deleted)" if entry.seq > expected else "appears twice or out of order"
        report.fail(expected, f"record #{expected} {what}")
        return False
    copy = exported.get(entry.seq)
    if copy is not None and copy != entry.leaf_hash:
        # First: the leaf itself was rewritten, whatever the contents now hash to.
        problem: str | None = "differs from the copy exported off-box at its checkpoint"
    elif entry.record is not None:
        problem = _record_problem(entry)
    else:
        problem = _pruned_problem(entry, now)
    if problem is not None:
        report.fail(entry.seq, f"record #{entry.seq} {problem}")
        return False
    return True


async def _urls_problem(store: Store, page: list[LogEntry], after: int) -> tuple[int, str] | None:
    """The first record of ``page`` (records after ``after``) whose child rows differ from its list of URLs."""
    for start in range(0, len(page), _URL_CHUNK):
        chunk = page[start : start + _URL_CHUNK]
        found = set(await store.audit.urls(after if start == 0 else chunk[0].seq - 1, chunk[-1].seq))
        expected = {(e.seq, *url) for e in chunk if e.record is not None for url in child_rows(e.record)}
        if found != expected:
            seq = min(row[0] for row in found ^ expected)
            lost, added = len(expected - found), len(found - expected)
            return seq, (
                f"record #{seq}: its rows in the URL index (audit_urls) do not match the URLs it lists "
                f"({lost} missing or altered, {added} added or altered): the index was altered"
            )
    return None


def _note_first_sealed(entry: LogEntry, first_sealed: dict[str, tuple[int, bytes]]) -> None:
    """Each subject's first sealed fields since their last erasure (a record about them after it is sealed under
    a new key): only those, and where they are, so memory grows with the viewers, not the records."""
    record = entry.record
    if record is None or record.subject is None:
        return
    if record.event is AuditEvent.SUBJECT_ERASED:
        first_sealed.pop(record.subject, None)
    elif record.personal is not None:
        first_sealed.setdefault(record.subject, (entry.seq, record.personal))


async def _unopened_key(
    store: Store, first_sealed: dict[str, tuple[int, bytes]], key_opens: KeyOpens
) -> tuple[int, str] | None:
    """The first subject (by record) whose stored key does not open the first fields sealed for them."""
    failed: list[tuple[int, str]] = []
    after = ""
    while page := await store.subjects.sealed_keys(after, _KEY_PAGE):
        for ref, sealed in page:
            first = first_sealed.get(ref)
            if first is not None and not await key_opens(ref, first[1], sealed):
                failed.append((first[0], ref))
        after = page[-1][0]
    if not failed:
        return None
    seq, ref = min(failed)
    return seq, (
        f"subject {ref}: its audit key does not open its sealed fields (record #{seq} and later are unreadable; "
        "subject_keys altered by hand?)"
    )


def _unkeyed_problem(ref: str, first: int) -> str:
    return (
        f"subject {ref}: its audit key is missing and the log records no erasure (no subject:erased): "
        f"the personal fields of record #{first} and later are unreadable (subject_keys altered by hand?)"
    )


def _signed_heads(
    checkpoints: list[Checkpoint], keys: dict[str, Ed25519PublicKey], report: Report
) -> dict[int, bytes] | None:
    heads: dict[int, bytes] = {}
    for checkpoint in checkpoints:
        if not signature_ok(checkpoint, keys):
            report.fail(None, f"checkpoint at size {checkpoint.tree_size} has a bad or unknown signature")
            return None
        known = heads.setdefault(checkpoint.tree_size, checkpoint.root)
        if known != checkpoint.root:
            report.fail(None, f"two signed checkpoints disagree about the tree at size {checkpoint.tree_size}")
            return None
    report.checkpoints_checked = len(checkpoints)
    return heads


async def verify_log(
    store: Store,
    keys: dict[str, Ed25519PublicKey],
    export_dir: Path | None = None,
    progress: Progress | None = None,
    *,
    now: float,
    key_opens: KeyOpens | None = None,
) -> Report:
    """``now`` is the verifier's own clock: no record may be pruned whose retention ends after it.

    ``key_opens(ref, sealed_fields, sealed_key)``: whether a subject's sealed key opens fields sealed for them;
    without it, the keys are only checked to exist (a note says so)."""
    report = Report()
    first_sealed: dict[str, tuple[int, bytes]] = {}
    outside = external_checkpoints(export_dir, report)
    if outside is None:
        return report
    heads = _signed_heads([*await store.audit.checkpoints(), *outside], keys, report)
    if heads is None:
        return report
    total = max([(await store.audit.frontier()).size, *heads.keys()], default=0)
    exported = _ExportedLeaves(export_dir)
    frontier = Frontier()
    prunes = _Prunes()
    while page := await store.audit.entries(frontier.size, PAGE):
        done = frontier.size
        for entry in page:
            if not _check_entry(entry, frontier.size + 1, exported, report, now):
                return report
            prunes.note(entry)
            _note_first_sealed(entry, first_sealed)
            frontier.append(entry.leaf_hash)
            head = heads.get(frontier.size)
            if head is not None and head != frontier.root():
                return report.fail(
                    frontier.size,
                    f"tree head after record #{frontier.size} does not match its signed checkpoint: "
                    f"records up to #{frontier.size} were altered, inserted, reordered or deleted",
                )
        wrong = await _urls_problem(store, page, done)
        if wrong is not None:
            return report.fail(*wrong)
        report.records = frontier.size
        if progress:
            progress(frontier.size, total)
    damaged = await store.audit.index_problems()  # the rows are proved; searches read them through indexes
    if damaged:
        return report.fail(None, f"the audit indexes searches use are not the gateway's: {'; '.join(damaged)}")
    beyond = await store.audit.urls(_NO_SEQ, 0) + await store.audit.urls(frontier.size, None)  # outside the log
    if beyond:
        return report.fail(beyond[0][0], f"record #{beyond[0][0]} does not exist, but the URL index lists its URLs")
    unaccounted = prunes.problem()
    if unaccounted is not None:
        return report.fail(*unaccounted)
    lost = await store.subjects.unkeyed(1)
    if lost:
        ((ref, first),) = lost
        return report.fail(first, _unkeyed_problem(ref, first))
    if key_opens is None:
        if first_sealed:
            report.notes.append("subject keys checked to exist, not to open their records (no master key given)")
    else:
        unopened = await _unopened_key(store, first_sealed, key_opens)
        if unopened is not None:
            return report.fail(*unopened)
    newest = max(heads, default=0)
    if newest > frontier.size:
        where = (
            "outside the database" if newest <= max((c.tree_size for c in outside), default=0) else "in the database"
        )
        return report.fail(
            frontier.size + 1,
            f"log truncated: records #{frontier.size + 1}..#{newest} are missing "
            f"(the newest signed checkpoint, {where}, covers {newest})",
        )
    if not outside:
        report.notes.append("no checkpoint outside the database: tail truncation cannot be detected")
    return report
