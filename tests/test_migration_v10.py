"""Schema v10 on both stores: the child table of batch records (``audit_urls``) without the digest's index and
its key column (``audit_urls_by_url``, ``url_key``). A v9 database with batch records migrates, keeps
verifying and keeps finding every URL by key, media and digest; the plan of every query on the table, before
and after (docs/audit.md, "Indexes"; issue 18, decision 7)."""

from __future__ import annotations

import hashlib
import sqlite3

import asyncpg
import pytest

from gateway.config import Config
from gateway.model import Permission, Rendition, Viewer
from gateway.services import Services, open_services
from gateway.signing.issuance import SignItem
from gateway.store import is_postgres, open_store
from gateway.store.base import AuditQuery
from gateway.store.sqlite.repos import _PRUNE_URLS, _batch_search
from tests.audit_support import verify
from tests.support import ADMIN, Clock, World

V9_INDEX = "CREATE INDEX audit_urls_by_url ON audit_urls(url_key, seq)"
_PG_BACK_TO_V9 = (
    "ALTER TABLE audit_urls ADD COLUMN url_key BIGINT; "
    "UPDATE audit_urls SET url_key = ('x' || substr(url_sha256, 1, 16))::bit(64)::bigint; "
    "CREATE INDEX audit_urls_by_url ON audit_urls(url_key, seq); DELETE FROM schema_migrations WHERE version >= 10"
)


def _url_key(digest: str | None) -> int | None:
    """v9's index key of a digest: its first 8 bytes as a signed 64-bit integer."""
    return None if digest is None else int.from_bytes(bytes.fromhex(digest[:16]), "big", signed=True)


async def _back_to_v9(config: Config) -> None:
    """The database as a v9 gateway left it: each child row with its ``url_key``, indexed; version 9."""
    if not is_postgres(config):
        conn = sqlite3.connect(config.sqlite_path, isolation_level=None)
        try:
            conn.create_function("url_key", 1, _url_key)
            conn.execute("ALTER TABLE audit_urls ADD COLUMN url_key INTEGER")
            conn.execute("UPDATE audit_urls SET url_key = url_key(url_sha256)")
            conn.execute(V9_INDEX)
            conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
        finally:
            conn.close()
        return
    conn = await asyncpg.connect(config.database_url)
    try:
        await conn.execute(_PG_BACK_TO_V9)
    finally:
        await conn.close()


