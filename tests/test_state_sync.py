"""Keeping the view true: load, catch up on the change feed, fail closed when it cannot (both stores)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.model import (
    Credential,
    Grant,
    KeyAlgorithm,
    MediaItem,
    Permission,
    Principal,
    PrincipalKind,
    Rendition,
    SigningKey,
    Visibility,
)  # fmt: skip
from gateway.state.media import MediaCache
from gateway.state.sync import StateSync, SyncPolicy
from gateway.state.view import StateView
from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore
from tests.support import Clock

P = Principal("svc", PrincipalKind.SERVICE, frozenset({Permission.SIGN}), 1.0)
KEY = SigningKey("gwk_1", "svc", KeyAlgorithm.ED25519, b"s", 1.0, b"p" * 32)
MEDIA = MediaItem("m1", "alice", "w1", Visibility.PRIVATE, {Rendition.VIDEO: "/v/m1/x.m3u8"}, 1.0,
                  prefixes={Rendition.VIDEO: "/v/m1/"})  # fmt: skip


async def _second(store: Store, tmp_path: Path) -> Store:
    """Another process's connection to the same database (gatewayctl, another replica)."""
    if isinstance(store, SqliteStore):
        return await SqliteStore.open(tmp_path / "contract.db")
    from gateway.store.postgres import PostgresStore

    return await PostgresStore.open(store._dsn)  # type: ignore[attr-defined]


@pytest.fixture
async def other(store: Store, tmp_path: Path) -> AsyncIterator[Store]:
    second = await _second(store, tmp_path)
    yield second
    await second.close()


def _sync(store: Store, clock: Clock, monotonic: Clock | None = None, **policy: float) -> StateSync:
    media = MediaCache(store.media.get, capacity=10)
    return StateSync(store, StateView(), media, clock, SyncPolicy(**policy), monotonic=monotonic or time.monotonic)


async def test_load_then_catch_up_applies_what_another_process_changed(
    store: Store, other: Store, clock: Clock
) -> None:
    async with other.transaction() as tx:
        await tx.principals.add(P)
        await tx.principals.add_credential(Credential("gwc_1", "svc", b"k" * 32, 1.0))
        await tx.keys.add(KEY)
        await tx.media.put(MEDIA)
    sync = _sync(store, clock)
    await sync.load()
    view = sync.view
    held = dataclasses.replace(KEY, sealed_private=b"")  # the view holds no private halves (Keyring.secret)
    assert (view.principals["svc"], view.keys["gwk_1"], view.credentials["gwc_1"].revoked_at) == (P, held, None)
    assert await sync.media.get("m1") == MEDIA  # cached now
    async with other.transaction() as tx:
        await tx.keys.revoke("gwk_1", 5.0, "leaked", "admin")
        await tx.principals.disable("svc", 5.0)
        await tx.principals.revoke_credential("gwc_1", 5.0)
        await tx.grants.add(Grant("gwg_1", "svc", "m1", "r", "a", 1.0, 9e9))
        await tx.media.revoke_links("m1", clock() + 6.0)
        await tx.subjects.erase("sub_x", 7.0)
    assert await sync.catch_up() == 6
    view = sync.view
    assert view.keys["gwk_1"].revoked_at == 5.0
    assert view.principals["svc"].disabled_at == 5.0
    assert view.credentials["gwc_1"].revoked_at == 5.0
    assert [g.id for g in view.grants_for("svc", "m1")] == ["gwg_1"]
    assert view.links_revoked_at("/v/m1/seg.ts") == clock() + 6.0
    assert "sub_x" in view.erased
    cached = await sync.media.get("m1")
    assert cached is not None and cached.links_revoked_at == clock() + 6.0  # the stale copy was invalidated
    assert await sync.catch_up() == 0


async def test_the_view_is_current_only_while_catch_up_keeps_succeeding(store: Store, clock: Clock) -> None:
    ticks = Clock(0.0)  # the monotonic clock staleness is measured on
    sync = _sync(store, clock, monotonic=ticks, stale_after=2.0)
    assert not sync.current()  # never loaded: never current
    await sync.load()
    assert sync.current()
    clock.advance(86400)  # the wall clock stepping changes nothing
    assert sync.current()
    ticks.advance(2.5)
    assert not sync.current() and sync.age() == 2.5
    await sync.catch_up()
    assert sync.current()
    await store.close()  # the database goes away
    ticks.advance(1.0)
    with pytest.raises(StoreUnavailable):
        await sync.catch_up()
    assert sync.current()  # 1 s old: still within the bound
    ticks.advance(1.5)
    assert not sync.current()


async def test_running_sync_applies_a_change_from_another_process_within_a_poll(store: Store, other: Store) -> None:
    sync = _sync(store, time.time, poll_every=0.02)
    async with _running(sync):
        async with other.transaction() as tx:
            await tx.principals.add(P)
        await _until(lambda: "svc" in sync.view.principals, 2.0)


async def test_sqlite_watcher_wakes_the_sync_long_before_its_poll_on_a_write_by_another_process(
    tmp_path: Path,
) -> None:
    """Issue 18: the watcher sleeps in inotify on the database's log instead of reading the feed every 5 ms;
    with a 30 s poll, another process's change still arrives as soon as it is written, twice in a row."""
    from gateway.store.sqlite import SqliteStore

    store = await SqliteStore.open(tmp_path / "w.db", create=True)
    other = await SqliteStore.open(tmp_path / "w.db")
    sync = _sync(store, time.time, poll_every=30.0)
    try:
        async with _running(sync):
            async with other.transaction() as tx:
                await tx.principals.add(P)
            await _until(lambda: "svc" in sync.view.principals, 20.0)  # the event; the poll would take 30 s
            async with other.transaction() as tx:
                await tx.principals.disable("svc", 9.0)
            await _until(lambda: sync.view.principals["svc"].disabled, 20.0)
            assert sync.notifications >= 2
    finally:
        await other.close()
        await store.close()


