"""The PostgreSQL repositories: plain SQL over one asyncpg connection (pooled, or a transaction's)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

import asyncpg

from gateway.audit.merkle import Frontier
from gateway.audit.records import AuditRecord
from gateway.errors import AuditUnavailable, Conflict, StoreUnavailable
from gateway.model import Credential, Grant, MediaItem, Principal, SigningKey
from gateway.store import rows
from gateway.store.base import AuditQuery, AuditUrl, Change, Checkpoint, LogEntry, PrunePolicy, RevokedPath
from gateway.store.postgres import schema

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool

# What a broken or unreachable database raises; a uniqueness violation is a Conflict instead.
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@contextmanager
def db_errors(*, audit: bool = False) -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"already exists or conflicts: {exc}") from exc
    except DRIVER_ERRORS as exc:
        error = AuditUnavailable if audit else StoreUnavailable
        raise error(f"database error: {exc}") from exc


def _insert(table: str, columns: Sequence[str]) -> str:
    # Table and column names are constants from this package; values are always bound.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({rows.placeholders(columns, '$')})"  # noqa: S608


class _Repo:
    def __init__(self, db: Executor, tx: Transactional | None) -> None:
        self._db = db
        self._tx = tx

    async def _all(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        with db_errors():
            return list(await self._db.fetch(sql, *params))

    async def _one(self, sql: str, *params: Any) -> asyncpg.Record | None:
        with db_errors():
            return await self._db.fetchrow(sql, *params)

    async def _run(self, sql: str, *params: Any) -> int:
        with db_errors():
            status = await self._db.execute(sql, *params)
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def _changed(self, kind: str, ref: str) -> None:
        """Append to the change feed, in this transaction (writes happen only inside one)."""
        if self._tx is None:
            raise StoreUnavailable("a change outside a transaction would escape the change feed")
        await self._run(
            "WITH head AS (UPDATE change_head SET seq = seq + 1 WHERE id = 1 RETURNING seq) "
            "INSERT INTO changes (seq, kind, ref, at) SELECT seq, $1, $2, extract(epoch FROM clock_timestamp()) "
            "FROM head",
            kind, ref,
        )  # fmt: skip
        self._tx.changed = True


class Transactional:
    """What one transaction's repositories share: whether it changed anything the feed must announce."""

    changed = False
    appended = False


class PgPrincipals(_Repo):
    async def add(self, principal: Principal) -> None:
        await self._changed("principal", principal.id)
        await self._run(_insert("principals", rows.PRINCIPAL_COLUMNS), *rows.principal_values(principal))

    async def get(self, principal_id: str) -> Principal | None:
        row = await self._one("SELECT * FROM principals WHERE id = $1", principal_id)
        return None if row is None else rows.principal_from(row)

    async def all(self) -> list[Principal]:
        return [rows.principal_from(r) for r in await self._all("SELECT * FROM principals ORDER BY id")]

    async def disable(self, principal_id: str, at: float) -> None:
        await self._changed("principal", principal_id)
        sql = "UPDATE principals SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL"
        await self._run(sql, at, principal_id)

    async def add_credential(self, credential: Credential) -> None:
        await self._changed("credential", credential.id)
        await self._run(_insert("credentials", rows.CREDENTIAL_COLUMNS), *rows.credential_values(credential))

    async def credential(self, credential_id: str) -> Credential | None:
        row = await self._one("SELECT * FROM credentials WHERE id = $1", credential_id)
        return None if row is None else rows.credential_from(row)

    async def credentials(self, principal_id: str | None = None) -> list[Credential]:
        if principal_id is None:
            found = await self._all("SELECT * FROM credentials ORDER BY created_at, id")
        else:
            sql = "SELECT * FROM credentials WHERE principal_id = $1 ORDER BY created_at, id"
            found = await self._all(sql, principal_id)
        return [rows.credential_from(r) for r in found]

    async def revoke_credential(self, credential_id: str, at: float) -> None:
        await self._changed("credential", credential_id)
        await self._run(
            "UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", at, credential_id
        )


