"""Contract tests for the operations repositories (outbox, limits, watch), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time

from gateway.store.base import Baseline, BucketUse, Store

T = 1_800_000_000.0


async def _enqueue(store: Store, *events: str, endpoint: str = "backend", now: float = T) -> None:
    async with store.transaction() as tx:
        for event_id in events:
            await tx.outbox.enqueue(endpoint, event_id, "key.revoked", json.dumps({"id": event_id}), now)


async def _claim(store: Store, owner: str, now: float, lease: float = 60, limit: int = 10) -> list[str]:
    async with store.transaction() as tx:
        return [e.event_id for e in await tx.outbox.claim(owner, now, lease, limit)]


async def test_enqueue_is_idempotent_per_endpoint_and_event(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.outbox.enqueue("backend", "evt_1", "key.revoked", "{}", T) is True
        assert await tx.outbox.enqueue("backend", "evt_1", "key.revoked", "{}", T) is False
        assert await tx.outbox.enqueue("pager", "evt_1", "key.revoked", "{}", T) is True
    assert await store.outbox.backlog() == 2
    [entry] = await store.outbox.entries(None, 1)  # newest first
    assert (entry.endpoint, entry.event_id, entry.attempts, entry.state) == ("pager", "evt_1", 0, "pending")


async def test_a_claim_leases_rows_to_one_owner_until_the_lease_ends(store: Store) -> None:
    await _enqueue(store, "evt_1", "evt_2", "evt_3")
    assert await _claim(store, "a", T, lease=60, limit=2) == ["evt_1", "evt_2"]
    assert await _claim(store, "b", T + 1) == ["evt_3"]  # a's rows are not b's
    assert await _claim(store, "b", T + 2) == []
    assert await _claim(store, "b", T + 61) == ["evt_1", "evt_2"]  # a died: its lease ran out


async def test_delivered_and_failed_need_the_lease(store: Store) -> None:
    await _enqueue(store, "evt_1", "evt_2")
    async with store.transaction() as tx:
        first, second = await tx.outbox.claim("a", T, 60, 10)
        assert await tx.outbox.delivered(first.id, "b", T) is False  # not b's
        assert await tx.outbox.delivered(first.id, "a", T + 1) is True
        assert await tx.outbox.failed(second.id, "a", "HTTP 500", T + 30) is True
        assert await tx.outbox.failed(second.id, "a", "again", T + 40) is False  # lease released
    delivered, failed = sorted(await store.outbox.entries(None, 10), key=lambda e: e.id)
    assert (delivered.state, delivered.attempts, delivered.delivered_at) == ("delivered", 1, T + 1)
    assert (failed.state, failed.attempts, failed.last_error) == ("pending", 1, "HTTP 500")
    assert failed.next_attempt_at == T + 30
    assert await _claim(store, "b", T + 29) == []  # not due yet
    assert await _claim(store, "b", T + 30) == ["evt_2"]
    assert await store.outbox.backlog() == 1


async def test_giving_up_makes_an_entry_dead_until_revived(store: Store) -> None:
    await _enqueue(store, "evt_1")
    async with store.transaction() as tx:
        [entry] = await tx.outbox.claim("a", T, 60, 10)
        assert await tx.outbox.failed(entry.id, "a", "timeout", None) is True
    assert [e.state for e in await store.outbox.entries("dead", 10)] == ["dead"]
    assert await _claim(store, "a", T + 10_000) == []
    async with store.transaction() as tx:
        assert await tx.outbox.revive(entry.id, T + 100) is True
        assert await tx.outbox.revive(entry.id, T + 100) is False  # pending now, not dead
    [revived] = await store.outbox.entries("pending", 10)
    assert (revived.attempts, revived.next_attempt_at) == (0, T + 100)


async def test_concurrent_claims_never_share_a_row(store: Store) -> None:
    await _enqueue(store, *(f"evt_{i}" for i in range(40)))
    claims = await asyncio.gather(*(_claim(store, f"r{i}", T, limit=7) for i in range(8)))
    taken = [event for claim in claims for event in claim]
    assert sorted(taken) == sorted(f"evt_{i}" for i in range(40))  # every row once, none twice


async def test_feed_cursor(store: Store) -> None:
    assert await store.outbox.cursor() is None
    async with store.transaction() as tx:
        await tx.outbox.set_cursor(41)
        await tx.outbox.set_cursor(42)
    assert await store.outbox.cursor() == 42


async def test_buckets_refill_at_their_rate_and_carry_debt(store: Store) -> None:
    async with store.transaction() as tx:
        # a bucket never seen starts full (10), less the use
        assert await tx.limits.reconcile([BucketUse("p:web", 2.0, 10, 4.0)], T) == {"p:web": 6.0}
        # 1 s later: +2 refill, -3 use; two replicas' uses arrive one after the other
        assert await tx.limits.reconcile([BucketUse("p:web", 2.0, 10, 3.0)], T + 1) == {"p:web": 5.0}
        assert await tx.limits.reconcile([BucketUse("p:web", 2.0, 10, 9.0)], T + 1) == {"p:web": -4.0}
        # refill is capped at the burst, and counted from the newest report (a late clock adds nothing)
        assert await tx.limits.reconcile([BucketUse("p:web", 2.0, 10, 0.0)], T + 0.5) == {"p:web": -4.0}
        assert await tx.limits.reconcile([BucketUse("p:web", 2.0, 10, 0.0)], T + 100) == {"p:web": 10.0}


async def test_many_buckets_in_one_reconcile_and_full_ones_forgotten(store: Store) -> None:
    uses = [BucketUse("k:a", 1.0, 5, 5.0), BucketUse("k:b", 1.0, 5, 1.0), BucketUse("n:10.0.0.0/24", 1.0, 5, 0.0)]
    async with store.transaction() as tx:
        assert await tx.limits.reconcile(uses, T) == {"k:a": 0.0, "k:b": 4.0, "n:10.0.0.0/24": 5.0}
        assert await tx.limits.reconcile([], T) == {}
        assert await tx.limits.forget_full(T + 1) == 2  # k:b (4 + 1) and the untouched network
        assert await tx.limits.reconcile([BucketUse("k:a", 1.0, 5, 0.0)], T + 1) == {"k:a": 1.0}  # kept


async def test_issued_networks_are_shared_and_forgotten_after_expiry(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.watch.add_issued([("gwk_a", 100, "10.0.0.0/24"), ("gwk_a", 100, "10.0.1.0/24")])
        await tx.watch.add_issued([("gwk_a", 100, "10.0.0.0/24"), ("gwk_a", 200, "2001:db8::/48")])
        await tx.watch.add_issued([])
    assert await store.watch.issued_networks("gwk_a", 100) == {"10.0.0.0/24", "10.0.1.0/24"}
    assert await store.watch.issued_networks("gwk_b", 100) == set()
    async with store.transaction() as tx:
        assert await tx.watch.forget_issued(150) == 2
    assert await store.watch.issued_networks("gwk_a", 100) == set()
    assert await store.watch.issued_networks("gwk_a", 200) == {"2001:db8::/48"}


async def test_baselines_merge_what_each_replica_saw(store: Store) -> None:
    one = Baseline("alice", {"10.0.0.0/24": T}, 1 << 9, T, 5)
    two = Baseline("alice", {"10.0.0.0/24": T + 50, "10.9.0.0/24": T + 60}, 1 << 10, T - 100, 2)
    async with store.transaction() as tx:
        await tx.watch.merge_baseline(one, 16)
        merged = await tx.watch.merge_baseline(two, 16)
    assert merged == Baseline("alice", {"10.0.0.0/24": T + 50, "10.9.0.0/24": T + 60}, (1 << 9) | (1 << 10), T - 100, 7)
    assert await store.watch.baselines() == [merged]
    async with store.transaction() as tx:  # past the bound, the network seen longest ago goes
        kept = await tx.watch.merge_baseline(Baseline("alice", {"10.7.0.0/24": T + 70}, 0, T, 1), 2)
    assert dict(kept.networks) == {"10.9.0.0/24": T + 60, "10.7.0.0/24": T + 70}


async def test_database_time_is_near_ours(store: Store) -> None:
    assert abs(await store.database_time() - time.time()) < 5
