"""PostgreSQL repositories for operations: the webhook outbox, shared rate-limit buckets, detection's memory.

Claims use ``FOR UPDATE SKIP LOCKED``: replicas claiming at the same moment
each get different rows, none waits for another, and a row leased to a
replica stays its own until the lease runs out (a replica that died
mid-delivery leaves its rows to the next claim after that).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gateway.store import rows
from gateway.store.base import Baseline, BucketUse, OutboxEntry, merged
from gateway.store.postgres.repos import Executor, Transactional, _Repo, db_errors


class PgOutbox(_Repo):
    async def enqueue(self, endpoint: str, event_id: str, event: str, payload: str, now: float) -> bool:
        sql = (
            "INSERT INTO webhook_outbox (endpoint, event_id, event, payload, created_at, next_attempt_at) "
            "VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (endpoint, event_id) DO NOTHING"
        )
        return await self._run(sql, endpoint, event_id, event, payload, now) == 1

    async def claim(self, owner: str, now: float, lease: float, limit: int) -> list[OutboxEntry]:
        sql = (
            "UPDATE webhook_outbox SET lease_owner = $1, lease_until = $2 WHERE id IN ("  # noqa: S608 (constant)
            "SELECT id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= $3 "
            "AND (lease_until IS NULL OR lease_until < $3) ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {rows.OUTBOX_COLUMNS}"
        )
        found = await self._all(sql, owner, now + lease, now, limit)
        return sorted((rows.outbox_entry_from(r) for r in found), key=lambda e: e.id)

    async def delivered(self, entry_id: int, owner: str, now: float) -> bool:
        sql = (
            "UPDATE webhook_outbox SET state = 'delivered', delivered_at = $1, attempts = attempts + 1, "
            "lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE id = $2 AND lease_owner = $3"
        )
        return await self._run(sql, now, entry_id, owner) == 1

    async def failed(self, entry_id: int, owner: str, error: str, retry_at: float | None) -> bool:
        sql = (
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1, lease_owner = NULL, "
            "lease_until = NULL, state = $2, next_attempt_at = coalesce($3, next_attempt_at) "
            "WHERE id = $4 AND lease_owner = $5"
        )
        state = "dead" if retry_at is None else "pending"
        return await self._run(sql, error, state, retry_at, entry_id, owner) == 1

    async def revive(self, entry_id: int, now: float) -> bool:
        sql = (
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, lease_owner = NULL, "
            "lease_until = NULL WHERE id = $2 AND state = 'dead'"
        )
        return await self._run(sql, now, entry_id) == 1

    async def entries(self, state: str | None, limit: int) -> list[OutboxEntry]:
        if state:
            sql = f"SELECT {rows.OUTBOX_COLUMNS} FROM webhook_outbox WHERE state = $1 ORDER BY id DESC LIMIT $2"  # noqa: S608
            return [rows.outbox_entry_from(r) for r in await self._all(sql, state, limit)]
        sql = f"SELECT {rows.OUTBOX_COLUMNS} FROM webhook_outbox ORDER BY id DESC LIMIT $1"  # noqa: S608 (constant)
        return [rows.outbox_entry_from(r) for r in await self._all(sql, limit)]

    async def backlog(self) -> int:
        row = await self._one("SELECT count(*) AS n FROM webhook_outbox WHERE state = 'pending'")
        return 0 if row is None else int(row["n"])

    async def cursor(self) -> int | None:
        row = await self._one("SELECT seq FROM webhook_feed WHERE id = 1")
        return None if row is None else int(row["seq"])

    async def set_cursor(self, seq: int) -> None:
        sql = "INSERT INTO webhook_feed (id, seq) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq"
        await self._run(sql, seq)


class PgLimits(_Repo):
    async def reconcile(self, uses: Sequence[BucketUse], now: float) -> dict[str, float]:
        if not uses:
            return {}
        # One statement for every bucket: a new one starts full less the use; an old one refills since
        # updated_at (capped at its burst) less the use. The row lock serialises replicas per bucket.
        sql = (
            "INSERT INTO limit_buckets AS b (bucket, level, updated_at, rate, burst) "
            "SELECT u.bucket, u.burst - u.used, $5, u.rate, u.burst "
            "FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[]) AS u(bucket, rate, burst, used) "
            "ON CONFLICT (bucket) DO UPDATE SET "
            "level = least(excluded.burst, b.level + excluded.rate * greatest(0, excluded.updated_at - b.updated_at)) "
            "- (excluded.burst - excluded.level), "
            "updated_at = greatest(b.updated_at, excluded.updated_at), rate = excluded.rate, burst = excluded.burst "
            "RETURNING bucket, level"
        )
        ordered = sorted(uses, key=lambda u: u.bucket)  # one lock order for every replica: no deadlock
        found = await self._all(
            sql, [u.bucket for u in ordered], [u.rate for u in ordered], [float(u.burst) for u in ordered],
            [u.used for u in ordered], now,
        )  # fmt: skip
        return {r["bucket"]: float(r["level"]) for r in found}

    async def forget_full(self, now: float) -> int:
        sql = "DELETE FROM limit_buckets WHERE level + rate * greatest(0, $1 - updated_at) >= burst"
        return await self._run(sql, now)


class PgWatch(_Repo):
    async def add_issued(self, rows: Sequence[tuple[str, int, str]]) -> None:
        if not rows:
            return
        sql = (
            "INSERT INTO issued_networks (kid, expires_at, network) "
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) ON CONFLICT DO NOTHING"
        )
        with db_errors():
            await self._db.execute(sql, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])

    async def issued_networks(self, kid: str, expires_at: int) -> set[str]:
        sql = "SELECT network FROM issued_networks WHERE kid = $1 AND expires_at = $2"
        return {r["network"] for r in await self._all(sql, kid, expires_at)}

    async def forget_issued(self, expired_before: int) -> int:
        return await self._run("DELETE FROM issued_networks WHERE expires_at < $1", expired_before)

    async def baselines(self) -> list[Baseline]:
        return [rows.baseline_from(r) for r in await self._all("SELECT * FROM usage_baselines ORDER BY principal_id")]

    async def merge_baseline(self, seen: Baseline, max_networks: int) -> Baseline:
        row = await self._one("SELECT * FROM usage_baselines WHERE principal_id = $1 FOR UPDATE", seen.principal_id)
        new = merged(None if row is None else rows.baseline_from(row), seen, max_networks)
        sql = (
            "INSERT INTO usage_baselines (principal_id, networks, hours, first_seen, issuances, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (principal_id) DO UPDATE SET networks = excluded.networks, "
            "hours = excluded.hours, first_seen = excluded.first_seen, issuances = excluded.issuances, "
            "updated_at = excluded.updated_at"
        )
        updated = max(new.networks.values(), default=new.first_seen)
        await self._run(sql, new.principal_id, json.dumps(dict(new.networks), sort_keys=True), new.hours,
                        new.first_seen, new.issuances, updated)  # fmt: skip
        return new


def ops_repos(db: Executor, tx: Transactional | None) -> tuple[PgOutbox, PgLimits, PgWatch]:
    return PgOutbox(db, tx), PgLimits(db, tx), PgWatch(db, tx)