class PgKeys(_Repo):
    async def add(self, key: SigningKey) -> None:
        await self._changed("key", key.kid)
        await self._run(_insert("keys", rows.KEY_COLUMNS), *rows.key_values(key))

    async def get(self, kid: str) -> SigningKey | None:
        row = await self._one("SELECT * FROM keys WHERE kid = $1", kid)
        return None if row is None else rows.key_from(row)

    async def get_by_external_id(self, external_id: str) -> SigningKey | None:
        row = await self._one("SELECT * FROM keys WHERE external_id = $1", external_id)
        return None if row is None else rows.key_from(row)

    async def link(self, kid: str, external_id: str) -> None:
        await self._changed("key", kid)
        await self._run("UPDATE keys SET external_id = $1 WHERE kid = $2", external_id, kid)

    async def all(self, principal_id: str | None = None) -> list[SigningKey]:
        if principal_id is None:
            found = await self._all("SELECT * FROM keys ORDER BY created_at, kid")
        else:
            found = await self._all("SELECT * FROM keys WHERE principal_id = $1 ORDER BY created_at, kid", principal_id)
        return [rows.key_from(r) for r in found]

    async def page(self, after_kid: str, limit: int) -> list[SigningKey]:
        found = await self._all("SELECT * FROM keys WHERE kid > $1 ORDER BY kid LIMIT $2", after_kid, limit)
        return [rows.key_from(r) for r in found]

    async def revoke(self, kid: str, at: float, reason: str, by: str) -> None:
        await self._changed("key", kid)
        sql = (
            "UPDATE keys SET revoked_at = $1, revoked_reason = $2, revoked_by = $3 "
            "WHERE kid = $4 AND revoked_at IS NULL"
        )
        await self._run(sql, at, reason, by, kid)

    async def touch(self, kid: str, at: float) -> None:
        await self._run("UPDATE keys SET last_used_at = $1 WHERE kid = $2", at, kid)

    async def reseal(self, kid: str, old: bytes, new: bytes) -> bool:
        await self._changed("key", kid)
        sql = "UPDATE keys SET sealed_private = $1 WHERE kid = $2 AND sealed_private = $3"
        return await self._run(sql, new, kid, old) == 1

    async def data_keys(self) -> dict[str, bytes]:
        found = await self._all("SELECT key, value FROM meta WHERE starts_with(key, $1)", _DATA_KEY)
        return {r["key"].removeprefix(_DATA_KEY): bytes(r["value"]) for r in found}

    async def add_data_key(self, key_id: str, wrapped: bytes) -> None:
        await self._run("INSERT INTO meta (key, value) VALUES ($1, $2)", _DATA_KEY + key_id, wrapped)


# Advisory lock id serialising the media claim check and write across replicas. Under READ COMMITTED two
# transactions each saw the other's claim absent, and both wrote it: the row locks they share (the change
# feed's head) are taken only after the check. Taken first in the transaction, it cannot deadlock with them.
_CLAIMS_LOCK = 0x6777_636C  # "gwcl"


