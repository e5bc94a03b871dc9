"""What every administrative change needs: the store, the master key, the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from gateway.audit.log import AuditLog
from gateway.errors import NotFound
from gateway.keys.sealing import MasterKey
from gateway.model import (
    Principal,
)
from gateway.store.base import Repos, Store


async def require_principal(repos: Repos, principal_id: str) -> Principal:
    principal = await repos.principals.get(principal_id)
    if principal is None:
        raise NotFound(f"no principal {principal_id!r}")
    return principal


class AdminBase:
    def __init__(
        self,
        store: Store,
        master_key: MasterKey,
        audit_log: AuditLog,
        after_change: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._store = store
        self._master_key = master_key
        self._log = audit_log
        self._after_change = after_change

    @asynccontextmanager
    async def _changing(self) -> AsyncIterator[Repos]:
        """A write transaction; once it commits, this process's own state view applies it."""
        async with self._store.transaction() as tx:
            yield tx
        if self._after_change is not None:
            await self._after_change()