async def test_the_sqlite_watcher_sleeps_through_writes_that_append_nothing_to_the_change_feed(
    tmp_path: Path,
) -> None:
    """Issue 18: every commit writes the database's log, so a watcher woken by the log read the feed head after
    every audit group commit (≈ 150 times a second under issuance load). It now sleeps until a change-feed commit
    is announced: another process's audit or meta writes cost it nothing, and an admin change is read once."""
    import sqlite3

    store = await SqliteStore.open(tmp_path / "w.db", create=True)
    other = await SqliteStore.open(tmp_path / "w.db")
    woken: list[None] = []
    watcher = store.listen(lambda: woken.append(None))
    try:
        assert await asyncio.to_thread(watcher.sleeping.wait, 20)
        with sqlite3.connect(tmp_path / "w.db", isolation_level=None) as raw:
            for n in range(20):
                raw.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (f"idle-test-{n}",))
        async with other.transaction():  # a transaction of the store's that appends no change: not announced
            pass
        assert watcher.reads == 0 and not woken
        async with other.transaction() as tx:
            await tx.principals.add(P)
        await _until(lambda: len(woken) == 1, 20.0)
        assert watcher.reads == 1  # read once: the commit was complete when it was announced
        assert await asyncio.to_thread(watcher.sleeping.wait, 20)
        assert watcher.reads == 1
    finally:
        await watcher.close()
        await other.close()
        await store.close()


@contextlib.asynccontextmanager
async def _running(sync: StateSync) -> AsyncIterator[None]:
    """The sync loaded and running (as ``serve`` runs it) for the block; cancelled, and seen to stop, after."""
    await sync.load()
    runner = asyncio.create_task(sync.run())
    try:
        yield
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def _until(done, timeout: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


async def test_postgres_notifications_wake_the_sync_long_before_its_poll_and_survive_a_killed_listener(
    postgres_url: str,
) -> None:
    """LISTEN/NOTIFY accelerates: with a 30 s poll, a change still arrives at once. After the listening
    backend is terminated (pg_terminate_backend) the listener reconnects and the next change arrives too."""
    import asyncpg

    from gateway.store.postgres import PostgresStore

    store = await PostgresStore.open(postgres_url, migrate=True)
    other = await PostgresStore.open(postgres_url)
    sync = _sync(store, time.time, poll_every=30.0)
    try:
        async with _running(sync):
            await _until(lambda: sync.notifications >= 1, 5.0)  # the listener's first wake-up: connected
            async with other.transaction() as tx:
                await tx.principals.add(P)
            await _until(lambda: "svc" in sync.view.principals, 5.0)  # the notification: the poll would take 30 s
            seen = sync.notifications
            admin = await asyncpg.connect(postgres_url)
            try:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
                )
                assert killed == 1
            finally:
                await admin.close()
            await _until(lambda: sync.notifications > seen, 5.0)  # reconnected: every (re)connect wakes the sync
            async with other.transaction() as tx:
                await tx.principals.disable("svc", 9.0)
            await _until(lambda: sync.view.principals["svc"].disabled, 5.0)
    finally:
        await other.close()
        await store.close()


class _Counting:
    """A store's media.get that counts its reads (a database read is what a remembered miss saves)."""

    def __init__(self, held: dict[str, MediaItem]) -> None:
        self.held = held
        self.reads: list[str] = []

    async def __call__(self, media_id: str) -> MediaItem | None:
        self.reads.append(media_id)
        return self.held.get(media_id)


async def test_a_missing_id_is_remembered_like_an_item_and_read_once() -> None:
    load = _Counting({"m1": MEDIA})
    cache = MediaCache(load, capacity=10)
    assert [await cache.get(i) for i in ("m1", "nope", "m1", "nope")] == [MEDIA, None, MEDIA, None]
    assert load.reads == ["m1", "nope"]
    assert (cache.hits, cache.misses) == (2, 2)


async def test_remembered_misses_share_the_items_bound_and_eviction_order() -> None:
    load = _Counting({"m1": MEDIA})
    cache = MediaCache(load, capacity=10)
    await cache.get("m1")
    for index in range(25):  # made-up ids: they push out the oldest entries, the item among them
        assert await cache.get(f"x{index}") is None
    assert len(cache) == 10
    load.reads.clear()
    await cache.get("x24")  # the newest miss is still remembered
    await cache.get("x0")  # the oldest was evicted: read again
    await cache.get("m1")  # the item too, as old as it
    assert load.reads == ["x0", "m1"]


async def test_a_remembered_miss_is_forgotten_when_the_feed_reports_the_id(store: Store, clock: Clock) -> None:
    sync = _sync(store, clock)
    await sync.load()
    assert await sync.media.get("m1") is None  # remembered
    async with store.transaction() as tx:
        await tx.media.put(MEDIA)
    assert await sync.media.get("m1") is None  # still the remembered miss: the feed has not been read
    assert await sync.catch_up() == 1
    assert await sync.media.get("m1") == MEDIA


async def test_a_miss_read_while_the_id_changes_is_not_remembered() -> None:
    cache: MediaCache

    async def load(media_id: str) -> MediaItem | None:
        cache.invalidate(media_id)  # the item is created while its miss is being read
        return None

    cache = MediaCache(load, capacity=10)
    assert await cache.get("m1") is None
    assert len(cache) == 0