class PgMedia(_Repo):
    async def put(self, item: MediaItem) -> None:
        await self._changed("media", item.id)
        columns = rows.MEDIA_COLUMNS
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "id")
        await self._run(
            f"{_insert('media', columns)} ON CONFLICT (id) DO UPDATE SET {updates}", *rows.media_values(item)
        )
        await self._claim_paths(item)

    async def _claim_paths(self, item: MediaItem) -> None:
        await self._run("DELETE FROM media_paths WHERE media_id = $1", item.id)
        if item.deleted:
            return
        claims = rows.media_path_values(item)
        with db_errors():
            await self._db.executemany(_insert("media_paths", rows.MEDIA_PATH_COLUMNS), claims)

    async def get(self, media_id: str) -> MediaItem | None:
        row = await self._one("SELECT * FROM media WHERE id = $1", media_id)
        return None if row is None else rows.media_from(row)

    async def delete(self, media_id: str, at: float) -> None:
        await self._changed("media", media_id)
        await self._revoke_claims(media_id, at)
        sql = "UPDATE media SET deleted_at = $1, links_revoked_at = $1 WHERE id = $2 AND deleted_at IS NULL"
        await self._run(sql, at, media_id)
        await self._run("DELETE FROM media_paths WHERE media_id = $1", media_id)

    async def revoke_links(self, media_id: str, at: float) -> None:
        await self._changed("media", media_id)
        await self._revoke_claims(media_id, at)
        await self._run("UPDATE media SET links_revoked_at = $1 WHERE id = $2", at, media_id)

    async def _revoke_claims(self, media_id: str, at: float) -> None:
        item = await self.get(media_id)
        if item is not None:
            await self._insert_revocations(media_id, [(p, i) for p, _, i in rows.media_path_values(item)], at)

    async def revoke_claims(self, media_id: str, claims: Iterable[tuple[str, bool]], at: float) -> None:
        await self._changed("media", media_id)
        await self._insert_revocations(media_id, claims, at)

    async def _insert_revocations(self, media_id: str, claims: Iterable[tuple[str, bool]], at: float) -> None:
        sql = (
            "INSERT INTO link_revocations (path, is_prefix, media_id, revoked_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (path, is_prefix, media_id) DO UPDATE SET revoked_at = "
            "greatest(link_revocations.revoked_at, excluded.revoked_at)"
        )
        with db_errors():
            await self._db.executemany(sql, [(path, is_prefix, media_id, at) for path, is_prefix in claims])

    async def revoked_paths(self, since: float, media_id: str | None = None) -> list[RevokedPath]:
        sql = (
            "SELECT media_id, path, is_prefix, revoked_at, NULL AS principal_id FROM link_revocations "
            "WHERE revoked_at >= $1 AND ($2::text IS NULL OR media_id = $2) UNION ALL SELECT media_id, path, "
            "is_prefix, revoked_at, principal_id FROM grant_revocations "
            "WHERE revoked_at >= $1 AND ($2::text IS NULL OR media_id = $2)"
        )
        return [rows.revoked_path_from(r) for r in await self._all(sql, since, media_id)]

    async def overlapping(self, item: MediaItem) -> list[tuple[str, str]]:
        """(other media id, path) pairs that ``item``'s prefixes would cover, or whose prefixes cover it.

        In a transaction it first takes the claims lock, held until commit: a check that passed stays true
        until this transaction's own claims are written, whichever replica writes next.
        """
        if self._tx is not None:
            await self._run("SELECT pg_advisory_xact_lock($1)", _CLAIMS_LOCK)
        found: list[asyncpg.Record] = []
        for prefix in set(item.prefixes.values()):
            sql = "SELECT media_id, path FROM media_paths WHERE path >= $1 AND path < $2 AND media_id <> $3"
            found += await self._all(sql, prefix, rows.prefix_upper_bound(prefix), item.id)
        ancestors = sorted(rows.ancestors([*item.paths.values(), *item.prefixes.values()]))
        sql = "SELECT media_id, path FROM media_paths WHERE is_prefix AND path = ANY($1::text[]) AND media_id <> $2"
        found += await self._all(sql, ancestors, item.id)
        # The same file registered twice: whoever may see the alias could read the original.
        sql = "SELECT media_id, path FROM media_paths WHERE NOT is_prefix AND path = ANY($1::text[]) AND media_id <> $2"
        found += await self._all(sql, sorted(set(item.paths.values())), item.id)
        return sorted({(r["media_id"], r["path"]) for r in found})

    async def owned_by(self, owner: str) -> list[MediaItem]:
        return [rows.media_from(r) for r in await self._all("SELECT * FROM media WHERE owner = $1 ORDER BY id", owner)]

    async def erase_owner(self, owner: str, pseudonym: str, at: float) -> int:
        owned = [m.id for m in await self.owned_by(owner)]
        for media_id in owned:
            await self._changed("media", media_id)
            await self._revoke_claims(media_id, at)
        await self._run("DELETE FROM media_paths WHERE media_id = ANY($1::text[])", owned)
        sql = (
            "UPDATE media SET owner = $1, deleted_at = coalesce(deleted_at, $2), "
            "links_revoked_at = greatest(links_revoked_at, $2) WHERE owner = $3"
        )
        return await self._run(sql, pseudonym, at, owner)


