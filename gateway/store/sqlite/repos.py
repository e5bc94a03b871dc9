"""The SQLite repositories: plain SQL over one aiosqlite connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import aiosqlite

from gateway.audit.merkle import Frontier
from gateway.audit.records import AuditRecord
from gateway.errors import AuditUnavailable, Conflict, StoreUnavailable
from gateway.model import Credential, Grant, MediaItem, Principal, SigningKey
from gateway.store import rows
from gateway.store.base import AuditQuery, AuditUrl, Change, Checkpoint, LogEntry, PrunePolicy, RevokedPath
from gateway.store.sqlite import schema


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


def _blob(value: object) -> bytes:
    """Sealed key material as stored: a SQLite column takes any type, and a value written by hand as text or a
    number is no sealed key (empty: it opens nothing), never ``bytes(n)``'s n zero bytes."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else b""


FRONTIER = "audit_frontier"
_PEPPER = "audit_pepper"
_DATA_KEY = "master_data_key:"  # + master key id: a KMS-wrapped data key (gateway.keys.kms)


class Fed:
    """Whether a write transaction appended to the change feed: its commit is then announced to the other
    processes' watchers (``gateway.store.sqlite.watch``), which otherwise sleep through every other write."""

    __slots__ = ("appended",)

    def __init__(self) -> None:
        self.appended = False


class _Repo:
    def __init__(self, conn: aiosqlite.Connection, in_transaction: bool = False, fed: Fed | None = None) -> None:
        self._conn = conn
        self._in_transaction = in_transaction
        self._fed = fed

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        # Execute and fetch to the end in one call on the connection's thread: a statement left
        # active between awaits (while other coroutines use the connection) would pin the reader
        # to an old snapshot, hiding a revocation committed by another process.
        with db_errors():
            return list(await self._conn.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        found = await self._all(sql, params)
        return found[0] if found else None

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with db_errors():
            async with self._conn.execute(sql, params) as cursor:
                return cursor.rowcount

    async def _changed(self, kind: str, ref: str) -> None:
        """Append to the change feed in this transaction. SQLite has one writer at a time, so the
        AUTOINCREMENT positions are handed out in commit order."""
        if not self._in_transaction:
            raise StoreUnavailable("a change outside a transaction would escape the change feed")
        await self._run(
            "INSERT INTO changes (kind, ref, at) VALUES (?, ?, (julianday('now') - 2440587.5) * 86400.0)", (kind, ref)
        )
        if self._fed is not None:
            self._fed.appended = True


def _insert(table: str, columns: Sequence[str]) -> str:
    # Table and column names are constants from this package; values are always bound.
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) VALUES ({rows.placeholders(columns)})"  # noqa: S608


AUDIT_INSERT = _insert("audit", rows.AUDIT_INSERT_COLUMNS)
AUDIT_URL_INSERT = _insert("audit_urls", rows.AUDIT_URL_COLUMNS)


class SqlitePrincipals(_Repo):
    async def add(self, principal: Principal) -> None:
        await self._changed("principal", principal.id)
        await self._run(_insert("principals", rows.PRINCIPAL_COLUMNS), rows.principal_values(principal))

    async def get(self, principal_id: str) -> Principal | None:
        row = await self._one("SELECT * FROM principals WHERE id = ?", (principal_id,))
        return None if row is None else rows.principal_from(row)

    async def all(self) -> list[Principal]:
        return [rows.principal_from(r) for r in await self._all("SELECT * FROM principals ORDER BY id")]

    async def disable(self, principal_id: str, at: float) -> None:
        await self._changed("principal", principal_id)
        await self._run(
            "UPDATE principals SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL",
            (at, principal_id),
        )

    async def add_credential(self, credential: Credential) -> None:
        await self._changed("credential", credential.id)
        await self._run(_insert("credentials", rows.CREDENTIAL_COLUMNS), rows.credential_values(credential))

    async def credential(self, credential_id: str) -> Credential | None:
        row = await self._one("SELECT * FROM credentials WHERE id = ?", (credential_id,))
        return None if row is None else rows.credential_from(row)

    async def credentials(self, principal_id: str | None = None) -> list[Credential]:
        if principal_id is None:
            found = await self._all("SELECT * FROM credentials ORDER BY principal_id, created_at, id")
        else:
            sql = "SELECT * FROM credentials WHERE principal_id = ? ORDER BY created_at, id"
            found = await self._all(sql, (principal_id,))
        return [rows.credential_from(r) for r in found]

    async def revoke_credential(self, credential_id: str, at: float) -> None:
        await self._changed("credential", credential_id)
        await self._run(
            "UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, credential_id)
        )


