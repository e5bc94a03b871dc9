"""The PostgreSQL schema, as numbered migrations (``gatewayctl migrate`` applies them).

Each entry produces one schema version; versions are shared with the SQLite
store, whose history starts earlier. The change feed's ``change_head`` row is
updated by every transaction that appends a change, so those transactions take
their positions one at a time, in commit order: a reader never sees position
n+1 before n (a bare sequence would hand out numbers before commit, and a
reader could skip one that committed late).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.store import respell


@dataclass(frozen=True)
class Migration:
    version: int
    sql: str
    # Data work SQL cannot express, run after the statements in the same transaction (an asyncpg connection).
    step: Callable[[Any], Awaitable[None]] | None = None


_ESCAPED = "%!%%"  # LIKE ... ESCAPE '!': holds a percent sign


async def _respell_paths_and_revoke_ended_grants(conn: Any) -> None:
    """Schema v7's data step (gateway.store.respell), as the SQLite store runs it."""
    found = await conn.fetch(
        "SELECT id, paths, prefixes, deleted_at FROM media WHERE paths LIKE $1 ESCAPE '!' OR prefixes LIKE $1 "
        "ESCAPE '!'", _ESCAPED,
    )  # fmt: skip
    if found:
        live = await conn.fetch("SELECT id, paths, prefixes FROM media WHERE deleted_at IS NULL")
        stored = {r["id"]: _stored(r, True) for r in live} | {
            r["id"]: _stored(r, r["deleted_at"] is None) for r in found
        }
        for item in respell.respell_media(stored.values()).changed:
            await conn.execute("UPDATE media SET paths = $1, prefixes = $2 WHERE id = $3", *respell.update_values(item))
            await conn.execute("DELETE FROM media_paths WHERE media_id = $1", item.id)
            if item.live:
                await conn.executemany(
                    "INSERT INTO media_paths (path, media_id, is_prefix) VALUES ($1, $2, $3)", respell.claims(item)
                )
    revoked = await conn.fetch(
        "DELETE FROM link_revocations WHERE path LIKE $1 ESCAPE '!' RETURNING path, is_prefix, media_id, revoked_at",
        _ESCAPED,
    )
    await conn.executemany(
        "INSERT INTO link_revocations (path, is_prefix, media_id, revoked_at) VALUES ($1, $2, $3, $4) ON CONFLICT "
        "(path, is_prefix, media_id) DO UPDATE SET revoked_at = greatest(link_revocations.revoked_at, "
        "excluded.revoked_at)",
        respell.respell_revocations((r["path"], r["is_prefix"], r["media_id"], r["revoked_at"]) for r in revoked),
    )
    # Grants that ended before URLs were capped at their end: their URLs stop at that end from now on.
    await conn.execute(
        "INSERT INTO grant_revocations SELECT g.id, g.principal_id, g.media_id, p.path, p.is_prefix, "
        "coalesce(g.revoked_at, g.expires_at) FROM grants AS g JOIN media_paths AS p ON p.media_id = g.media_id "
        "WHERE g.revoked_at IS NOT NULL OR g.expires_at <= extract(epoch FROM clock_timestamp()) "
        "ON CONFLICT DO NOTHING"
    )


def _stored(row: Any, live: bool) -> respell.StoredMedia:
    return respell.StoredMedia(row["id"], json.loads(row["paths"]), json.loads(row["prefixes"]), live)