class PgGrants(_Repo):
    async def add(self, grant: Grant) -> None:
        await self._changed("grant", grant.id)
        await self._run(_insert("grants", rows.GRANT_COLUMNS), *rows.grant_values(grant))

    async def get(self, grant_id: str) -> Grant | None:
        row = await self._one("SELECT * FROM grants WHERE id = $1", grant_id)
        return None if row is None else rows.grant_from(row)

    async def all(self, principal_id: str | None = None) -> list[Grant]:
        if principal_id is None:
            found = await self._all("SELECT * FROM grants ORDER BY created_at")
        else:
            found = await self._all("SELECT * FROM grants WHERE principal_id = $1 ORDER BY created_at", principal_id)
        return [rows.grant_from(r) for r in found]

    async def live(self, now: float) -> list[Grant]:
        found = await self._all("SELECT * FROM grants WHERE revoked_at IS NULL AND expires_at > $1", now)
        return [rows.grant_from(r) for r in found]

    async def for_media(self, principal_id: str, media_id: str) -> list[Grant]:
        sql = "SELECT * FROM grants WHERE principal_id = $1 AND media_id = $2 AND revoked_at IS NULL"
        return [rows.grant_from(r) for r in await self._all(sql, principal_id, media_id)]

    async def revoke(self, grant_id: str, at: float) -> None:
        grant = await self.get(grant_id)
        if grant is None or grant.revoked_at is not None:
            return
        await self._changed("grant", grant_id)
        await self._changed("media", grant.media_id)  # every replica reloads the item's revocations
        await self._run("UPDATE grants SET revoked_at = $1 WHERE id = $2", at, grant_id)
        await self._run(
            "INSERT INTO grant_revocations SELECT $1, $2, media_id, path, is_prefix, $3 FROM media_paths "
            "WHERE media_id = $4 ON CONFLICT DO NOTHING", grant_id, grant.principal_id, at, grant.media_id,
        )  # fmt: skip


class PgAudit(_Repo):
    async def frontier(self) -> Frontier:
        row = await self._one("SELECT frontier FROM audit_head WHERE id = 1")
        return Frontier() if row is None else Frontier.from_bytes(bytes(row["frontier"]))

    async def append(self, records: Sequence[AuditRecord]) -> list[int]:
        with db_errors(audit=True):
            # The row lock orders every appender, on every replica: positions never collide.
            row = await self._db.fetchrow("SELECT frontier FROM audit_head WHERE id = 1 FOR UPDATE")
            frontier = Frontier.from_bytes(bytes(row["frontier"])) if row else Frontier()
            values, seqs = rows.audit_rows(frontier, records)
            await self._db.executemany(_insert("audit", rows.AUDIT_INSERT_COLUMNS), values)
            urls = rows.url_rows(rows.url_templates(records), seqs)
            if urls:
                await self._db.executemany(_insert("audit_urls", rows.AUDIT_URL_COLUMNS), urls)
            await self._db.execute("UPDATE audit_head SET frontier = $1 WHERE id = 1", frontier.to_bytes())
        if self._tx is not None:
            self._tx.appended = True
        return seqs

    async def tail(self, limit: int) -> list[AuditRecord]:
        found = await self._all("SELECT * FROM audit WHERE pruned_at IS NULL ORDER BY seq DESC LIMIT $1", limit)
        return [rows.audit_from(r) for r in reversed(found)]

    async def search(self, query: AuditQuery) -> list[AuditRecord]:
        clauses, params = _audit_filters(query)
        where = " AND ".join(["pruned_at IS NULL", *clauses])
        sql = f"SELECT * FROM audit WHERE {where} ORDER BY seq LIMIT ${len(params) + 1}"  # noqa: S608 (fixed clauses)
        found = [rows.audit_from(r) for r in await self._all(sql, *params, query.limit)]
        if not rows.finds_batches(query):
            return found
        sql, params = _batch_search(query)
        return rows.merged(found, [rows.audit_from(r) for r in await self._all(sql, *params)], query.limit)

    async def entries(self, after_seq: int, limit: int) -> list[LogEntry]:
        found = await self._all("SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2", after_seq, limit)
        return [rows.log_entry_from(r) for r in found]

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        c = checkpoint
        columns = ("tree_size", "time", "root", "key_id", "signature")
        await self._run(_insert("checkpoints", columns), c.tree_size, c.time, c.root, c.key_id, c.signature)

    async def latest_checkpoint(self) -> Checkpoint | None:
        found = await self._all("SELECT * FROM checkpoints ORDER BY tree_size DESC, time DESC LIMIT 1")
        return rows.checkpoint_from(found[0]) if found else None

    async def checkpoints(self) -> list[Checkpoint]:
        found = await self._all("SELECT * FROM checkpoints ORDER BY tree_size, time")
        return [rows.checkpoint_from(r) for r in found]

    async def prune(self, policy: PrunePolicy, now: float) -> int:
        cleared = ", ".join(f"{c} = NULL" for c in rows.PRUNABLE_COLUMNS)
        sql = (
            f"UPDATE audit SET {cleared}, pruned_at = $1 WHERE pruned_at IS NULL AND seq <= $2 AND ("  # noqa: S608
            "(retention = 'viewer' AND time < $3) OR (retention = 'engineer' AND time < $4) OR "
            "(retention = 'viewer' AND subject IN (SELECT ref FROM erased_subjects WHERE erased_at < $5)))"
        )
        p = policy
        pruned = await self._run(sql, now, p.sealed_upto, p.viewer_before, p.engineer_before, p.erased_before)
        # A pruned batch record's URLs go with its contents.
        await self._run(_PRUNE_URLS, p.sealed_upto)
        return pruned

    async def urls(self, after_seq: int, upto_seq: int | None) -> list[AuditUrl]:
        upto = _ALL if upto_seq is None else upto_seq
        sql = "SELECT * FROM audit_urls WHERE seq > $1 AND seq <= $2 ORDER BY seq, position"
        return [rows.audit_url_from(r) for r in await self._all(sql, after_seq, upto)]

    async def index_problems(self) -> list[str]:
        expected = schema.AUDIT_INDEXES
        found = {r["name"]: (r["definition"], r["valid"]) for r in await self._all(schema.INDEXES_OF_AUDIT_TABLES)}
        problems = [f"index {name} is missing" for name in sorted(expected.keys() - found.keys())]
        for name, (definition, valid) in sorted(found.items()):
            if name not in expected:
                problems.append(f"index {name} is not one the gateway creates: {definition}")
            elif not valid or not definition.endswith(f"USING btree {expected[name]}"):
                problems.append(f"index {name} was redefined: {definition}{'' if valid else ' (invalid)'}")
        return problems

    async def purge_raw(self, before: float) -> int:
        return await self._run("DELETE FROM raw_log WHERE time < $1", before)


