"""SQLite repositories for operations: the webhook outbox, shared rate-limit buckets, detection's memory.

SQLite has one writer at a time, so a claim is one ``UPDATE … RETURNING``:
whichever process runs it first leases the rows; nobody else can interleave.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from gateway.store import rows
from gateway.store.base import Baseline, BucketUse, OutboxEntry, merged
from gateway.store.sqlite.repos import _Repo, db_errors


class SqliteOutbox(_Repo):
    async def enqueue(self, endpoint: str, event_id: str, event: str, payload: str, now: float) -> bool:
        sql = (
            "INSERT INTO webhook_outbox (endpoint, event_id, event, payload, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint, event_id) DO NOTHING"
        )
        return await self._run(sql, (endpoint, event_id, event, payload, now, now)) == 1

    async def claim(self, owner: str, now: float, lease: float, limit: int) -> list[OutboxEntry]:
        sql = (
            f"UPDATE webhook_outbox SET lease_owner = ?, lease_until = ? WHERE id IN ("  # noqa: S608 (constant)
            "SELECT id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= ? "
            "AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?) "
            f"RETURNING {rows.OUTBOX_COLUMNS}"
        )
        found = await self._all(sql, (owner, now + lease, now, now, limit))
        return sorted((rows.outbox_entry_from(r) for r in found), key=lambda e: e.id)

    async def delivered(self, entry_id: int, owner: str, now: float) -> bool:
        sql = (
            "UPDATE webhook_outbox SET state = 'delivered', delivered_at = ?, attempts = attempts + 1, "
            "lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE id = ? AND lease_owner = ?"
        )
        return await self._run(sql, (now, entry_id, owner)) == 1

    async def failed(self, entry_id: int, owner: str, error: str, retry_at: float | None) -> bool:
        sql = (
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?, lease_owner = NULL, "
            "lease_until = NULL, state = ?, next_attempt_at = coalesce(?, next_attempt_at) "
            "WHERE id = ? AND lease_owner = ?"
        )
        state = "dead" if retry_at is None else "pending"
        return await self._run(sql, (error, state, retry_at, entry_id, owner)) == 1

    async def revive(self, entry_id: int, now: float) -> bool:
        sql = (
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE id = ? AND state = 'dead'"
        )
        return await self._run(sql, (now, entry_id)) == 1

    async def entries(self, state: str | None, limit: int) -> list[OutboxEntry]:
        where, params = ("WHERE state = ?", (state, limit)) if state else ("", (limit,))
        sql = f"SELECT {rows.OUTBOX_COLUMNS} FROM webhook_outbox {where} ORDER BY id DESC LIMIT ?"  # noqa: S608 (constant)
        return [rows.outbox_entry_from(r) for r in await self._all(sql, params)]

    async def backlog(self) -> int:
        row = await self._one("SELECT count(*) AS n FROM webhook_outbox WHERE state = 'pending'")
        return 0 if row is None else int(row["n"])

    async def cursor(self) -> int | None:
        row = await self._one("SELECT seq FROM webhook_feed WHERE id = 1")
        return None if row is None else int(row["seq"])

    async def set_cursor(self, seq: int) -> None:
        await self._run("INSERT OR REPLACE INTO webhook_feed (id, seq) VALUES (1, ?)", (seq,))


class SqliteLimits(_Repo):
    async def reconcile(self, uses: Sequence[BucketUse], now: float) -> dict[str, float]:
        # A new bucket starts full, less the use; an old one refills since updated_at, capped at its burst.
        sql = (
            "INSERT INTO limit_buckets (bucket, level, updated_at, rate, burst) VALUES (?, ? - ?, ?, ?, ?) "
            "ON CONFLICT (bucket) DO UPDATE SET level = min(excluded.burst, limit_buckets.level + "
            "excluded.rate * max(0, excluded.updated_at - limit_buckets.updated_at)) - ?, "
            "updated_at = max(limit_buckets.updated_at, excluded.updated_at), rate = excluded.rate, "
            "burst = excluded.burst RETURNING bucket, level"
        )
        levels: dict[str, float] = {}
        for use in uses:
            row = await self._one(sql, (use.bucket, use.burst, use.used, now, use.rate, use.burst, use.used))
            if row is not None:
                levels[row["bucket"]] = float(row["level"])
        return levels

    async def forget_full(self, now: float) -> int:
        sql = "DELETE FROM limit_buckets WHERE level + rate * max(0, ? - updated_at) >= burst"
        return await self._run(sql, (now,))


class SqliteWatch(_Repo):
    async def add_issued(self, rows: Sequence[tuple[str, int, str]]) -> None:
        sql = "INSERT OR IGNORE INTO issued_networks (kid, expires_at, network) VALUES (?, ?, ?)"
        await self._many(sql, rows)

    async def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        with db_errors():
            await self._conn.executemany(sql, rows)

    async def issued_networks(self, kid: str, expires_at: int) -> set[str]:
        sql = "SELECT network FROM issued_networks WHERE kid = ? AND expires_at = ?"
        return {r["network"] for r in await self._all(sql, (kid, expires_at))}

    async def forget_issued(self, expired_before: int) -> int:
        return await self._run("DELETE FROM issued_networks WHERE expires_at < ?", (expired_before,))

    async def baselines(self) -> list[Baseline]:
        return [rows.baseline_from(r) for r in await self._all("SELECT * FROM usage_baselines ORDER BY principal_id")]

    async def merge_baseline(self, seen: Baseline, max_networks: int) -> Baseline:
        row = await self._one("SELECT * FROM usage_baselines WHERE principal_id = ?", (seen.principal_id,))
        new = merged(None if row is None else rows.baseline_from(row), seen, max_networks)
        sql = (
            "INSERT OR REPLACE INTO usage_baselines (principal_id, networks, hours, first_seen, issuances, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        updated = max(new.networks.values(), default=new.first_seen)
        networks = json.dumps(dict(new.networks), sort_keys=True)
        await self._run(sql, (new.principal_id, networks, new.hours, new.first_seen, new.issuances, updated))
        return new


def ops_repos(conn: aiosqlite.Connection, in_transaction: bool) -> tuple[SqliteOutbox, SqliteLimits, SqliteWatch]:
    return SqliteOutbox(conn, in_transaction), SqliteLimits(conn, in_transaction), SqliteWatch(conn, in_transaction)
