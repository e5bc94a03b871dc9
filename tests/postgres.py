"""A throwaway PostgreSQL database for the tests: the machine's server, one fresh database per run.

``GATEWAY_TEST_POSTGRES`` names the server (default the local one, trust
auth); the tests create ``gw_test_<pid>_<random>`` on it, reset its schema per
test and drop it at the end. Missing server: skip, or fail under
``GATEWAY_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import asyncpg

SERVER = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def database_url(name: str) -> str:
    parts = urlsplit(SERVER)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin_async(sql: str) -> None:
    conn = await asyncpg.connect(SERVER, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(sql: str) -> None:
    """Run on a thread of its own: a fixture may be set up from inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(sql)).result()


def create_database() -> str | None:
    """A new empty database's URL, or None when the server cannot be reached."""
    name = f"gw_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    return database_url(name)


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_schema(url: str) -> None:
    """Empty the database: everything the gateway created goes, migrations start from nothing."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