_PRUNE_URLS = "DELETE FROM audit_urls WHERE seq IN (SELECT seq FROM audit WHERE seq <= $1 AND pruned_at IS NOT NULL)"
_ALL = 2**63 - 1


def _audit_filters(
    query: AuditQuery, prefix: str = "", urls: bool = True, first: int = 1
) -> tuple[list[str], list[Any]]:
    """WHERE clauses on ``audit`` (``prefix``: its alias), parameters numbered from ``first``; ``urls``: with the
    key, media and digest filters."""
    clauses: list[str] = []
    params: list[Any] = []

    def add(clause: str, value: Any) -> None:
        params.append(value)
        clauses.append(prefix + clause.format(n=first + len(params) - 1))

    named = ("event", "actor", "subject") + (("kid", "media_id", "url_sha256") if urls else ())
    for column in named:
        value = getattr(query, column)
        if value is not None and column == "event":
            add("event = ANY(${n})", rows.events_named(value))
        elif value is not None:
            add(column + " = ${n}", value)
    if query.after_seq:
        add("seq > ${n}", query.after_seq)
    if query.since is not None:
        add("time >= ${n}", query.since)
    if query.until is not None:
        add("time < ${n}", query.until)
    return clauses, params


def _batch_search(query: AuditQuery) -> tuple[str, list[Any]]:
    """Batch records one of whose URLs matches the key, media and digest filters, through their child rows'
    index in position order (``DISTINCT ON``: one row per record however many of its URLs match)."""
    values = [v for _, v in rows.url_filters(query)] + ([query.after_seq] if query.after_seq else [])
    own = [f"u.{column} = ${i}" for i, (column, _) in enumerate(rows.url_filters(query), 1)]
    own += [f"u.seq > ${len(values)}"] if query.after_seq else []
    clauses, params = _audit_filters(query, "a.", urls=False, first=len(values) + 1)
    where = " AND ".join([*own, "a.pruned_at IS NULL", *clauses])
    sql = (
        f"SELECT DISTINCT ON (u.seq) a.* FROM audit_urls AS u JOIN audit AS a ON a.seq = u.seq "  # noqa: S608
        f"WHERE {where} ORDER BY u.seq LIMIT ${len(values) + len(params) + 1}"
    )
    return sql, [*values, *params, query.limit]


