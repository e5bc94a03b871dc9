"""Schema v7 on both stores: stored paths take the one spelling per file, and grants that ended before URLs were
capped at their end stop those URLs (gateway.store.respell; docs/paths.md)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.config import Config
from gateway.errors import StoreUnavailable
from gateway.model import PrincipalKind, Rendition, Visibility
from gateway.store.base import Store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.support import ADMIN, World, sqlite_at_version

# (media id, live, paths, prefixes) in spellings v6 kept: escapes of characters a path may hold literally.
OLD_ROWS = [
    ("a", True, {"video": "/v/a%2C1/master.m3u8", "thumbnail": "/t/a%3Ax.jpg"}, {"video": "/v/a%2C1/"}),
    ("gone", False, {"video": "/v/g%40/x.m3u8"}, {}),
]


def _respelled(found: dict[str, Any]) -> None:
    assert found["a"] == ({"thumbnail": "/t/a:x.jpg", "video": "/v/a,1/master.m3u8"}, {"video": "/v/a,1/"})
    assert found["gone"] == ({"video": "/v/g@/x.m3u8"}, {})


async def _world_at_v6(world: World) -> None:
    """An engineer whose grant was revoked under v6, and the items above."""
    admin, now = world.services.admin, world.clock()
    await world.principal("eve", kind=PrincipalKind.ENGINEER)
    await world.media("b", visibility=Visibility.PRIVATE)
    await world.media("c")
    grant = await admin.add_grant(ADMIN, "eve", "b", "ticket 1", 600, now)
    await admin.revoke_grant(ADMIN, grant.id, now + 10)
    for media_id, _live, paths, _prefixes in OLD_ROWS:
        await admin.put_media(ADMIN, media_id, "alice", "w1", Visibility.PUBLIC,
                              {Rendition(r): p for r, p in paths.items()}, now)  # fmt: skip
    await admin.delete_media(ADMIN, "gone", now + 20)


# --- SQLite -------------------------------------------------------------------------------------------------


def _sqlite_old_spellings(path: Path, rows: list[tuple[str, bool, dict[str, str], dict[str, str]]]) -> None:
    """Write rows as v6 stored them (the respelling at put time is new): the store's tables, by hand."""
    with sqlite3.connect(path) as conn:
        for media_id, live, paths, prefixes in rows:
            conn.execute("UPDATE media SET paths = ?, prefixes = ? WHERE id = ?",
                         (json.dumps(paths), json.dumps(prefixes), media_id))  # fmt: skip
            conn.execute("DELETE FROM media_paths WHERE media_id = ?", (media_id,))
            if live:
                claims = [(p, media_id, 0) for p in paths.values()] + [(p, media_id, 1) for p in prefixes.values()]
                conn.executemany("INSERT INTO media_paths VALUES (?, ?, ?)", claims)
        conn.execute("DELETE FROM link_revocations WHERE media_id = 'gone'")
        conn.execute("INSERT INTO link_revocations VALUES ('/v/g%40/x.m3u8', 0, 'gone', 5.0)")
        conn.execute("INSERT INTO link_revocations VALUES ('/v/g@/x.m3u8', 0, 'gone', 3.0)")


async def _sqlite_at_v6(world: World, config: Config, rows: Any = OLD_ROWS) -> None:
    await _world_at_v6(world)
    await world.services.close()
    sqlite_at_version(config.sqlite_path, 6)
    _sqlite_old_spellings(config.sqlite_path, rows)


async def test_sqlite_respells_stored_paths_and_revokes_ended_grants(world: World, config: Config) -> None:
    await _sqlite_at_v6(world, config)
    store = await SqliteStore.open(config.sqlite_path, migrate=True)
    try:
        assert store.applied_migrations[0] == 7  # and those after it
        await _check_migrated(store)
    finally:
        await store.close()


async def test_sqlite_migration_refuses_two_items_on_one_file(world: World, config: Config) -> None:
    clash = ("c", True, {"thumbnail": "/t/a%3Ax.jpg"}, {})  # already claimed by "a" as /t/a:x.jpg once respelled
    await _sqlite_at_v6(world, config, [*OLD_ROWS, clash])
    with pytest.raises(StoreUnavailable, match=r"two live media items claim one file: a and c \(/t/a:x\.jpg\)"):
        await SqliteStore.open(config.sqlite_path, migrate=True)
    with sqlite3.connect(config.sqlite_path) as conn:  # nothing applied: still v6, paths as they were
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("6",)


