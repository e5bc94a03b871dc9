"""Storage: interfaces in ``base``, one subpackage per implementation (``sqlite``, ``postgres``)."""

from __future__ import annotations

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.store.base import Store

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


def is_postgres(config: Config) -> bool:
    return config.database_url.startswith(_POSTGRES)


async def open_store(config: Config, *, create: bool = False, migrate: bool = False) -> Store:
    """The configured store. Only ``gatewayctl init`` passes ``create`` (a mistyped database.url must stop
    start-up naming the path, not quietly start a new, empty database) and only ``gatewayctl migrate``
    (and ``init``) ``migrate``: a server refuses a schema that is behind its code."""
    url = config.database_url
    if not url or url.startswith(_SQLITE):
        from gateway.store.sqlite import SqliteStore

        return await SqliteStore.open(config.sqlite_path, create=create, migrate=migrate)
    if url.startswith(_POSTGRES):
        from gateway.store.postgres import PostgresStore

        return await PostgresStore.open(url, migrate=create or migrate)
    if url.startswith("sqlite:"):
        raise ConfigError(
            f"database.url {url!r} is not a SQLite URL: use sqlite:///relative/to/working-dir.db "
            "or sqlite:////absolute/path.db"
        )
    raise ConfigError(f"database.url: unsupported database {url.split(':', 1)[0]!r} (sqlite:/// or postgresql://)")
