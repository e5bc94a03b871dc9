"""Schema v8 on both stores: the audit table keeps only the indexes its queries use (issue 18).

Each query the product makes of the audit table, with the plan SQLite chooses for it: docs/audit.md shows
the same plans. An index none of them uses only costs every append.
"""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from gateway.config import Config
from gateway.store.base import AuditQuery
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.repos import _audit_filters
from tests.support import World, sqlite_at_version

AUDIT_INDEXES = {"audit_by_kid", "audit_by_media", "audit_by_subject"}

# (what asks, the query, the plan's access path): every AuditQuery the gateway's code builds.
QUERIES = [
    ("forensics: incident report", AuditQuery(kid="k", since=1.0, after_seq=5), "audit_by_kid"),
    ("explain: key revoked", AuditQuery(event="key:revoked", kid="k", limit=1), "audit_by_kid"),
    ("subject export / erasure", AuditQuery(subject="s", after_seq=5), "audit_by_subject"),
    ("explain: principal disabled", AuditQuery(event="principal:disabled", subject="p", limit=1), "audit_by_subject"),
    ("incidents: subject named", AuditQuery(event="incident:subject_named", subject="s", limit=1), "audit_by_subject"),
    ("explain: media at a time", AuditQuery(media_id="m", since=1.0, until=2.0), "audit_by_media"),
    ("outbox: events after its cursor", AuditQuery(event="key:revoked", after_seq=5), "INTEGER PRIMARY KEY"),
]


def _plan(conn: sqlite3.Connection, query: AuditQuery) -> str:
    clauses, params = _audit_filters(query)
    where = " AND ".join(["pruned_at IS NULL", *clauses])
    sql = f"EXPLAIN QUERY PLAN SELECT * FROM audit WHERE {where} ORDER BY seq LIMIT ?"  # noqa: S608
    return " / ".join(row[3] for row in conn.execute(sql, [*params, query.limit]))


@pytest.mark.parametrize(("who", "query", "uses"), QUERIES, ids=[q[0] for q in QUERIES])
def test_each_audit_query_uses_an_index(config: Config, who: str, query: AuditQuery, uses: str) -> None:
    conn = sqlite3.connect(config.sqlite_path)
    plan = _plan(conn, query)
    assert uses in plan, f"{who}: {plan}"
    assert "TEMP B-TREE" not in plan  # no sort: every index ends in seq


def test_sqlite_keeps_only_the_audit_indexes_queries_use(config: Config) -> None:
    conn = sqlite3.connect(config.sqlite_path)
    found = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'")}
    assert found == AUDIT_INDEXES


async def test_v7_database_loses_the_unused_indexes_and_keeps_its_records(world: World, config: Config) -> None:
    await world.principal("web")
    before = len(await world.services.store.audit.tail(100))
    await world.services.close()
    sqlite_at_version(config.sqlite_path, 7)
    conn = sqlite3.connect(config.sqlite_path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'")}
    assert {"audit_by_event", "audit_by_time"} <= names
    conn.close()
    store = await SqliteStore.open(config.sqlite_path, migrate=True)
    try:
        assert store.applied_migrations == [8, 9, 10]  # and v9, v10 (tests/test_migration_v9.py, _v10.py)
        assert len(await store.audit.tail(100)) == before
    finally:
        await store.close()
    conn = sqlite3.connect(config.sqlite_path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'")}
    assert names == AUDIT_INDEXES


async def test_postgres_keeps_only_the_audit_indexes_queries_use(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url, migrate=True)
    await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'audit'")
    finally:
        await conn.close()
    assert {r["indexname"] for r in rows} - {"audit_pkey"} == AUDIT_INDEXES