class SqliteKeys(_Repo):
    async def add(self, key: SigningKey) -> None:
        await self._changed("key", key.kid)
        await self._run(_insert("keys", rows.KEY_COLUMNS), rows.key_values(key))

    async def get(self, kid: str) -> SigningKey | None:
        row = await self._one("SELECT * FROM keys WHERE kid = ?", (kid,))
        return None if row is None else rows.key_from(row)

    async def get_by_external_id(self, external_id: str) -> SigningKey | None:
        row = await self._one("SELECT * FROM keys WHERE external_id = ?", (external_id,))
        return None if row is None else rows.key_from(row)

    async def link(self, kid: str, external_id: str) -> None:
        await self._changed("key", kid)
        await self._run("UPDATE keys SET external_id = ? WHERE kid = ?", (external_id, kid))

    async def all(self, principal_id: str | None = None) -> list[SigningKey]:
        if principal_id is None:
            found = await self._all("SELECT * FROM keys ORDER BY created_at, kid")
        else:
            sql = "SELECT * FROM keys WHERE principal_id = ? ORDER BY created_at, kid"
            found = await self._all(sql, (principal_id,))
        return [rows.key_from(r) for r in found]

    async def page(self, after_kid: str, limit: int) -> list[SigningKey]:
        found = await self._all("SELECT * FROM keys WHERE kid > ? ORDER BY kid LIMIT ?", (after_kid, limit))
        return [rows.key_from(r) for r in found]

    async def revoke(self, kid: str, at: float, reason: str, by: str) -> None:
        await self._changed("key", kid)
        await self._run(
            "UPDATE keys SET revoked_at = ?, revoked_reason = ?, revoked_by = ? WHERE kid = ? AND revoked_at IS NULL",
            (at, reason, by, kid),
        )

    async def touch(self, kid: str, at: float) -> None:
        await self._run("UPDATE keys SET last_used_at = ? WHERE kid = ?", (at, kid))

    async def reseal(self, kid: str, old: bytes, new: bytes) -> bool:
        await self._changed("key", kid)
        sql = "UPDATE keys SET sealed_private = ? WHERE kid = ? AND sealed_private = ?"
        return await self._run(sql, (new, kid, old)) == 1

    async def data_keys(self) -> dict[str, bytes]:
        found = await self._all("SELECT key, value FROM meta WHERE key LIKE ?", (_DATA_KEY + "%",))
        return {r["key"].removeprefix(_DATA_KEY): bytes(r["value"]) for r in found}

    async def add_data_key(self, key_id: str, wrapped: bytes) -> None:
        await self._run("INSERT INTO meta(key, value) VALUES (?, ?)", (_DATA_KEY + key_id, wrapped))