async def _check_migrated(store: Store) -> None:
    found = {}
    for media_id in ("a", "gone"):
        item = await store.media.get(media_id)
        assert item is not None
        found[media_id] = ({r.value: p for r, p in item.paths.items()}, {r.value: p for r, p in item.prefixes.items()})
    _respelled(found)
    revoked = {(r.media_id, r.path, r.is_prefix, r.principal_id): r.at for r in await store.media.revoked_paths(0)}
    assert revoked[("gone", "/v/g@/x.m3u8", False, None)] == 5.0  # the two spellings merged, the later time kept
    grant_rows = {k: at for k, at in revoked.items() if k[3] == "eve"}
    assert set(grant_rows) == {("b", "/t/b.jpg", False, "eve"), ("b", "/v/b/master.m3u8", False, "eve"),
                               ("b", "/v/b/", True, "eve")}  # fmt: skip
    assert set(grant_rows.values()) == {ADMIN_TIME + 10}


ADMIN_TIME = 1_800_000_000.0  # the clock fixture's start (tests.support.T0)


# --- PostgreSQL ---------------------------------------------------------------------------------------------


@pytest.fixture
async def pg_world(tmp_path: Path, postgres_url: str) -> AsyncIterator[tuple[World, str]]:
    from gateway.services import open_services
    from tests.support import Clock, init_data_dir

    data = tmp_path / "pg"
    data.mkdir()
    (data / "gateway.toml").write_text(f'[database]\nurl = "{postgres_url}"\n')
    services = await open_services(await asyncio.to_thread(init_data_dir, data), Clock())
    world = World(services, Clock())
    try:
        await _world_at_v6(world)
    finally:
        await services.close()
    yield world, postgres_url


async def _pg_back_to_v6(url: str, rows: list[tuple[str, bool, dict[str, str], dict[str, str]]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        # v9's audit_urls goes too: v10 reshaped it, and a v6 database had none.
        await conn.execute(
            "DROP TABLE grant_revocations; DROP TABLE IF EXISTS audit_urls; "
            "DELETE FROM schema_migrations WHERE version >= 7"
        )
        for media_id, live, paths, prefixes in rows:
            await conn.execute("UPDATE media SET paths = $1, prefixes = $2 WHERE id = $3",
                               json.dumps(paths), json.dumps(prefixes), media_id)  # fmt: skip
            await conn.execute("DELETE FROM media_paths WHERE media_id = $1", media_id)
            if live:
                claims = [(p, media_id, False) for p in paths.values()]
                claims += [(p, media_id, True) for p in prefixes.values()]
                await conn.executemany("INSERT INTO media_paths VALUES ($1, $2, $3)", claims)
        await conn.execute("DELETE FROM link_revocations WHERE media_id = 'gone'")
        await conn.execute("INSERT INTO link_revocations VALUES ('/v/g%40/x.m3u8', false, 'gone', 5.0)")
        await conn.execute("INSERT INTO link_revocations VALUES ('/v/g@/x.m3u8', false, 'gone', 3.0)")
    finally:
        await conn.close()


async def test_postgresql_respells_stored_paths_and_revokes_ended_grants(pg_world: tuple[World, str]) -> None:
    _, url = pg_world
    await _pg_back_to_v6(url, OLD_ROWS)
    store = await PostgresStore.open(url, migrate=True)
    try:
        assert store.applied_migrations[0] == 7  # and those after it
        await _check_migrated(store)
    finally:
        await store.close()


async def test_postgresql_migration_refuses_two_items_on_one_file(pg_world: tuple[World, str]) -> None:
    _, url = pg_world
    await _pg_back_to_v6(url, [*OLD_ROWS, ("c", True, {"thumbnail": "/t/a%3Ax.jpg"}, {})])
    with pytest.raises(StoreUnavailable, match=r"two live media items claim one file: a and c \(/t/a:x\.jpg\)"):
        await PostgresStore.open(url, migrate=True)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 6
    finally:
        await conn.close()
