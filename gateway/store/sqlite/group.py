"""The audit hot path for SQLite: a whole group commit in one call on its own thread.

Seven awaited statements cost seven trips through a busy event loop (about
7 ms under load, where the fsync itself costs 0.3 ms). Here one plain sqlite3
connection, used only by one worker thread, runs BEGIN ... COMMIT in one go;
the event loop is never blocked and waits once. Rows go in multi-row
statements: sqlite3 releases the GIL around every statement step, and each
re-acquisition waits behind the busy event-loop thread, so a fixed handful of
steps per group (not one per row) keeps the commit short. Writers on other connections
(admin changes, other processes) are serialised by SQLite's own lock, and the
Merkle frontier is read inside the transaction, so positions never collide.

Group writers of several processes on one database (``serve --workers N``)
also take turns on a lock file beside it (``flock``) before ``BEGIN IMMEDIATE``.
SQLite's own lock waits by sleeping 1, 2, 5, 10 … 100 ms between tries: two
workers committing every millisecond or so lost 1-3 ms at the 90th percentile
and up to 80 ms per contended commit (1.2-1.5 s of every 5 s). The kernel
wakes a ``flock`` waiter the moment the lock is released, and the wait happens
in C with the GIL released. It stays bounded like SQLite's busy timeout: a
group whose turn has not come after ``WAIT_SECONDS`` is given up (the
issuance fails closed) and is not written when the turn comes after all
(``_Turn``).

The hand-off is one queue put and one ``call_soon_threadsafe`` back: the writer is a thread of its own
reading a ``SimpleQueue``, and the waiting side's bound is a timer. A ``ThreadPoolExecutor`` and
``asyncio.wait`` cost the event loop's thread a future chained to a future, condition variables and a
waiter per group: at a light load (groups of one or two records) that machinery was the largest part of
the audit's CPU on the loop's side (py-spy, GIL held: ``ThreadPoolExecutor.submit``, ``_copy_future_state``,
``Condition.__enter__``/``__exit__``, ``Future.done``: ≈ 11 % of the samples).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from gateway.audit.merkle import Frontier
from gateway.audit.records import AuditRecord
from gateway.errors import AuditUnavailable
from gateway.store import files, rows
from gateway.store.base import RawEntry
from gateway.store.sqlite.repos import FRONTIER, db_errors

_ROWS_PER_STATEMENT = 400  # well under SQLite's 32766 bound parameters
log = logging.getLogger("gateway.store.sqlite")
WAIT_SECONDS = 10.0  # as the connection's busy timeout: a group not begun by then fails closed
# A multi-row INSERT inside BEGIN keeps a statement journal (the pages it changed, to undo the statement alone on
# a constraint error). Past 64 KiB SQLite spills it to a temporary file: a batch's 100 child rows, each on an index
# page of its own, wrote ~100 pages there per group (open, pwrite each, unlink: 1.9 ms of a 4.7 ms group). In
# memory it is never written. It is not the crash journal (that is the WAL, synchronous=FULL): durability is as
# before, and the connection does nothing else that would use temporary storage.
_PRAGMAS = ("temp_store=MEMORY",)


def _insert_rows(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], values: Sequence[tuple[Any, ...]]
) -> None:
    """Multi-row INSERTs: one statement step per chunk, so the thread gives up the GIL once, not per row.

    Each chunk is bound as cheaply as sqlite3 allows (``_bindable``): the writer binds ~20 values per record
    with the GIL held, and ``None`` or ``bytes`` cost sqlite3 4-5 times what text or a number does.
    """
    for start in range(0, len(values), _ROWS_PER_STATEMENT):
        names, params = _bindable(columns, values[start : start + _ROWS_PER_STATEMENT])
        row = "(" + ", ".join("?" for _ in names) + ")"
        rows = ", ".join(row for _ in range(len(params) // len(names)))
        conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES {rows}", params)  # noqa: S608


def _bindable(columns: Sequence[str], chunk: Sequence[tuple[Any, ...]]) -> tuple[list[str], list[Any]]:
    """(the columns named, the chunk's values flattened): the same rows stored, bound faster.

    sqlite3 (3.11) looks each ``None`` and ``bytes`` parameter up in its adapter registry, attributes
    included (0.76 and 0.97 µs against 0.17-0.29 for int, float and str; a ``bytearray`` is bound directly).
    So a column ``None`` in every row of the chunk is left out (it is NULL all the same: the tables written
    here declare no DEFAULT, which tests/test_sqlite_group_writer.py holds them to) and ``bytes`` go in as
    ``bytearray``, stored as the same BLOB.
    """
    size = len(chunk)
    names: list[str] = []
    kept: list[tuple[Any, ...]] = []
    for name, column in zip(columns, zip(*chunk, strict=True), strict=True):
        if names and column.count(None) == size:  # the first column always stays: a statement names one
            continue
        if type(column[0]) is bytes or type(column[-1]) is bytes:  # a blob column (any other bytes: bound as is)
            column = tuple(bytearray(value) if type(value) is bytes else value for value in column)
        names.append(name)
        kept.append(column)
    return names, [value for row in zip(*kept, strict=True) for value in row]


class _Group(NamedTuple):
    """One group commit's rows, prepared on the event loop's side (the JSON work) for the writer thread."""

    prepared: Sequence[rows.Prepared]
    urls: Sequence[rows.UrlTemplate]
    raw: Sequence[RawEntry]
    touches: Sequence[str]
    at: float


Written = list[tuple[Any, ...]]


class _Job(NamedTuple):
    """A group for the writer thread, and where its outcome goes (a future of the loop that waits for it)."""

    turn: _Turn
    group: _Group
    loop: asyncio.AbstractEventLoop
    written: asyncio.Future[Written]


def _settle(written: asyncio.Future[Written], rows: Written | None, error: BaseException | None) -> None:
    """On the loop: the writer's outcome, unless the waiting side has already given up or been cancelled."""
    if written.done():
        return
    if error is not None:
        written.set_exception(error)
    else:
        written.set_result(rows or [])


def _give_up(turn: _Turn, written: asyncio.Future[Written]) -> None:
    """On the loop, ``WAIT_SECONDS`` after the group was queued: refused, unless its writing has begun."""
    if not written.done() and turn.give_up():
        written.set_exception(AuditUnavailable(f"the audit log's writer lock was not free within {WAIT_SECONDS:g} s"))


class _Turn:
    """One group's turn at the writer lock: taken by the writer thread, or given up by the waiting side first.

    Exactly one of the two happens: a group given up (its issuances already refused) is never written, and
    a group whose writing has begun is waited for (its transaction is bounded by SQLite's busy timeout).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "waiting"

    def take(self) -> bool:
        return self._move("taken", unless="given up")

    def give_up(self) -> bool:
        return self._move("given up", unless="taken")

    def _move(self, to: str, *, unless: str) -> bool:
        with self._lock:
            if self._state == unless:
                return False
            self._state = to
            return True


class GroupWriter:
    def __init__(self, path: Path) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # None: close
        self._thread: threading.Thread | None = None
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=WAIT_SECONDS, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000", *_PRAGMAS):
                conn.execute(f"PRAGMA {pragma}").fetchall()
            self._conn = conn
        return self._conn

    def _writer_lock(self) -> int:
        if self._lock_fd is None:
            lock = self._path.with_name(f"{self._path.name}.audit-writer.lock")
            self._lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, files.PRIVATE_FILE)
        return self._lock_fd

    async def append(
        self, records: Sequence[AuditRecord], raw: Sequence[RawEntry], touches: Sequence[str], at: float
    ) -> list[tuple[Any, ...]]:
        """The rows written (``rows.AUDIT_INSERT_COLUMNS``: body hash, seq and leaf hash last)."""
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        loop = asyncio.get_running_loop()
        prepared = rows.prepare_rows(records)  # the JSON work, before the transaction opens
        urls = rows.url_templates(records)
        turn, group = _Turn(), _Group(prepared, urls, raw, touches, at)
        written: asyncio.Future[Written] = loop.create_future()
        self._started().put(_Job(turn, group, loop, written))
        bound = loop.call_later(WAIT_SECONDS, _give_up, turn, written)  # the writer refuses it when its turn comes
        try:
            with db_errors(audit=True):
                return await written
        except asyncio.CancelledError:
            turn.give_up()  # not yet begun: never written (begun: it completes, as a transaction does)
            raise
        finally:
            bound.cancel()

    def _started(self) -> queue.SimpleQueue[_Job | None]:
        if self._thread is None:
            # A daemon: a store never closed must not hold the interpreter at exit waiting for work. A group cut off
            # there was never answered (its transaction rolls back), as after kill -9.
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()
        return self._jobs

    def _run(self) -> None:
        """The writer thread: each group in turn, its outcome handed back to the loop that waits for it."""
        while (job := self._jobs.get()) is not None:
            rows_written: Written | None = None
            error: BaseException | None = None
            try:
                rows_written = self._append(job.turn, job.group)
            except BaseException as exc:  # every failure is the waiting caller's to raise
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                job.loop.call_soon_threadsafe(_settle, job.written, rows_written, error)
        self._close_connection()

    def _append(self, turn: _Turn, group: _Group) -> list[tuple[Any, ...]]:
        conn = self._connection()
        try:
            lock = self._writer_lock()
            fcntl.flock(lock, fcntl.LOCK_EX)  # in C, the GIL released; woken as soon as the other writer is done
        except OSError as exc:
            raise AuditUnavailable(f"the audit log's writer lock: {exc.strerror or exc}") from exc
        try:
            if not turn.take():
                raise AuditUnavailable("given up waiting for the audit log's writer lock")
            return self._write(conn, group)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _write(conn: sqlite3.Connection, group: _Group) -> list[tuple[Any, ...]]:
        prepared, urls, raw, touches, at = group
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute("SELECT value FROM meta WHERE key = ?", (FRONTIER,)).fetchone()
            frontier = Frontier() if found is None else Frontier.from_bytes(bytes(found[0]))
            values, seqs = rows.positioned_rows(frontier, prepared)
            _insert_rows(conn, "audit", rows.AUDIT_INSERT_COLUMNS, values)
            _insert_rows(conn, "audit_urls", rows.AUDIT_URL_COLUMNS, rows.url_rows(urls, seqs))
            _insert_rows(conn, "raw_log", rows.RAW_COLUMNS, rows.raw_values(raw))
            if touches:
                marks = ", ".join("?" for _ in touches)
                conn.execute(f"UPDATE keys SET last_used_at = ? WHERE kid IN ({marks})", (at, *touches))  # noqa: S608
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (FRONTIER, frontier.to_bytes()))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return values

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            self._close_connection()
            return
        self._jobs.put(None)  # after every group queued before it
        self._thread.join(WAIT_SECONDS)
        if self._thread.is_alive():
            # Queued behind a group still waiting for the lock another process holds: shutdown does not wait
            # for it (the group is given up, so nothing is written when the turn comes; exit closes the file).
            log.error("the audit writer is still waiting for its lock: closed without it")
