"""Storage: interfaces in ``base``, one module per implementation."""

from __future__ import annotations

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.store.base import Store


async def open_store(config: Config) -> Store:
    url = config.database_url
    if not url or url.startswith("sqlite:///"):
        from gateway.store.sqlite import SqliteStore

        return await SqliteStore.open(config.sqlite_path)
    raise ConfigError(f"database.url: unsupported database {url.split(':', 1)[0]!r}")
