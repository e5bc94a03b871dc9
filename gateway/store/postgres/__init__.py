"""PostgreSQL store: many gateway replicas on one database.

asyncpg (not psycopg 3): it is asyncio-native with its own pool, speaks the
binary protocol (the audit hot path's COPY and bytea columns cost little),
and its ``add_listener`` delivers ``NOTIFY`` on a plain connection without
holding a lock across awaits (psycopg's ``notifies()`` holds the connection
lock while iterating). The listener uses its own connection, outside the
pool: a pool resets released connections with ``UNLISTEN *``.

Every write runs in ``transaction()``; a transaction that changed anything
the change feed tracks sends one ``NOTIFY gateway_changes`` at commit, which
PostgreSQL delivers only if it commits. Audit appends from every replica are
ordered by one row lock on the Merkle frontier (``audit_head``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from gateway import redact
from gateway.audit.merkle import Frontier
from gateway.audit.records import AuditRecord
from gateway.errors import ConfigError, StoreUnavailable
from gateway.store import rows
from gateway.store.base import Listening, LogEntry, RawEntry, Repos
from gateway.store.postgres.repos import DRIVER_ERRORS, PgRepos, Transactional, db_errors
from gateway.store.postgres.schema import MIGRATIONS

log = logging.getLogger("gateway.store")
CHANNEL = "gateway_changes"
SCHEMA_VERSION = MIGRATIONS[-1].version
_MIGRATION_LOCK = 0x6777_6D69  # advisory lock id: one replica migrates at a time
_CONNECT_TIMEOUT = 5.0
# A statement the database does not answer in this time fails (StoreUnavailable, AuditUnavailable: a 503)
# rather than holding its request, the state sync and the shutdown forever behind a silent network.
# Migrations run without it: a large table can take longer, and nothing waits on them.
_COMMAND_TIMEOUT = 5.0


class PostgresStore:
    """Build it with ``await PostgresStore.open(url)``."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self.applied_migrations: list[int] = []  # by open(): for 'gatewayctl migrate' to report
        self.on_appended: Callable[[Sequence[LogEntry]], None] | None = None
        read = PgRepos(pool)
        self.principals = read.principals
        self.keys = read.keys
        self.media = read.media
        self.grants = read.grants
        self.audit = read.audit
        self.subjects = read.subjects
        self.changes = read.changes
        self.outbox = read.outbox
        self.limits = read.limits
        self.watch = read.watch

    @classmethod
    async def open(cls, dsn: str, *, migrate: bool = False) -> PostgresStore:
        """Connect; refuse a schema that is behind (``gatewayctl migrate``) or ahead of this gateway."""
        with db_errors(), _connect_errors(dsn):
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=10, timeout=_CONNECT_TIMEOUT,
                command_timeout=None if migrate else _COMMAND_TIMEOUT,
            )  # fmt: skip
        store = cls(pool, dsn)
        try:
            if migrate:
                store.applied_migrations = await store.migrate()
            await store._check_version()
        except BaseException:
            await pool.close()
            raise
        return store

    async def schema_version(self) -> int:
        with db_errors():
            async with self._pool.acquire() as conn:
                exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
                if not exists:
                    return 0
                return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def _check_version(self) -> None:
        found = await self.schema_version()
        if found < SCHEMA_VERSION:
            raise StoreUnavailable(
                f"database schema v{found} is behind this gateway's v{SCHEMA_VERSION}: run 'gatewayctl migrate'"
            )
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(f"database schema v{found} is newer than this gateway's v{SCHEMA_VERSION}")

    async def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction; returns the versions applied."""
        applied: list[int] = []
        with db_errors():
            async with self._pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
                try:
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations "
                        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    current = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
                    for migration in MIGRATIONS:
                        if migration.version > current:
                            async with conn.transaction():
                                await conn.execute(migration.sql)
                                if migration.step is not None:
                                    await migration.step(conn)
                                await conn.execute(
                                    "INSERT INTO schema_migrations (version) VALUES ($1)", migration.version
                                )
                            applied.append(migration.version)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        return applied

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repos]:
        with db_errors():
            conn = await self._pool.acquire()
        try:
            tx = conn.transaction()
            with db_errors():
                await tx.start()
            state = Transactional()
            try:
                yield PgRepos(conn, state)
                with db_errors(audit=state.appended):
                    if state.changed:
                        await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
                    await tx.commit()
            except BaseException:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await tx.rollback()
                raise
        finally:
            with contextlib.suppress(*DRIVER_ERRORS):
                await self._pool.release(conn)

    async def append_audit_group(
        self, records: Sequence[AuditRecord], raw: Sequence[RawEntry], touches: Sequence[str], at: float
    ) -> list[int]:
        prepared = rows.prepare_rows(records)  # the JSON work, before the row lock is taken
        templates = rows.url_templates(records)
        with db_errors(audit=True):
            async with self._pool.acquire() as conn, conn.transaction():
                found = await conn.fetchval("SELECT frontier FROM audit_head WHERE id = 1 FOR UPDATE")
                frontier = Frontier.from_bytes(bytes(found)) if found is not None else Frontier()
                values, seqs = rows.positioned_rows(frontier, prepared)
                await conn.copy_records_to_table("audit", records=values, columns=rows.AUDIT_INSERT_COLUMNS)
                urls = rows.url_rows(templates, seqs)
                if urls:
                    await conn.copy_records_to_table("audit_urls", records=urls, columns=rows.AUDIT_URL_COLUMNS)
                if raw:
                    await conn.copy_records_to_table("raw_log", records=rows.raw_values(raw), columns=rows.RAW_COLUMNS)
                if touches:
                    await conn.execute("UPDATE keys SET last_used_at = $1 WHERE kid = ANY($2::text[])", at, touches)
                await conn.execute("UPDATE audit_head SET frontier = $1 WHERE id = 1", frontier.to_bytes())
        if self.on_appended is not None:
            self.on_appended(rows.log_entries(records, values))
        return seqs

    def listen(self, wake: Callable[[], None]) -> Listening:
        return _Listener(self._dsn, wake)

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Hold a database-wide lock named ``name`` while it is free: True if this process got it."""
        with db_errors():
            conn = await self._pool.acquire()
        key = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "big", signed=True)
        try:
            with db_errors():
                got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            try:
                yield got
            finally:
                if got:
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await conn.execute("SELECT pg_advisory_unlock($1)", key)
        finally:
            with contextlib.suppress(*DRIVER_ERRORS):
                await self._pool.release(conn)

    async def ping(self) -> None:
        with db_errors():
            await self._pool.fetchval("SELECT 1")

    async def database_time(self) -> float:
        with db_errors():
            return float(await self._pool.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8"))

    async def close(self) -> None:
        await self._pool.close()


def server_of(dsn: str) -> str:
    """Where ``dsn`` points, as written (``host:port``), never its user information."""
    rest = dsn.partition("://")[2]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return rest[:end].rpartition("@")[2] or "the local server (no host in database.url)"


@contextlib.contextmanager
def _connect_errors(dsn: str) -> Iterator[None]:
    """Connecting: an unreachable server in words, a URL that cannot be read without quoting it."""
    where = server_of(dsn)
    try:
        yield
    except ConnectionRefusedError:
        raise StoreUnavailable(
            f"cannot reach PostgreSQL at {where}: connection refused (is it running there, and does "
            "database.url name the right host and port?)"
        ) from None
    except socket.gaierror:
        raise StoreUnavailable(
            f"cannot reach PostgreSQL at {where}: the host name does not resolve (check the host in database.url)"
        ) from None
    except TimeoutError:
        raise StoreUnavailable(
            f"cannot reach PostgreSQL at {where}: no answer within {_CONNECT_TIMEOUT:g} s (is the host right, "
            "and does a firewall let this host through?)"
        ) from None
    except OSError as exc:
        why = exc.strerror or redact.text(str(exc)) or type(exc).__name__
        raise StoreUnavailable(f"cannot reach PostgreSQL at {where}: {why}") from None
    except (ValueError, asyncpg.ClientConfigurationError):  # their messages may quote the URL: not repeated
        raise ConfigError(
            "database.url cannot be read as a PostgreSQL URL (postgresql://HOST:PORT/DATABASE, with USER:PASSWORD@ "
            "before HOST): percent-encode any @ / ? # : % in the password"
        ) from None


class _Listener:
    """LISTEN on a dedicated connection, reconnecting when it drops; every (re)connect also wakes the sync.

    Only an accelerator: the sync loop polls the feed head regardless, so a
    listener that is down (or silently dead) costs latency, never correctness.
    """

    def __init__(self, dsn: str, wake: Callable[[], None]) -> None:
        self._dsn = dsn
        self._wake = wake
        self._lost = asyncio.Event()
        self._task = asyncio.create_task(self._run())
        self.pid: int | None = None

    async def _run(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=_CONNECT_TIMEOUT)
                self._lost.clear()
                conn.add_termination_listener(lambda _conn: self._lost.set())
                await conn.add_listener(CHANNEL, lambda *_: self._wake())
                self.pid = conn.get_server_pid()
                self._wake()  # changes made while not listening: catch up now
                await self._lost.wait()
            except DRIVER_ERRORS as exc:
                log.warning("change listener down (polling continues): %s", exc)
            finally:
                self.pid = None
                if conn is not None:
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await conn.close(timeout=1)
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
