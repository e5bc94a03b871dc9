"""The SQLite schema, as numbered migrations (``gatewayctl migrate`` applies them; ``init`` creates).

Version 2 is the baseline the first releases wrote; each later entry turns
version n-1 into n. A migration's statements run in one transaction with the
version bump, so a database is always at exactly one version.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from gateway.model import Rendition, default_prefixes
from gateway.store import respell
from gateway.store.rows import ancestors, prefix_upper_bound


@dataclass(frozen=True)
class Migration:
    version: int
    statements: tuple[str, ...]
    # Data work SQL cannot express, run after the statements in the same transaction.
    step: Callable[[sqlite3.Connection], None] | None = None


_BASELINE = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS principals ( id TEXT PRIMARY KEY, kind TEXT NOT NULL, permissions TEXT "
        "NOT NULL, renditions TEXT, created_at REAL NOT NULL, disabled_at REAL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS credentials ( id TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES "
        "principals(id), public_key BLOB NOT NULL, created_at REAL NOT NULL, revoked_at REAL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS keys ( kid TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES "
        "principals(id), algorithm TEXT NOT NULL, public_key BLOB, sealed_private BLOB NOT NULL, created_at "
        "REAL NOT NULL, not_after REAL, revoked_at REAL, revoked_reason TEXT, revoked_by TEXT, last_used_at "
        "REAL, external_id TEXT)"
    ),
    "CREATE INDEX IF NOT EXISTS keys_by_principal ON keys(principal_id, created_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS keys_by_external_id ON keys(external_id)",
    (
        "CREATE TABLE IF NOT EXISTS media ( id TEXT PRIMARY KEY, owner TEXT NOT NULL, workspace TEXT NOT "
        "NULL, visibility TEXT NOT NULL, paths TEXT NOT NULL, updated_at REAL NOT NULL, deleted_at REAL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS grants ( id TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES "
        "principals(id), media_id TEXT NOT NULL, reason TEXT NOT NULL, created_by TEXT NOT NULL, created_at "
        "REAL NOT NULL, expires_at REAL NOT NULL, revoked_at REAL)"
    ),
    "CREATE INDEX IF NOT EXISTS grants_by_principal ON grants(principal_id, media_id)",
    (
        "CREATE TABLE IF NOT EXISTS audit ( seq INTEGER PRIMARY KEY, time REAL NOT NULL, event TEXT NOT NULL,"
        " actor TEXT, request_id TEXT, kid TEXT, media_id TEXT, rendition TEXT, subject TEXT, url_sha256 "
        "TEXT, expires_at INTEGER, decision TEXT, reason TEXT, client_ip TEXT, user_agent TEXT, detail TEXT, "
        "retention TEXT NOT NULL, personal BLOB, leaf_hash BLOB NOT NULL, pruned_at REAL)"
    ),
    "CREATE INDEX IF NOT EXISTS audit_by_kid ON audit(kid, seq)",
    "CREATE INDEX IF NOT EXISTS audit_by_event ON audit(event, seq)",
    (
        "CREATE TABLE IF NOT EXISTS checkpoints ( tree_size INTEGER NOT NULL, time REAL NOT NULL, root BLOB "
        "NOT NULL, key_id TEXT NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (tree_size, time))"
    ),
    (
        "CREATE TABLE IF NOT EXISTS subject_keys (ref TEXT PRIMARY KEY, sealed_key BLOB NOT NULL, created_at "
        "REAL NOT NULL)"
    ),
    "CREATE TABLE IF NOT EXISTS erased_subjects (ref TEXT PRIMARY KEY, erased_at REAL NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS raw_log ( id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, event"
        " TEXT NOT NULL, request_id TEXT, kid TEXT, client_ip TEXT, user_agent TEXT)"
    ),
    "CREATE INDEX IF NOT EXISTS raw_log_by_time ON raw_log(time)",
    "CREATE INDEX IF NOT EXISTS media_by_owner ON media(owner)",
    "CREATE INDEX IF NOT EXISTS audit_by_subject ON audit(subject, seq)",
    "CREATE INDEX IF NOT EXISTS audit_by_media ON audit(media_id, seq)",
    "CREATE INDEX IF NOT EXISTS audit_by_time ON audit(time)",
)


def _claim_existing_prefixes(conn: sqlite3.Connection) -> None:
    """Give items laid out as ``/v/<id>/...`` the prefix they would get if put today, where nothing overlaps."""
    rows = conn.execute("SELECT id, paths FROM media WHERE deleted_at IS NULL ORDER BY id").fetchall()
    for media_id, paths_json in rows:
        paths = {Rendition(r): p for r, p in json.loads(paths_json).items()}
        claimed: dict[str, str] = {}
        for rendition, prefix in default_prefixes(media_id, paths).items():
            inside = conn.execute(
                "SELECT 1 FROM media_paths WHERE path >= ? AND path < ? AND media_id <> ? LIMIT 1",
                (prefix, prefix_upper_bound(prefix), media_id),
            ).fetchone()
            marks = sorted(ancestors([prefix]))
            above = conn.execute(
                f"SELECT 1 FROM media_paths WHERE is_prefix AND path IN ({', '.join('?' for _ in marks)}) "  # noqa: S608
                "AND media_id <> ? LIMIT 1",
                (*marks, media_id),
            ).fetchone()
            if inside is None and above is None:
                claimed[rendition.value] = prefix
                conn.execute("INSERT OR IGNORE INTO media_paths VALUES (?, ?, 1)", (prefix, media_id))
        conn.execute("UPDATE media SET prefixes = ? WHERE id = ?", (json.dumps(claimed, sort_keys=True), media_id))


AUDIT_URLS = (
    "CREATE TABLE IF NOT EXISTS audit_urls (seq INTEGER NOT NULL, position INTEGER NOT NULL, url_sha256 TEXT, "
    "media_id TEXT, rendition TEXT, expires_at INTEGER, kid TEXT, url_key INTEGER, PRIMARY KEY (seq, position)) "
    "WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS audit_urls_by_kid ON audit_urls(kid, seq)",
    "CREATE INDEX IF NOT EXISTS audit_urls_by_media ON audit_urls(media_id, seq)",
    "CREATE INDEX IF NOT EXISTS audit_urls_by_url ON audit_urls(url_key, seq)",
)
GRANT_REVOCATIONS = (
    "CREATE TABLE grant_revocations (grant_id TEXT NOT NULL, principal_id TEXT NOT NULL, media_id TEXT NOT NULL, "
    "path TEXT NOT NULL, is_prefix INTEGER NOT NULL, revoked_at REAL NOT NULL, PRIMARY KEY (grant_id, path, "
    "is_prefix))",
    "CREATE INDEX grant_revocations_by_time ON grant_revocations(revoked_at)",
    "CREATE INDEX grant_revocations_by_media ON grant_revocations(media_id)",
)
# Grants that ended before URLs were capped at their end: their URLs stop at that end from now on.
_ENDED_GRANTS = (
    "INSERT OR IGNORE INTO grant_revocations "
    "SELECT g.id, g.principal_id, g.media_id, p.path, p.is_prefix, coalesce(g.revoked_at, g.expires_at) "
    "FROM grants AS g JOIN media_paths AS p ON p.media_id = g.media_id "
    "WHERE g.revoked_at IS NOT NULL OR g.expires_at <= (julianday('now') - 2440587.5) * 86400.0"
)
_ESCAPED = "%!%%"  # LIKE ... ESCAPE '!': holds a percent sign


def _respell_paths_and_revoke_ended_grants(conn: sqlite3.Connection) -> None:
    found = conn.execute(
        "SELECT id, paths, prefixes, deleted_at FROM media WHERE paths LIKE ? ESCAPE '!' OR prefixes LIKE ? "
        "ESCAPE '!'", (_ESCAPED, _ESCAPED),
    ).fetchall()  # fmt: skip
    if found:
        live = conn.execute("SELECT id, paths, prefixes FROM media WHERE deleted_at IS NULL").fetchall()
        stored = {r[0]: respell.StoredMedia(r[0], json.loads(r[1]), json.loads(r[2]), True) for r in live}
        stored |= {r[0]: respell.StoredMedia(r[0], json.loads(r[1]), json.loads(r[2]), r[3] is None) for r in found}
        for item in respell.respell_media(stored.values()).changed:
            conn.execute("UPDATE media SET paths = ?, prefixes = ? WHERE id = ?", respell.update_values(item))
            conn.execute("DELETE FROM media_paths WHERE media_id = ?", (item.id,))
            if item.live:
                conn.executemany("INSERT INTO media_paths (path, media_id, is_prefix) VALUES (?, ?, ?)",
                                 respell.claims(item))  # fmt: skip
    revoked = conn.execute(
        "SELECT path, is_prefix, media_id, revoked_at FROM link_revocations WHERE path LIKE ? ESCAPE '!'", (_ESCAPED,)
    ).fetchall()
    conn.execute("DELETE FROM link_revocations WHERE path LIKE ? ESCAPE '!'", (_ESCAPED,))
    conn.executemany(
        "INSERT INTO link_revocations (path, is_prefix, media_id, revoked_at) VALUES (?, ?, ?, ?) ON CONFLICT "
        "(path, is_prefix, media_id) DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at)",
        respell.respell_revocations((p, bool(i), m, at) for p, i, m, at in revoked),
    )
    conn.execute(_ENDED_GRANTS)


def _drop_url_key(conn: sqlite3.Connection) -> None:
    """v9's ``url_key`` column, which nothing reads or writes from v10 on (inserts name their columns): dropped
    where SQLite can (3.35 and later), else left as NULL for the rows to come."""
    if sqlite3.sqlite_version_info >= (3, 35, 0):
        conn.execute("ALTER TABLE audit_urls DROP COLUMN url_key")


MIGRATIONS: list[Migration] = [
    Migration(2, _BASELINE),
    Migration(
        3,
        (
            "ALTER TABLE media ADD COLUMN prefixes TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE media ADD COLUMN links_revoked_at REAL",
            "CREATE INDEX media_links_revoked ON media(links_revoked_at) WHERE links_revoked_at IS NOT NULL",
            "CREATE TABLE media_paths (path TEXT NOT NULL, media_id TEXT NOT NULL REFERENCES media(id), "
            "is_prefix INTEGER NOT NULL, PRIMARY KEY (path, media_id, is_prefix))",
            "CREATE INDEX media_paths_by_media ON media_paths(media_id)",
            "INSERT OR IGNORE INTO media_paths (path, media_id, is_prefix) "
            "SELECT j.value, m.id, 0 FROM media AS m, json_each(m.paths) AS j WHERE m.deleted_at IS NULL",
            "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, ref TEXT NOT NULL, "
            "at REAL NOT NULL)",
            "CREATE INDEX credentials_by_principal ON credentials(principal_id)",
        ),
        _claim_existing_prefixes,
    ),
    Migration(
        4,
        (
            "CREATE TABLE link_revocations (path TEXT NOT NULL, is_prefix INTEGER NOT NULL, media_id TEXT NOT NULL, "
            "revoked_at REAL NOT NULL, PRIMARY KEY (path, is_prefix, media_id))",
            "CREATE INDEX link_revocations_by_time ON link_revocations(revoked_at)",
            "CREATE INDEX link_revocations_by_media ON link_revocations(media_id)",
            "INSERT OR IGNORE INTO link_revocations (path, is_prefix, media_id, revoked_at) "
            "SELECT j.value, 0, m.id, m.links_revoked_at FROM media AS m, json_each(m.paths) AS j "
            "WHERE m.links_revoked_at IS NOT NULL",
            "INSERT OR IGNORE INTO link_revocations (path, is_prefix, media_id, revoked_at) "
            "SELECT j.value, 1, m.id, m.links_revoked_at FROM media AS m, json_each(m.prefixes) AS j "
            "WHERE m.links_revoked_at IS NOT NULL",
        ),
    ),
    # The leaf covers a header that survives pruning plus this body hash (gateway.audit.records). Rows
    # written before it keep NULL: their leaves are the pre-release layout, which audit verify reports.
    Migration(5, ("ALTER TABLE audit ADD COLUMN body_sha256 BLOB",)),
    # Operations (gateway.alerts, gateway.limits): the durable webhook outbox and where the audit feed into it
    # stopped, rate-limit buckets shared by replicas, and what outsider-use detection shares between them.
    Migration(
        6,
        (
            "CREATE TABLE webhook_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL, "
            "event_id TEXT NOT NULL, event TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL, "
            "attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, state TEXT NOT NULL DEFAULT "
            "'pending', lease_owner TEXT, lease_until REAL, last_error TEXT, delivered_at REAL, "
            "UNIQUE (endpoint, event_id))",
            "CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE state = 'pending'",
            "CREATE TABLE webhook_feed (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)",
            "CREATE TABLE limit_buckets (bucket TEXT PRIMARY KEY, level REAL NOT NULL, updated_at REAL NOT NULL, "
            "rate REAL NOT NULL, burst REAL NOT NULL)",
            "CREATE TABLE issued_networks (kid TEXT NOT NULL, expires_at INTEGER NOT NULL, network TEXT NOT NULL, "
            "PRIMARY KEY (kid, expires_at, network))",
            "CREATE INDEX issued_networks_by_expiry ON issued_networks(expires_at)",
            "CREATE TABLE usage_baselines (principal_id TEXT PRIMARY KEY, networks TEXT NOT NULL, hours INTEGER "
            "NOT NULL, first_seen REAL NOT NULL, issuances INTEGER NOT NULL, updated_at REAL NOT NULL)",
        ),
    ),
    # Grants end their URLs (gateway.signing.issuance caps a URL at its grant's end; a revoked grant's URLs stop
    # verifying), and stored paths take the one spelling per file (gateway.store.respell).
    Migration(7, GRANT_REVOCATIONS, _respell_paths_and_revoke_ended_grants),
    # The audit table keeps only the indexes its queries use (docs/audit.md, "Indexes"): every product query
    # that filters by event or time also filters by key, subject or media, or reads after a position.
    Migration(8, ("DROP INDEX IF EXISTS audit_by_event", "DROP INDEX IF EXISTS audit_by_time")),
    # Batch records (url:issued_batch) list their URLs in their body; this child table indexes each URL by key,
    # media and digest. Derived data, written with its record and checked against it by audit verify; no log
    # before v9 has a batch record, so there is nothing to fill.
    Migration(9, AUDIT_URLS),
    # The child table keeps only the indexes its queries use (docs/audit.md, "Indexes"): none of the gateway's own
    # asks by digest alone (`audit search --url-digest` reads in order, as a single record's digest search always
    # has), and a random key wrote an index page per URL.
    Migration(10, ("DROP INDEX IF EXISTS audit_urls_by_url",), _drop_url_key),
]
SCHEMA_VERSION = MIGRATIONS[-1].version


def version_of(conn: sqlite3.Connection) -> int:
    """The schema version, 0 for a database no gateway has initialised."""
    try:
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table
        return 0
    return 0 if found is None else int(found[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every pending migration, each in one transaction with its version bump."""
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version <= version_of(conn):
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if migration.version > version_of(conn):  # another process may have migrated meanwhile
                for statement in migration.statements:
                    conn.execute(statement)
                if migration.step is not None:
                    migration.step(conn)
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(migration.version),)
                )
                applied.append(migration.version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied


# The tables searches read through indexes, and what audit verify holds those indexes to.
AUDIT_TABLES = ("audit", "audit_urls")
INDEXES_OF_AUDIT_TABLES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN (?, ?) ORDER BY name"
)


def index_definition(sql: str | None) -> str | None:
    """An index's definition as compared: ``IF NOT EXISTS`` and spacing do not count (SQLite keeps the text)."""
    return None if sql is None else " ".join(sql.replace("IF NOT EXISTS ", "").split())


@functools.cache
def audit_indexes() -> dict[str, str | None]:
    """The audit tables' indexes as this code creates them (name: definition), read off a fresh in-memory database.

    A search finds what an index lists; ``audit verify`` proves the rows. Only if the indexes are these, and
    agree with their rows, does a search find every record verify proved.
    """
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn)
        rows = conn.execute(INDEXES_OF_AUDIT_TABLES, AUDIT_TABLES).fetchall()
    finally:
        conn.close()
    return {name: index_definition(sql) for name, sql in rows}
