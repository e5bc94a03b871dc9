"""The SQLite repositories: plain SQL over one aiosqlite connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import aiosqlite

from gateway.audit import AuditRecord
from gateway.errors import AuditUnavailable, Conflict, StoreUnavailable
from gateway.model import Credential, Grant, MediaItem, Principal, SigningKey
from gateway.store import rows
from gateway.store.base import AuditQuery


@contextmanager
def db_errors(*, audit: bool = False) -> Iterator[None]:
    """Driver errors become the gateway's: uniqueness -> Conflict, the rest -> 503."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"already exists or conflicts: {exc}") from exc
    except (sqlite3.Error, ValueError) as exc:
        # aiosqlite reports a closed connection as ValueError
        error = AuditUnavailable if audit else StoreUnavailable
        raise error(f"database error: {exc}") from exc


class _Repo:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        with db_errors():
            async with self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        found = await self._all(sql, params)
        return found[0] if found else None

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with db_errors():
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount


def _insert(table: str, columns: Sequence[str]) -> str:
    # Table and column names are constants from this package; values are always bound.
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) VALUES ({rows.placeholders(columns)})"  # noqa: S608


class SqlitePrincipals(_Repo):
    async def add(self, principal: Principal) -> None:
        await self._run(_insert("principals", rows.PRINCIPAL_COLUMNS), rows.principal_values(principal))

    async def get(self, principal_id: str) -> Principal | None:
        row = await self._one("SELECT * FROM principals WHERE id = ?", (principal_id,))
        return None if row is None else rows.principal_from(row)

    async def all(self) -> list[Principal]:
        return [rows.principal_from(r) for r in await self._all("SELECT * FROM principals ORDER BY id")]

    async def disable(self, principal_id: str, at: float) -> None:
        await self._run(
            "UPDATE principals SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL",
            (at, principal_id),
        )

    async def add_credential(self, credential: Credential) -> None:
        await self._run(_insert("credentials", rows.CREDENTIAL_COLUMNS), rows.credential_values(credential))

    async def credential(self, credential_id: str) -> Credential | None:
        row = await self._one("SELECT * FROM credentials WHERE id = ?", (credential_id,))
        return None if row is None else rows.credential_from(row)


class SqliteKeys(_Repo):
    async def add(self, key: SigningKey) -> None:
        await self._run(_insert("keys", rows.KEY_COLUMNS), rows.key_values(key))

    async def get(self, kid: str) -> SigningKey | None:
        row = await self._one("SELECT * FROM keys WHERE kid = ?", (kid,))
        return None if row is None else rows.key_from(row)

    async def get_by_external_id(self, external_id: str) -> SigningKey | None:
        row = await self._one("SELECT * FROM keys WHERE external_id = ?", (external_id,))
        return None if row is None else rows.key_from(row)

    async def link(self, kid: str, external_id: str) -> None:
        await self._run("UPDATE keys SET external_id = ? WHERE kid = ?", (external_id, kid))

    async def all(self, principal_id: str | None = None) -> list[SigningKey]:
        if principal_id is None:
            found = await self._all("SELECT * FROM keys ORDER BY created_at, kid")
        else:
            sql = "SELECT * FROM keys WHERE principal_id = ? ORDER BY created_at, kid"
            found = await self._all(sql, (principal_id,))
        return [rows.key_from(r) for r in found]

    async def revoke(self, kid: str, at: float, reason: str, by: str) -> None:
        await self._run(
            "UPDATE keys SET revoked_at = ?, revoked_reason = ?, revoked_by = ? WHERE kid = ? AND revoked_at IS NULL",
            (at, reason, by, kid),
        )

    async def touch(self, kid: str, at: float) -> None:
        await self._run("UPDATE keys SET last_used_at = ? WHERE kid = ?", (at, kid))


class SqliteMedia(_Repo):
    async def put(self, item: MediaItem) -> None:
        sql = _insert("media", rows.MEDIA_COLUMNS).replace("INSERT", "INSERT OR REPLACE", 1)
        await self._run(sql, rows.media_values(item))

    async def get(self, media_id: str) -> MediaItem | None:
        row = await self._one("SELECT * FROM media WHERE id = ?", (media_id,))
        return None if row is None else rows.media_from(row)

    async def delete(self, media_id: str, at: float) -> None:
        await self._run("UPDATE media SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", (at, media_id))


class SqliteGrants(_Repo):
    async def add(self, grant: Grant) -> None:
        await self._run(_insert("grants", rows.GRANT_COLUMNS), rows.grant_values(grant))

    async def get(self, grant_id: str) -> Grant | None:
        row = await self._one("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return None if row is None else rows.grant_from(row)

    async def all(self, principal_id: str | None = None) -> list[Grant]:
        if principal_id is None:
            found = await self._all("SELECT * FROM grants ORDER BY created_at")
        else:
            sql = "SELECT * FROM grants WHERE principal_id = ? ORDER BY created_at"
            found = await self._all(sql, (principal_id,))
        return [rows.grant_from(r) for r in found]

    async def for_media(self, principal_id: str, media_id: str) -> list[Grant]:
        sql = "SELECT * FROM grants WHERE principal_id = ? AND media_id = ? AND revoked_at IS NULL"
        return [rows.grant_from(r) for r in await self._all(sql, (principal_id, media_id))]

    async def revoke(self, grant_id: str, at: float) -> None:
        await self._run("UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, grant_id))


class SqliteAudit(_Repo):
    appended = False

    async def append(self, records: Sequence[AuditRecord]) -> list[int]:
        sql = _insert("audit", rows.AUDIT_COLUMNS)
        seqs: list[int] = []
        with db_errors(audit=True):
            for record in records:
                cursor = await self._conn.execute(sql, rows.audit_values(record))
                seqs.append(int(cursor.lastrowid or 0))
        self.appended = True
        return seqs

    async def tail(self, limit: int) -> list[AuditRecord]:
        found = await self._all("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        return [rows.audit_from(r) for r in reversed(found)]

    async def search(self, query: AuditQuery) -> list[AuditRecord]:
        clauses, params = _audit_filters(query)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM audit {where} ORDER BY seq LIMIT ?"  # noqa: S608 (fixed clauses, bound values)
        return [rows.audit_from(r) for r in await self._all(sql, [*params, query.limit])]


def _audit_filters(query: AuditQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("event", "actor", "kid", "media_id", "subject"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("time >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("time < ?")
        params.append(query.until)
    return clauses, params


class SqliteRepos:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.principals = SqlitePrincipals(conn)
        self.keys = SqliteKeys(conn)
        self.media = SqliteMedia(conn)
        self.grants = SqliteGrants(conn)
        self.audit = SqliteAudit(conn)