_PEPPER = "audit_pepper"
_DATA_KEY = "master_data_key:"  # + master key id: a KMS-wrapped data key (gateway.keys.kms)


_UNKEYED = """SELECT a.subject AS ref, MIN(a.seq) AS first FROM audit a
    WHERE a.personal IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM subject_keys k WHERE k.ref = a.subject)
    AND NOT EXISTS (SELECT 1 FROM audit e WHERE e.subject = a.subject AND e.event = 'subject:erased')
    GROUP BY a.subject ORDER BY first LIMIT $1"""


class PgSubjects(_Repo):
    async def sealed_key(self, ref: str) -> bytes | None:
        row = await self._one("SELECT sealed_key FROM subject_keys WHERE ref = $1", ref)
        return None if row is None else bytes(row["sealed_key"])

    async def add_key(self, ref: str, sealed: bytes, at: float) -> None:
        await self._run("INSERT INTO subject_keys (ref, sealed_key, created_at) VALUES ($1, $2, $3)", ref, sealed, at)

    async def is_erased(self, ref: str) -> bool:
        return await self._one("SELECT 1 FROM erased_subjects WHERE ref = $1", ref) is not None

    async def erased_refs(self) -> list[str]:
        return [r["ref"] for r in await self._all("SELECT ref FROM erased_subjects")]

    async def erase(self, ref: str, at: float) -> None:
        await self._changed("subject", ref)
        await self._run("DELETE FROM subject_keys WHERE ref = $1", ref)
        sql = "INSERT INTO erased_subjects (ref, erased_at) VALUES ($1, $2) ON CONFLICT (ref) DO NOTHING"
        await self._run(sql, ref, at)

    async def sealed_pepper(self) -> bytes | None:
        row = await self._one("SELECT value FROM meta WHERE key = $1", _PEPPER)
        return None if row is None else bytes(row["value"])

    async def set_sealed_pepper(self, sealed: bytes) -> None:
        await self._run("INSERT INTO meta (key, value) VALUES ($1, $2)", _PEPPER, sealed)

    async def sealed_keys(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        # Byte order, as SQLite's: the paging cursor compares the way the rows are ordered.
        sql = 'SELECT ref, sealed_key FROM subject_keys WHERE ref COLLATE "C" > $1 ORDER BY ref COLLATE "C" LIMIT $2'
        return [(r["ref"], bytes(r["sealed_key"])) for r in await self._all(sql, after, limit)]

    async def reseal_key(self, ref: str, old: bytes, new: bytes) -> bool:
        sql = "UPDATE subject_keys SET sealed_key = $1 WHERE ref = $2 AND sealed_key = $3"
        return await self._run(sql, new, ref, old) == 1

    async def reseal_pepper(self, old: bytes, new: bytes) -> bool:
        return await self._run("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3", new, _PEPPER, old) == 1

    async def unkeyed(self, limit: int) -> list[tuple[str, int]]:
        rows = await self._all(_UNKEYED, limit)
        return [(r["ref"], int(r["first"])) for r in rows]


class PgChanges(_Repo):
    async def head(self) -> int:
        row = await self._one("SELECT seq FROM change_head WHERE id = 1")
        return 0 if row is None else int(row["seq"])

    async def since(self, seq: int, limit: int) -> list[Change]:
        found = await self._all("SELECT seq, kind, ref FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit)
        return [Change(int(r["seq"]), r["kind"], r["ref"]) for r in found]


class PgRepos:
    def __init__(self, db: Executor, tx: Transactional | None = None) -> None:
        self.principals = PgPrincipals(db, tx)
        self.keys = PgKeys(db, tx)
        self.media = PgMedia(db, tx)
        self.grants = PgGrants(db, tx)
        self.audit = PgAudit(db, tx)
        self.subjects = PgSubjects(db, tx)
        self.changes = PgChanges(db, tx)
        from gateway.store.postgres.ops import ops_repos  # operations tables (webhooks, limits, detection)

        self.outbox, self.limits, self.watch = ops_repos(db, tx)