MIGRATIONS: list[Migration] = [
    Migration(
        3,
        """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE principals (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, permissions TEXT NOT NULL, renditions TEXT,
    created_at DOUBLE PRECISION NOT NULL, disabled_at DOUBLE PRECISION);
CREATE TABLE credentials (
    id TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES principals(id),
    public_key BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION);
CREATE INDEX credentials_by_principal ON credentials(principal_id);
CREATE TABLE keys (
    kid TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES principals(id),
    algorithm TEXT NOT NULL, public_key BYTEA, sealed_private BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, not_after DOUBLE PRECISION, revoked_at DOUBLE PRECISION,
    revoked_reason TEXT, revoked_by TEXT, last_used_at DOUBLE PRECISION, external_id TEXT UNIQUE);
CREATE INDEX keys_by_principal ON keys(principal_id, created_at);
CREATE TABLE media (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, workspace TEXT NOT NULL, visibility TEXT NOT NULL,
    paths TEXT NOT NULL, prefixes TEXT NOT NULL DEFAULT '{}', updated_at DOUBLE PRECISION NOT NULL,
    deleted_at DOUBLE PRECISION, links_revoked_at DOUBLE PRECISION);
CREATE INDEX media_by_owner ON media(owner);
CREATE INDEX media_links_revoked ON media(links_revoked_at) WHERE links_revoked_at IS NOT NULL;
CREATE TABLE media_paths (
    path TEXT NOT NULL, media_id TEXT NOT NULL REFERENCES media(id), is_prefix BOOLEAN NOT NULL,
    PRIMARY KEY (path, media_id, is_prefix));
CREATE INDEX media_paths_by_media ON media_paths(media_id);
CREATE INDEX media_paths_by_path ON media_paths(path text_pattern_ops);
CREATE TABLE grants (
    id TEXT PRIMARY KEY, principal_id TEXT NOT NULL REFERENCES principals(id), media_id TEXT NOT NULL,
    reason TEXT NOT NULL, created_by TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION);
CREATE INDEX grants_by_principal ON grants(principal_id, media_id);
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY, time DOUBLE PRECISION NOT NULL, event TEXT NOT NULL,
    actor TEXT, request_id TEXT, kid TEXT, media_id TEXT, rendition TEXT, subject TEXT, url_sha256 TEXT,
    expires_at BIGINT, decision TEXT, reason TEXT, client_ip TEXT, user_agent TEXT, detail TEXT,
    retention TEXT NOT NULL, personal BYTEA, leaf_hash BYTEA NOT NULL, pruned_at DOUBLE PRECISION);
CREATE INDEX audit_by_kid ON audit(kid, seq);
CREATE INDEX audit_by_event ON audit(event, seq);
CREATE INDEX audit_by_subject ON audit(subject, seq);
CREATE INDEX audit_by_media ON audit(media_id, seq);
CREATE INDEX audit_by_time ON audit(time);
CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), frontier BYTEA NOT NULL);
INSERT INTO audit_head (id, frontier) VALUES (1, ''::bytea);
CREATE TABLE checkpoints (
    tree_size BIGINT NOT NULL, time DOUBLE PRECISION NOT NULL, root BYTEA NOT NULL, key_id TEXT NOT NULL,
    signature BYTEA NOT NULL, PRIMARY KEY (tree_size, time));
CREATE TABLE subject_keys (ref TEXT PRIMARY KEY, sealed_key BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE erased_subjects (ref TEXT PRIMARY KEY, erased_at DOUBLE PRECISION NOT NULL);
CREATE TABLE raw_log (
    id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, event TEXT NOT NULL, request_id TEXT,
    kid TEXT, client_ip TEXT, user_agent TEXT);
CREATE INDEX raw_log_by_time ON raw_log(time);
CREATE TABLE changes (seq BIGINT PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE TABLE change_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
INSERT INTO change_head (id, seq) VALUES (1, 0);
""",
    ),
    Migration(
        4,
        """
CREATE TABLE link_revocations (
    path TEXT COLLATE "C" NOT NULL, is_prefix BOOLEAN NOT NULL, media_id TEXT NOT NULL,
    revoked_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (path, is_prefix, media_id));
CREATE INDEX link_revocations_by_time ON link_revocations(revoked_at);
CREATE INDEX link_revocations_by_media ON link_revocations(media_id);
INSERT INTO link_revocations (path, is_prefix, media_id, revoked_at)
    SELECT j.value, false, m.id, m.links_revoked_at FROM media AS m, json_each_text(m.paths::json) AS j
    WHERE m.links_revoked_at IS NOT NULL ON CONFLICT DO NOTHING;
INSERT INTO link_revocations (path, is_prefix, media_id, revoked_at)
    SELECT j.value, true, m.id, m.links_revoked_at FROM media AS m, json_each_text(m.prefixes::json) AS j
    WHERE m.links_revoked_at IS NOT NULL ON CONFLICT DO NOTHING;
""",
    ),
    # The leaf covers a header that survives pruning plus this body hash (gateway.audit.records). Rows
    # written before it keep NULL: their leaves are the pre-release layout, which audit verify reports.
    Migration(5, "ALTER TABLE audit ADD COLUMN body_sha256 BYTEA;"),
    # Operations (gateway.alerts, gateway.limits): the durable webhook outbox and where the audit feed into it
    # stopped, rate-limit buckets shared by replicas, and what outsider-use detection shares between them.
    Migration(
        6,
        """
CREATE TABLE webhook_outbox (
    id BIGSERIAL PRIMARY KEY, endpoint TEXT NOT NULL, event_id TEXT NOT NULL, event TEXT NOT NULL,
    payload TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL DEFAULT 'pending', lease_owner TEXT,
    lease_until DOUBLE PRECISION, last_error TEXT, delivered_at DOUBLE PRECISION, UNIQUE (endpoint, event_id));
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE state = 'pending';
CREATE TABLE webhook_feed (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
CREATE TABLE limit_buckets (
    bucket TEXT PRIMARY KEY, level DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    rate DOUBLE PRECISION NOT NULL, burst DOUBLE PRECISION NOT NULL);
CREATE TABLE issued_networks (
    kid TEXT NOT NULL, expires_at BIGINT NOT NULL, network TEXT NOT NULL, PRIMARY KEY (kid, expires_at, network));
CREATE INDEX issued_networks_by_expiry ON issued_networks(expires_at);
CREATE TABLE usage_baselines (
    principal_id TEXT PRIMARY KEY, networks TEXT NOT NULL, hours INTEGER NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL, issuances BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
""",
    ),
    # Grants end their URLs (gateway.signing.issuance caps a URL at its grant's end; a revoked grant's URLs stop
    # verifying), and stored paths take the one spelling per file (gateway.store.respell).
    Migration(
        7,
        """
CREATE TABLE grant_revocations (
    grant_id TEXT NOT NULL, principal_id TEXT NOT NULL, media_id TEXT NOT NULL, path TEXT COLLATE "C" NOT NULL,
    is_prefix BOOLEAN NOT NULL, revoked_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (grant_id, path, is_prefix));
CREATE INDEX grant_revocations_by_time ON grant_revocations(revoked_at);
CREATE INDEX grant_revocations_by_media ON grant_revocations(media_id);
""",
        _respell_paths_and_revoke_ended_grants,
    ),
    # The audit table keeps only the indexes its queries use (docs/audit.md, "Indexes"), as on SQLite.
    Migration(8, "DROP INDEX IF EXISTS audit_by_event; DROP INDEX IF EXISTS audit_by_time;"),
    # Batch records' URLs, indexed by key, media and digest (docs/audit.md, "Batch records"), as on SQLite.
    Migration(
        9,
        """
CREATE TABLE IF NOT EXISTS audit_urls (
    seq BIGINT NOT NULL, position INTEGER NOT NULL, url_sha256 TEXT, media_id TEXT, rendition TEXT,
    expires_at BIGINT, kid TEXT, url_key BIGINT, PRIMARY KEY (seq, position));
CREATE INDEX IF NOT EXISTS audit_urls_by_kid ON audit_urls(kid, seq);
CREATE INDEX IF NOT EXISTS audit_urls_by_media ON audit_urls(media_id, seq);
CREATE INDEX IF NOT EXISTS audit_urls_by_url ON audit_urls(url_key, seq);
""",
    ),
    # The child table keeps only the indexes its queries use (docs/audit.md, "Indexes"), as on SQLite.
    Migration(10, "DROP INDEX IF EXISTS audit_urls_by_url; ALTER TABLE audit_urls DROP COLUMN IF EXISTS url_key;"),
]


# What audit verify holds the audit tables' indexes to (a search finds what an index lists, verify proves rows):
# each of these, valid, over exactly these columns, with no predicate; no other. PostgreSQL keeps an index's
# entries in step with its rows itself; damage below SQL (the files) is amcheck's to find, not the gateway's.
AUDIT_INDEXES = {
    "audit_pkey": "(seq)",
    "audit_by_kid": "(kid, seq)",
    "audit_by_subject": "(subject, seq)",
    "audit_by_media": "(media_id, seq)",
    "audit_urls_pkey": '(seq, "position")',
    "audit_urls_by_kid": "(kid, seq)",
    "audit_urls_by_media": "(media_id, seq)",
}
INDEXES_OF_AUDIT_TABLES = """
SELECT ix.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid AS valid
FROM pg_index i JOIN pg_class ix ON ix.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
WHERE t.relname IN ('audit', 'audit_urls') AND t.relnamespace = current_schema()::regnamespace
ORDER BY 1
"""
