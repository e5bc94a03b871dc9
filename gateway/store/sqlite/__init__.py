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
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from gateway.audit.records import AuditRecord
from gateway.errors import StoreUnavailable
from gateway.store.base import RawEntry, Repos
from gateway.store.sqlite_group import GroupWriter
from gateway.store.sqlite_repos import SqliteRepos, db_errors

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS principals (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, permissions TEXT NOT NULL, renditions TEXT,
    created_at REAL NOT NULL, disabled_at REAL);
CREATE TABLE IF NOT EXISTS credentials (
    id TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES principals(id),
    public_key BLOB NOT NULL, created_at REAL NOT NULL, revoked_at REAL);
CREATE TABLE IF NOT EXISTS keys (
    kid TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES principals(id),
    algorithm TEXT NOT NULL, public_key BLOB, sealed_private BLOB NOT NULL,
    created_at REAL NOT NULL, not_after REAL, revoked_at REAL, revoked_reason TEXT,
    revoked_by TEXT, last_used_at REAL, external_id TEXT);
CREATE INDEX IF NOT EXISTS keys_by_principal ON keys(principal_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS keys_by_external_id ON keys(external_id);
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, workspace TEXT NOT NULL,
    visibility TEXT NOT NULL, paths TEXT NOT NULL, updated_at REAL NOT NULL, deleted_at REAL);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES principals(id),
    media_id TEXT NOT NULL, reason TEXT NOT NULL, created_by TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, revoked_at REAL);
CREATE INDEX IF NOT EXISTS grants_by_principal ON grants(principal_id, media_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, time REAL NOT NULL, event TEXT NOT NULL,
    actor TEXT, request_id TEXT, kid TEXT, media_id TEXT, rendition TEXT,
    subject TEXT, url_sha256 TEXT, expires_at INTEGER, decision TEXT, reason TEXT,
    client_ip TEXT, user_agent TEXT, detail TEXT, retention TEXT NOT NULL,
    personal BLOB, leaf_hash BLOB NOT NULL, pruned_at REAL);
CREATE INDEX IF NOT EXISTS audit_by_kid ON audit(kid, seq);
CREATE INDEX IF NOT EXISTS audit_by_event ON audit(event, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size INTEGER NOT NULL, time REAL NOT NULL, root BLOB NOT NULL, key_id TEXT NOT NULL,
    signature BLOB NOT NULL, PRIMARY KEY (tree_size, time));
CREATE TABLE IF NOT EXISTS subject_keys (ref TEXT PRIMARY KEY, sealed_key BLOB NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS erased_subjects (ref TEXT PRIMARY KEY, erased_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS raw_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, event TEXT NOT NULL, request_id TEXT,
    kid TEXT, client_ip TEXT, user_agent TEXT);
CREATE INDEX IF NOT EXISTS raw_log_by_time ON raw_log(time);
CREATE INDEX IF NOT EXISTS media_by_owner ON media(owner);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit(subject, seq);
CREATE INDEX IF NOT EXISTS audit_by_media ON audit(media_id, seq);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit(time);
"""


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=10.0)
    conn.row_factory = aiosqlite.Row
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=10000",
    ):
        async with conn.execute(pragma) as cursor:
            await cursor.fetchall()
    return conn


class SqliteStore:
    """The embedded store. Build it with ``await SqliteStore.open(path)``."""

    def __init__(self, reader: aiosqlite.Connection, writer: aiosqlite.Connection, path: Path) -> None:
        self._reader = reader
        self._writer = writer
        self._group = GroupWriter(path)
        self._write_lock = asyncio.Lock()
        self._read_repos = SqliteRepos(reader)
        self.principals = self._read_repos.principals
        self.keys = self._read_repos.keys
        self.media = self._read_repos.media
        self.grants = self._read_repos.grants
        self.audit = self._read_repos.audit
        self.subjects = self._read_repos.subjects

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = await _connect(path)
            await writer.executescript(_SCHEMA)
            await writer.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            async with writer.execute("SELECT value FROM meta WHERE key = 'schema_version'") as cursor:
                found = await cursor.fetchone()
            reader = await _connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
        if found is None or found[0] != str(SCHEMA_VERSION):
            await reader.close()
            await writer.close()
            version = "unknown" if found is None else found[0]
            raise StoreUnavailable(f"database {path} has schema v{version}; this gateway needs v{SCHEMA_VERSION}")
        return cls(reader, writer, path)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repos]:
        async with self._write_lock:
            with db_errors():
                await self._writer.execute("BEGIN IMMEDIATE")
            repos = SqliteRepos(self._writer)
            try:
                yield repos
            except BaseException:
                await self._rollback()
                raise
            await self._commit(repos)

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
        return await self._group.append(records, raw, touches, at)

    async def ping(self) -> None:
        # An unfinished cursor would pin this reader to an old snapshot: fetch and close.
        with db_errors():
            await self._reader.execute_fetchall("SELECT 1 FROM meta LIMIT 1")

    async def close(self) -> None:
        await asyncio.to_thread(self._group.close)
        await self._reader.close()
        await self._writer.close()