async def _batches(services: Services, clock: Clock) -> list[str]:
    """Two batch records of the same three URLs (two media, one key; one cache window); the URLs issued."""
    world = World(services, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    for media_id in ("m1", "m2"):
        await world.media(media_id)
    principal = await services.store.principals.get("web")
    assert principal is not None
    items = [SignItem("m1", Rendition.THUMBNAIL), SignItem("m2", Rendition.VIDEO), SignItem("m2", Rendition.THUMBNAIL)]
    urls = []
    for _ in range(2):
        outcomes = await services.issuer.issue(principal, Viewer("alice", source="asserted"), items, ADMIN, clock())
        urls += [o.issued.url for o in outcomes if o.issued]
        clock.advance(1)
    return urls


async def test_a_v9_database_drops_the_digest_index_and_keeps_finding_and_verifying(
    any_store_config: Config, clock: Clock
) -> None:
    services = await open_services(any_store_config, clock)
    try:
        urls = await _batches(services, clock)
        rows = await services.store.audit.urls(0, None)
    finally:
        await services.close()
    assert len(rows) == 6
    await _back_to_v9(any_store_config)
    store = await open_store(any_store_config, migrate=True)
    try:
        assert store.applied_migrations == [10]
        assert await store.audit.urls(0, None) == rows  # the same child rows, less the key column
        assert await store.audit.index_problems() == []
    finally:
        await store.close()
    services = await open_services(any_store_config, clock)
    try:
        assert (await verify(services)).ok
        [first, second] = sorted({row[0] for row in rows})
        assert urls[:3] == urls[3:] and len(set(urls)) == 3
        for url in urls:
            digest = hashlib.sha256(url.encode()).hexdigest()
            found = await services.store.audit.search(AuditQuery(url_sha256=digest))
            assert [r.seq for r in found] == [first, second]
            narrowed = await services.store.audit.search(AuditQuery(url_sha256=digest, kid=rows[0][6]))
            assert [r.seq for r in narrowed] == [r.seq for r in found]
        assert await services.store.audit.search(AuditQuery(url_sha256="0" * 64)) == []
        by_media = await services.store.audit.search(AuditQuery(media_id="m1"))
        assert [r.seq for r in by_media if r.seq in (first, second)] == [first, second]
    finally:
        await services.close()


# Every query the gateway makes on audit_urls, and its plan (docs/audit.md, "Indexes"): (what asks, the SQL and its
# values, the plan after v10). The search's batch half is ``_batch_search``; the others are fixed statements.
_BY_SEQ = " / SEARCH a USING INTEGER PRIMARY KEY (rowid=?)"  # each matching batch record, by its position
PLANS = [
    ("forensics: incident report", _batch_search(AuditQuery(kid="k", since=1.0, after_seq=5)),
     "SEARCH u USING COVERING INDEX audit_urls_by_kid (kid=? AND seq>?)" + _BY_SEQ),
    ("explain and search by media", _batch_search(AuditQuery(media_id="m", since=1.0, until=2.0)),
     "SEARCH u USING COVERING INDEX audit_urls_by_media (media_id=?)" + _BY_SEQ),
    ("search by URL digest and key", _batch_search(AuditQuery(url_sha256="d", kid="k")),
     "SEARCH u USING INDEX audit_urls_by_kid (kid=?)" + _BY_SEQ),
    ("search by URL digest alone (as on audit: read in order)", _batch_search(AuditQuery(url_sha256="d")),
     "SCAN u" + _BY_SEQ),
    ("audit verify: a page's child rows", ("SELECT * FROM audit_urls WHERE seq > ? AND seq <= ? ORDER BY seq, "
                                           "position", [1, 2]),
     "SEARCH audit_urls USING PRIMARY KEY (seq>? AND seq<?)"),
    ("prune: a pruned record's child rows", (_PRUNE_URLS, [1]),
     "SEARCH audit_urls USING PRIMARY KEY (seq=?) / LIST SUBQUERY 1 / SEARCH audit USING INTEGER PRIMARY KEY "
     "(rowid<?)"),
]  # fmt: skip


def _plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> str:
    return " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize(("who", "query", "plan"), PLANS, ids=[p[0] for p in PLANS])
def test_every_query_on_the_child_table_reads_an_index_it_keeps(
    config: Config, who: str, query: tuple[str, list[object]], plan: str
) -> None:
    conn = sqlite3.connect(config.sqlite_path)
    try:
        assert _plan(conn, *query) == plan, who
        assert "audit_urls_by_url" not in _plan(conn, *query)
        listed = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_urls'")
        assert {row[0] for row in listed} == {"audit_urls_by_kid", "audit_urls_by_media"}
    finally:
        conn.close()


async def test_on_a_sqlite_before_3_35_the_key_column_stays_unused_and_nothing_else_changes(
    config: Config, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``DROP COLUMN`` before SQLite 3.35: v10 drops the index alone; the column is left NULL in new rows."""
    services = await open_services(config, clock)
    try:
        urls = await _batches(services, clock)
    finally:
        await services.close()
    await _back_to_v9(config)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    store = await open_store(config, migrate=True)
    try:
        assert store.applied_migrations == [10]
    finally:
        await store.close()
    services = await open_services(config, clock)
    try:
        more = await _batches_again(services, clock)
        assert more == urls[:3]  # the same items in the same window: the same URLs, a third batch record
        rows = await services.store.audit.urls(0, None)
        assert len(rows) == 9 and all(len(row) == 7 for row in rows)
        digest = hashlib.sha256(urls[0].encode()).hexdigest()
        assert len(await services.store.audit.search(AuditQuery(url_sha256=digest))) == 3
        assert await services.store.audit.index_problems() == []
        assert (await verify(services)).ok
    finally:
        await services.close()
    conn = sqlite3.connect(config.sqlite_path)
    try:
        keys = conn.execute("SELECT url_key IS NULL FROM audit_urls ORDER BY seq, position").fetchall()
        assert [k for (k,) in keys] == [0] * 6 + [1] * 3  # v9's keys kept, none written since
    finally:
        conn.close()


async def _batches_again(services: Services, clock: Clock) -> list[str]:
    principal = await services.store.principals.get("web")
    assert principal is not None
    items = [SignItem("m1", Rendition.THUMBNAIL), SignItem("m2", Rendition.VIDEO), SignItem("m2", Rendition.THUMBNAIL)]
    outcomes = await services.issuer.issue(principal, Viewer("alice", source="asserted"), items, ADMIN, clock())
    return [o.issued.url for o in outcomes if o.issued]
