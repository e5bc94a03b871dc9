"""Schema v9 on both stores: the child table of batch records (``audit_urls``), added to a v8 database that
holds records, which keep verifying; the migrated store then writes and finds batch records (issue 18)."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from gateway.audit.records import AuditEvent
from gateway.config import Config
from gateway.model import Rendition, Viewer
from gateway.services import open_services
from gateway.signing.issuance import SignItem
from gateway.store import is_postgres, open_store
from gateway.store.base import AuditQuery
from gateway.store.sqlite.repos import _batch_search
from tests.audit_support import fill, verify
from tests.support import ADMIN, Clock, World, sqlite_at_version


async def _back_to_v8(config: Config) -> None:
    """The database as a v8 gateway left it: no audit_urls, version 8."""
    if not is_postgres(config):
        sqlite_at_version(config.sqlite_path, 8)
        return
    conn = await asyncpg.connect(config.database_url)
    try:
        await conn.execute("DROP TABLE audit_urls; DELETE FROM schema_migrations WHERE version >= 9")
    finally:
        await conn.close()


async def test_v8_database_gains_the_url_index_and_keeps_verifying(any_store_config: Config, clock: Clock) -> None:
    services = await open_services(any_store_config, clock)
    try:
        await fill(World(services, clock), 3)  # single records, as v8 wrote them
        before = await services.store.audit.tail(100)
    finally:
        await services.close()
    await _back_to_v8(any_store_config)
    store = await open_store(any_store_config, migrate=True)
    try:
        assert store.applied_migrations == [9, 10]  # v10: the digest's index dropped (tests/test_migration_v10.py)
        assert await store.audit.tail(100) == before
        assert await store.audit.urls(0, None) == []
    finally:
        await store.close()
    services = await open_services(any_store_config, clock)
    try:
        assert (await verify(services)).ok
        principal = await services.store.principals.get("web")
        assert principal is not None
        items = [SignItem("m1", Rendition.THUMBNAIL), SignItem("m1", Rendition.VIDEO)]
        await services.issuer.issue(principal, Viewer("alice", source="asserted"), items, ADMIN, clock())
        [batch] = await services.store.audit.search(AuditQuery(media_id="m1", event=AuditEvent.URL_ISSUED_BATCH.value))
        assert [row[:2] for row in await services.store.audit.urls(0, None)] == [(batch.seq, 0), (batch.seq, 1)]
        assert (await verify(services)).ok
    finally:
        await services.close()


# (what asks, the query, the index its batch half reads): docs/audit.md, "Indexes".
BATCH_QUERIES = [
    ("forensics: incident report", AuditQuery(kid="k", since=1.0, after_seq=5), "audit_urls_by_kid (kid=? AND seq>?)"),
    ("search by media", AuditQuery(media_id="m", since=1.0, until=2.0), "audit_urls_by_media (media_id=?)"),
    ("search by URL digest and key", AuditQuery(url_sha256="d", kid="k"), "audit_urls_by_kid (kid=?)"),
]


@pytest.mark.parametrize(("who", "query", "uses"), BATCH_QUERIES, ids=[q[0] for q in BATCH_QUERIES])
def test_batch_urls_are_found_through_an_index(config: Config, who: str, query: AuditQuery, uses: str) -> None:
    sql, params = _batch_search(query)
    plan = " / ".join(
        row[3] for row in sqlite3.connect(config.sqlite_path).execute(f"EXPLAIN QUERY PLAN {sql}", params)
    )
    covering = "" if query.url_sha256 else "COVERING "  # a digest is compared in the row (no index: schema v10)
    assert plan == f"SEARCH u USING {covering}INDEX {uses} / SEARCH a USING INTEGER PRIMARY KEY (rowid=?)", who
