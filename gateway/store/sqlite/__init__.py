"""SQLite store: the embedded default.

WAL journal with ``synchronous=FULL`` so a committed audit record survives a
power cut. Every statement runs on aiosqlite's worker thread, never on the
event loop. One connection writes (serialised by a lock, ``BEGIN IMMEDIATE``),
another reads; other processes (the CLI) share the file through SQLite's own
locking, so a revocation made by ``gatewayctl`` is seen by the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from gateway.audit.records import AuditRecord
from gateway.errors import ConfigError, StoreUnavailable
from gateway.store import files, rows
from gateway.store.base import Listening, LogEntry, RawEntry, Repos
from gateway.store.sqlite import schema
from gateway.store.sqlite.group import GroupWriter
from gateway.store.sqlite.repos import SqliteRepos, db_errors
from gateway.store.sqlite.schema import SCHEMA_VERSION
from gateway.store.sqlite.watch import HeadWatcher, announce


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=10.0)
    try:
        conn.row_factory = aiosqlite.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
        ):
            async with conn.execute(pragma) as cursor:
                await cursor.fetchall()
    except BaseException:
        # Each connection owns a (non-daemon) thread: left open, the process never exits.
        await conn.close()
        raise
    return conn


async def _close(*connections: aiosqlite.Connection | None) -> None:
    for conn in connections:
        if conn is not None:
            await conn.close()


_COMPANIONS = ("-wal", "-shm", "-journal")


def _prepare_file(path: Path, create: bool) -> None:
    """Check (or, for ``init``, create) the database file, owner-only.

    SQLite gives its -wal, -shm and -journal files the permission bits of the
    database file itself, whichever process creates them and whatever its umask,
    so a database created 0600 keeps every later companion file 0600 too.
    """
    if path.is_dir():
        raise ConfigError(f"database {path.absolute()} is a directory, not a database file (check database.url)")
    if not path.exists():
        if not create:
            raise ConfigError(
                f"database {path.absolute()} does not exist: check database.url, or run 'gatewayctl init' to create it"
            )
        try:
            files.create_private(path, b"")
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreUnavailable(f"cannot create database {path}: {exc.strerror}") from None
    for name in (path, *(path.with_name(path.name + suffix) for suffix in _COMPANIONS)):
        files.tighten(name)


def _check_writable(conn: sqlite3.Connection) -> None:
    """Every process appends to the audit log: refuse a database it may not write now, not at the first request.

    Only a real write finds out (a read-only file still takes SQLite's write lock); it is rolled back.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
    finally:
        conn.execute("ROLLBACK")


def _migrated(path: Path, create: bool, migrate: bool) -> list[int]:
    """Check the schema version, migrating when asked; returns the versions applied."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        found = schema.version_of(conn)
        if found:
            _check_writable(conn)
        if found == 0 and not create:
            raise StoreUnavailable(f"{path} is not a gateway database (no schema version): check database.url")
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(f"database {path} has schema v{found}, newer than this gateway's v{SCHEMA_VERSION}")
        if found < SCHEMA_VERSION:
            if not (create or migrate):
                raise StoreUnavailable(
                    f"database {path} has schema v{found}, behind this gateway's v{SCHEMA_VERSION}: "
                    "run 'gatewayctl migrate'"
                )
            return schema.migrate(conn)
        return []
    finally:
        conn.close()


class SqliteStore:
    """The embedded store. Build it with ``await SqliteStore.open(path)``."""

    def __init__(self, reader: aiosqlite.Connection, writer: aiosqlite.Connection, path: Path) -> None:
        self._reader = reader
        self._writer = writer
        self._path = path
        self.applied_migrations: list[int] = []  # by open(): for 'gatewayctl migrate' to report
        self.on_appended: Callable[[Sequence[LogEntry]], None] | None = None
        self._group = GroupWriter(path)
        self._write_lock = asyncio.Lock()
        self._read_repos = SqliteRepos(reader)
        self.principals = self._read_repos.principals
        self.keys = self._read_repos.keys
        self.media = self._read_repos.media
        self.grants = self._read_repos.grants
        self.audit = self._read_repos.audit
        self.subjects = self._read_repos.subjects
        self.changes = self._read_repos.changes
        self.outbox = self._read_repos.outbox
        self.limits = self._read_repos.limits
        self.watch = self._read_repos.watch

    @classmethod
    async def open(cls, path: Path, *, create: bool = False, migrate: bool = False) -> SqliteStore:
        """Open the database at ``path``. Only ``init`` passes ``create`` and only ``migrate`` migrates:
        anything else refuses a missing file, a file with no gateway schema, or a schema behind this code."""
        _prepare_file(path, create)
        writer = reader = None
        try:
            applied = await asyncio.to_thread(_migrated, path, create, migrate)
            writer = await _connect(path)
            reader = await _connect(path)
        except (sqlite3.Error, OSError) as exc:
            await _close(reader, writer)
            raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
        except BaseException:
            await _close(reader, writer)
            raise
        store = cls(reader, writer, path)
        store.applied_migrations = applied
        return store

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repos]:
        async with self._write_lock:
            await self._begin()
            repos = SqliteRepos(self._writer, in_transaction=True)
            try:
                yield repos
            except BaseException:
                await self._rollback()
                raise
            await self._commit(repos)
            if repos.fed.appended:
                announce(self._path)  # other processes' watchers sleep until this (gateway.store.sqlite.watch)

    async def _begin(self) -> None:
        try:
            with db_errors():
                await self._writer.execute("BEGIN IMMEDIATE")
        except asyncio.CancelledError:
            # The connection's thread runs the BEGIN whether or not anyone still awaits it. Unended, it would
            # hold the database's write lock for good: every later transaction here failing ("within a
            # transaction"), every other process's write waiting out its busy timeout. The ROLLBACK is queued
            # behind the BEGIN on the same thread, before the lock lets anyone else use the connection.
            await asyncio.shield(self._rollback())
            raise

    async def _rollback(self) -> None:
        # Nothing to undo when the failed statement already ended the transaction.
        with contextlib.suppress(sqlite3.Error):
            await self._writer.execute("ROLLBACK")

    async def _commit(self, repos: SqliteRepos) -> None:
        with db_errors(audit=repos.audit.appended):
            try:
                await self._writer.execute("COMMIT")
            except sqlite3.Error:
                await self._rollback()
                raise

    async def append_audit_group(
        self, records: Sequence[AuditRecord], raw: Sequence[RawEntry], touches: Sequence[str], at: float
    ) -> list[int]:
        written = await self._group.append(records, raw, touches, at)
        if self.on_appended is not None:
            self.on_appended(rows.log_entries(records, written))
        return [row[-2] for row in written]

    def listen(self, wake: Callable[[], None]) -> Listening:
        """SQLite cannot notify: a thread reads the feed head when a change-feed commit is announced (inotify)
        on a connection of its own and wakes the state sync when it moved (gateway.store.sqlite.watch)."""
        return HeadWatcher(self._path, wake, asyncio.get_running_loop())

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """A lock file beside the database (``flock``): every process on this host sharing the file agrees."""
        lock = self._path.with_name(f"{self._path.name}.{name}.lock")
        fd = await asyncio.to_thread(os.open, lock, os.O_RDWR | os.O_CREAT, files.PRIVATE_FILE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    async def ping(self) -> None:
        # An unfinished cursor would pin this reader to an old snapshot: fetch and close.
        with db_errors():
            await self._reader.execute_fetchall("SELECT 1 FROM meta LIMIT 1")

    async def database_time(self) -> float:
        with db_errors():
            rows = await self._reader.execute_fetchall("SELECT (julianday('now') - 2440587.5) * 86400.0")
        return float(next(iter(rows))[0])

    async def close(self) -> None:
        await asyncio.to_thread(self._group.close)
        await self._reader.close()
        await self._writer.close()