class SqliteMedia(_Repo):
    async def put(self, item: MediaItem) -> None:
        await self._changed("media", item.id)
        sql = _insert("media", rows.MEDIA_COLUMNS).replace("INSERT", "INSERT OR REPLACE", 1)
        await self._run(sql, rows.media_values(item))
        await self._claim(item)

    async def _claim(self, item: MediaItem) -> None:
        await self._run("DELETE FROM media_paths WHERE media_id = ?", (item.id,))
        if not item.deleted:
            with db_errors():
                await self._conn.executemany(
                    _insert("media_paths", rows.MEDIA_PATH_COLUMNS), rows.media_path_values(item)
                )

    async def get(self, media_id: str) -> MediaItem | None:
        row = await self._one("SELECT * FROM media WHERE id = ?", (media_id,))
        return None if row is None else rows.media_from(row)

    async def delete(self, media_id: str, at: float) -> None:
        await self._changed("media", media_id)
        await self._revoke_claims(media_id, at)
        sql = "UPDATE media SET deleted_at = ?, links_revoked_at = ? WHERE id = ? AND deleted_at IS NULL"
        await self._run(sql, (at, at, media_id))
        await self._run("DELETE FROM media_paths WHERE media_id = ?", (media_id,))

    async def revoke_links(self, media_id: str, at: float) -> None:
        await self._changed("media", media_id)
        await self._revoke_claims(media_id, at)
        await self._run("UPDATE media SET links_revoked_at = ? WHERE id = ?", (at, media_id))

    async def _revoke_claims(self, media_id: str, at: float) -> None:
        item = await self.get(media_id)
        if item is not None:
            await self._insert_revocations(media_id, [(p, i) for p, _, i in rows.media_path_values(item)], at)

    async def revoke_claims(self, media_id: str, claims: Iterable[tuple[str, bool]], at: float) -> None:
        await self._changed("media", media_id)
        await self._insert_revocations(media_id, claims, at)

    async def _insert_revocations(self, media_id: str, claims: Iterable[tuple[str, bool]], at: float) -> None:
        sql = (
            "INSERT INTO link_revocations (path, is_prefix, media_id, revoked_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (path, is_prefix, media_id) DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at)"
        )
        with db_errors():
            await self._conn.executemany(sql, [(path, is_prefix, media_id, at) for path, is_prefix in claims])

    async def revoked_paths(self, since: float, media_id: str | None = None) -> list[RevokedPath]:
        sql = (
            "SELECT media_id, path, is_prefix, revoked_at, NULL AS principal_id FROM link_revocations "
            "WHERE revoked_at >= ?1 AND (?2 IS NULL OR media_id = ?2) UNION ALL SELECT media_id, path, is_prefix, "
            "revoked_at, principal_id FROM grant_revocations WHERE revoked_at >= ?1 AND (?2 IS NULL OR media_id = ?2)"
        )
        return [rows.revoked_path_from(r) for r in await self._all(sql, (since, media_id))]

    async def overlapping(self, item: MediaItem) -> list[tuple[str, str]]:
        found: list[aiosqlite.Row] = []
        for prefix in set(item.prefixes.values()):
            sql = "SELECT media_id, path FROM media_paths WHERE path >= ? AND path < ? AND media_id <> ?"
            found += await self._all(sql, (prefix, rows.prefix_upper_bound(prefix), item.id))
        ancestors = sorted(rows.ancestors([*item.paths.values(), *item.prefixes.values()]))
        marks = ", ".join("?" for _ in ancestors)
        sql = f"SELECT media_id, path FROM media_paths WHERE is_prefix AND path IN ({marks}) AND media_id <> ?"  # noqa: S608
        found += await self._all(sql, (*ancestors, item.id))
        # The same file registered twice: whoever may see the alias could read the original.
        paths = sorted(set(item.paths.values()))
        marks = ", ".join("?" for _ in paths)
        sql = f"SELECT media_id, path FROM media_paths WHERE NOT is_prefix AND path IN ({marks}) AND media_id <> ?"  # noqa: S608
        found += await self._all(sql, (*paths, item.id))
        return sorted({(r["media_id"], r["path"]) for r in found})

    async def owned_by(self, owner: str) -> list[MediaItem]:
        found = await self._all("SELECT * FROM media WHERE owner = ? ORDER BY id", (owner,))
        return [rows.media_from(r) for r in found]

    async def erase_owner(self, owner: str, pseudonym: str, at: float) -> int:
        owned = [m.id for m in await self.owned_by(owner)]
        for media_id in owned:
            await self._changed("media", media_id)
            await self._revoke_claims(media_id, at)
        await self._run("DELETE FROM media_paths WHERE media_id IN (SELECT id FROM media WHERE owner = ?)", (owner,))
        sql = (
            "UPDATE media SET owner = ?, deleted_at = coalesce(deleted_at, ?), "
            "links_revoked_at = max(coalesce(links_revoked_at, ?), ?) WHERE owner = ?"
        )
        return await self._run(sql, (pseudonym, at, at, at, owner))


class SqliteGrants(_Repo):
    async def add(self, grant: Grant) -> None:
        await self._changed("grant", grant.id)
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
        grant = await self.get(grant_id)
        if grant is None or grant.revoked_at is not None:
            return
        await self._changed("grant", grant_id)
        await self._changed("media", grant.media_id)  # every replica reloads the item's revocations
        await self._run("UPDATE grants SET revoked_at = ? WHERE id = ?", (at, grant_id))
        await self._run(
            "INSERT OR IGNORE INTO grant_revocations SELECT ?, ?, media_id, path, is_prefix, ? FROM media_paths "
            "WHERE media_id = ?", (grant_id, grant.principal_id, at, grant.media_id),
        )  # fmt: skip

    async def live(self, now: float) -> list[Grant]:
        found = await self._all("SELECT * FROM grants WHERE revoked_at IS NULL AND expires_at > ?", (now,))
        return [rows.grant_from(r) for r in found]


class SqliteAudit(_Repo):
    appended = False

    async def _meta(self, key: str) -> bytes | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else bytes(row["value"])

    async def _set_meta(self, key: str, value: bytes) -> None:
        await self._run("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    async def frontier(self) -> Frontier:
        data = await self._meta(FRONTIER)
        return Frontier() if data is None else Frontier.from_bytes(data)

    async def append(self, records: Sequence[AuditRecord]) -> list[int]:
        with db_errors(audit=True):
            frontier = await self.frontier()
            values, seqs = rows.audit_rows(frontier, records)
            await self._conn.executemany(AUDIT_INSERT, values)
            await self._conn.executemany(AUDIT_URL_INSERT, rows.url_rows(rows.url_templates(records), seqs))
            await self._set_meta(FRONTIER, frontier.to_bytes())
        self.appended = True
        return seqs

    async def tail(self, limit: int) -> list[AuditRecord]:
        sql = "SELECT * FROM audit WHERE pruned_at IS NULL ORDER BY seq DESC LIMIT ?"
        found = await self._all(sql, (limit,))
        return [rows.audit_from(r) for r in reversed(found)]

    async def search(self, query: AuditQuery) -> list[AuditRecord]:
        clauses, params = _audit_filters(query)
        where = " AND ".join(["pruned_at IS NULL", *clauses])
        sql = f"SELECT * FROM audit WHERE {where} ORDER BY seq LIMIT ?"  # noqa: S608 (fixed clauses, bound values)
        found = [rows.audit_from(r) for r in await self._all(sql, [*params, query.limit])]
        if not rows.finds_batches(query):
            return found
        sql, params = _batch_search(query)
        return rows.merged(found, [rows.audit_from(r) for r in await self._all(sql, params)], query.limit)

    async def entries(self, after_seq: int, limit: int) -> list[LogEntry]:
        sql = "SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
        return [rows.log_entry_from(r) for r in await self._all(sql, (after_seq, limit))]

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        c = checkpoint
        columns = ("tree_size", "time", "root", "key_id", "signature")
        await self._run(_insert("checkpoints", columns), (c.tree_size, c.time, c.root, c.key_id, c.signature))

    async def latest_checkpoint(self) -> Checkpoint | None:
        found = await self._all("SELECT * FROM checkpoints ORDER BY tree_size DESC, time DESC LIMIT 1")
        return rows.checkpoint_from(found[0]) if found else None

    async def checkpoints(self) -> list[Checkpoint]:
        found = await self._all("SELECT * FROM checkpoints ORDER BY tree_size, time")
        return [rows.checkpoint_from(r) for r in found]

    async def prune(self, policy: PrunePolicy, now: float) -> int:
        cleared = ", ".join(f"{c} = NULL" for c in rows.PRUNABLE_COLUMNS)
        sql = (
            f"UPDATE audit SET {cleared}, pruned_at = ? WHERE pruned_at IS NULL AND seq <= ? AND ("  # noqa: S608
            "(retention = 'viewer' AND time < ?) OR (retention = 'engineer' AND time < ?) OR "
            "(retention = 'viewer' AND subject IN (SELECT ref FROM erased_subjects WHERE erased_at < ?)))"
        )
        params = (now, policy.sealed_upto, policy.viewer_before, policy.engineer_before, policy.erased_before)
        pruned = await self._run(sql, params)
        # A pruned batch record's URLs go with its contents (the rows are found by seq: the primary key).
        await self._run(_PRUNE_URLS, (policy.sealed_upto,))
        return pruned

    async def urls(self, after_seq: int, upto_seq: int | None) -> list[AuditUrl]:
        upto = _ALL if upto_seq is None else upto_seq
        sql = "SELECT * FROM audit_urls WHERE seq > ? AND seq <= ? ORDER BY seq, position"
        return [rows.audit_url_from(r) for r in await self._all(sql, (after_seq, upto))]

    async def index_problems(self) -> list[str]:
        expected = schema.audit_indexes()
        listed = await self._all(schema.INDEXES_OF_AUDIT_TABLES, schema.AUDIT_TABLES)
        found = {name: schema.index_definition(sql) for name, sql in listed}
        problems = [f"index {name} is missing" for name in sorted(expected.keys() - found.keys())]
        problems += [f"index {name} is not one the gateway creates: {found[name]}" for name in
                     sorted(found.keys() - expected.keys())]  # fmt: skip
        problems += [f"index {name} was redefined: {found[name]}" for name in sorted(found.keys() & expected.keys())
                     if found[name] != expected[name]]  # fmt: skip
        for table in schema.AUDIT_TABLES:  # every index entry against its row, both ways
            problems += [row[0] for row in await self._all(f"PRAGMA integrity_check({table})") if row[0] != "ok"]
        return problems

    async def purge_raw(self, before: float) -> int:
        return await self._run("DELETE FROM raw_log WHERE time < ?", (before,))


_PRUNE_URLS = "DELETE FROM audit_urls WHERE seq IN (SELECT seq FROM audit WHERE seq <= ? AND pruned_at IS NOT NULL)"
_ALL = 2**63 - 1
_UNKEYED = """SELECT a.subject AS ref, MIN(a.seq) AS first FROM audit a
    WHERE a.personal IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM subject_keys k WHERE k.ref = a.subject)
    AND NOT EXISTS (SELECT 1 FROM audit e WHERE e.subject = a.subject AND e.event = 'subject:erased')
    GROUP BY a.subject ORDER BY first LIMIT ?"""


class SqliteSubjects(_Repo):
    async def sealed_key(self, ref: str) -> bytes | None:
        row = await self._one("SELECT sealed_key FROM subject_keys WHERE ref = ?", (ref,))
        return None if row is None else _blob(row["sealed_key"])

    async def add_key(self, ref: str, sealed: bytes, at: float) -> None:
        sql = "INSERT INTO subject_keys(ref, sealed_key, created_at) VALUES (?, ?, ?)"
        await self._run(sql, (ref, sealed, at))

    async def is_erased(self, ref: str) -> bool:
        return await self._one("SELECT 1 FROM erased_subjects WHERE ref = ?", (ref,)) is not None

    async def erase(self, ref: str, at: float) -> None:
        await self._changed("subject", ref)
        await self._run("DELETE FROM subject_keys WHERE ref = ?", (ref,))
        await self._run("INSERT OR IGNORE INTO erased_subjects(ref, erased_at) VALUES (?, ?)", (ref, at))

    async def erased_refs(self) -> list[str]:
        return [r["ref"] for r in await self._all("SELECT ref FROM erased_subjects")]

    async def sealed_pepper(self) -> bytes | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (_PEPPER,))
        return None if row is None else _blob(row["value"])

    async def set_sealed_pepper(self, sealed: bytes) -> None:
        await self._run("INSERT INTO meta(key, value) VALUES (?, ?)", (_PEPPER, sealed))

    async def sealed_keys(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        sql = "SELECT ref, sealed_key FROM subject_keys WHERE ref > ? ORDER BY ref LIMIT ?"
        return [(r["ref"], _blob(r["sealed_key"])) for r in await self._all(sql, (after, limit))]

    async def reseal_key(self, ref: str, old: bytes, new: bytes) -> bool:
        sql = "UPDATE subject_keys SET sealed_key = ? WHERE ref = ? AND sealed_key = ?"
        return await self._run(sql, (new, ref, old)) == 1

    async def reseal_pepper(self, old: bytes, new: bytes) -> bool:
        sql = "UPDATE meta SET value = ? WHERE key = ? AND value = ?"
        return await self._run(sql, (new, _PEPPER, old)) == 1

    async def unkeyed(self, limit: int) -> list[tuple[str, int]]:
        rows = await self._all(_UNKEYED, (limit,))
        return [(r["ref"], int(r["first"])) for r in rows]


class SqliteChanges(_Repo):
    async def head(self) -> int:
        row = await self._one("SELECT coalesce(max(seq), 0) AS head FROM changes")
        return 0 if row is None else int(row["head"])

    async def since(self, seq: int, limit: int) -> list[Change]:
        found = await self._all("SELECT seq, kind, ref FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [Change(int(r["seq"]), r["kind"], r["ref"]) for r in found]


def _audit_filters(query: AuditQuery, prefix: str = "", urls: bool = True) -> tuple[list[str], list[Any]]:
    """WHERE clauses on ``audit`` (``prefix``: its alias); ``urls``: with the key, media and digest filters."""
    clauses: list[str] = []
    params: list[Any] = []
    named = ("event", "actor", "subject") + (("kid", "media_id", "url_sha256") if urls else ())
    for column in named:
        value = getattr(query, column)
        if value is not None:
            values = rows.events_named(value) if column == "event" else [value]
            test = "= ?" if len(values) == 1 else f"IN ({', '.join('?' * len(values))})"
            clauses.append(f"{prefix}{column} {test}")
            params += values
    for clause, value in ((f"{prefix}seq > ?", query.after_seq or None), (f"{prefix}time >= ?", query.since),
                          (f"{prefix}time < ?", query.until)):  # fmt: skip
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return clauses, params


def _batch_search(query: AuditQuery) -> tuple[str, list[Any]]:
    """Batch records one of whose URLs matches the key, media and digest filters, found through their child
    rows' index in position order (``GROUP BY``: one row per record however many of its URLs match)."""
    urls = rows.url_filters(query)
    clauses, params = _audit_filters(query, "a.", urls=False)
    own = [f"u.{column} = ?" for column, _ in urls] + (["u.seq > ?"] if query.after_seq else [])
    where = " AND ".join([*own, "a.pruned_at IS NULL", *clauses])
    sql = (
        f"SELECT a.* FROM audit_urls AS u JOIN audit AS a ON a.seq = u.seq WHERE {where} "  # noqa: S608 (fixed)
        "GROUP BY u.seq ORDER BY u.seq LIMIT ?"
    )
    values = [v for _, v in urls] + ([query.after_seq] if query.after_seq else [])
    return sql, [*values, *params, query.limit]


class SqliteRepos:
    def __init__(self, conn: aiosqlite.Connection, in_transaction: bool = False) -> None:
        self.fed = fed = Fed()
        self.principals = SqlitePrincipals(conn, in_transaction, fed)
        self.keys = SqliteKeys(conn, in_transaction, fed)
        self.media = SqliteMedia(conn, in_transaction, fed)
        self.grants = SqliteGrants(conn, in_transaction, fed)
        self.audit = SqliteAudit(conn, in_transaction, fed)
        self.subjects = SqliteSubjects(conn, in_transaction, fed)
        self.changes = SqliteChanges(conn, in_transaction, fed)
        from gateway.store.sqlite.ops import ops_repos  # operations tables (webhooks, limits, detection)

        self.outbox, self.limits, self.watch = ops_repos(conn, in_transaction)
