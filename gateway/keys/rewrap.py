"""Moving every sealed secret to one master key (``gatewayctl master-key rewrap``), and counting them.

Secrets sealed under a master key live in three places: each signing key's
private half, each viewer's personal-data key (subject keys) and the audit
log's pseudonym pepper. ``Rewrap`` opens every one not yet under the target
master with the master that sealed it and seals it again under the target.

Without downtime: it works in batches, each one short transaction with its
own ``master_key:rewrapped`` audit record; a row is replaced only if it still
holds what was read, so a subject erased meanwhile stays erased; and running
processes open old and new envelopes alike (``gateway.keys.masters``). A
secret another process seals under its own master meanwhile is left for the
next run: ``census`` shows what is still where.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from gateway.audit import records as audit
from gateway.audit.log import _PEPPER_CONTEXT, AuditLog, subject_key_context  # the contexts the audit log seals under
from gateway.audit.records import AuditEvent, RequestContext
from gateway.keys.keyring import seal_context
from gateway.keys.masters import MasterKeys
from gateway.keys.sealing import MasterKey, sealed_by
from gateway.store.base import Repos, Store

BATCH = 500


@dataclass
class Census:
    """How many sealed secrets each master key holds, by where they are."""

    signing_keys: Counter[str] = field(default_factory=Counter)
    subject_keys: Counter[str] = field(default_factory=Counter)
    pepper: str | None = None

    def masters(self) -> set[str]:
        return set(self.signing_keys) | set(self.subject_keys) | ({self.pepper} if self.pepper else set())

    def outside(self, key_id: str) -> int:
        """How many secrets are not sealed under ``key_id``."""
        others = self.signing_keys + self.subject_keys + Counter([self.pepper] if self.pepper else [])
        return sum(n for master, n in others.items() if master != key_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "signing_keys": dict(self.signing_keys),
            "subject_keys": dict(self.subject_keys),
            "pepper": self.pepper,
        }


async def census(store: Store) -> Census:
    found = Census(Counter(sealed_by(k.sealed_private) for k in await store.keys.all()))
    async for _, sealed in _subject_keys(store):
        found.subject_keys[sealed_by(sealed)] += 1
    pepper = await store.subjects.sealed_pepper()
    found.pepper = sealed_by(pepper) if pepper is not None else None
    return found


async def _subject_keys(repos: Repos, after: str = "") -> AsyncIterator[tuple[str, bytes]]:
    while rows := await repos.subjects.sealed_keys(after, BATCH):
        for row in rows:
            yield row
        after = rows[-1][0]


@dataclass
class Moved:
    """What one run (or one batch) re-sealed, and which masters it came from."""

    signing_keys: int = 0
    subject_keys: int = 0
    pepper: int = 0
    sources: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.signing_keys + self.subject_keys + self.pepper

    def add(self, other: Moved) -> None:
        self.signing_keys += other.signing_keys
        self.subject_keys += other.subject_keys
        self.pepper += other.pepper
        self.sources.update(other.sources)

    def count(self, kind: str, sealed: bytes) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.sources[sealed_by(sealed)] += 1


class Rewrap:
    def __init__(self, store: Store, log: AuditLog, masters: MasterKeys, target: MasterKey) -> None:
        self._store = store
        self._log = log
        self._masters = masters
        self._target = target

    async def run(self, ctx: RequestContext, now: float, batch: int = BATCH) -> Moved:
        # Find every source master first: a KMS call never runs inside a write transaction.
        for master in (await census(self._store)).masters() - {self._target.key_id}:
            await self._masters.opener(master)
        async with self._store.transaction() as tx:
            moved = await self._keys_and_pepper(tx)
            await self._record(tx, ctx, now, "signing keys and pepper", moved)
        after = ""
        while True:
            part, after = await self._subject_batch(ctx, now, after, batch)
            moved.add(part)
            if not after:
                return moved

    async def _keys_and_pepper(self, tx: Repos) -> Moved:
        moved = Moved()
        for key in await tx.keys.all():
            new = await self._reseal(key.sealed_private, seal_context(key.kid))
            if new is not None and await tx.keys.reseal(key.kid, key.sealed_private, new):
                moved.count("signing_keys", key.sealed_private)
        pepper = await tx.subjects.sealed_pepper()
        new = await self._reseal(pepper, _PEPPER_CONTEXT) if pepper is not None else None
        if pepper is not None and new is not None and await tx.subjects.reseal_pepper(pepper, new):
            moved.count("pepper", pepper)
        return moved

    async def _subject_batch(self, ctx: RequestContext, now: float, after: str, batch: int) -> tuple[Moved, str]:
        """One batch of subject keys in its own transaction; the ref to continue after ('' when done)."""
        async with self._store.transaction() as tx:
            rows = await tx.subjects.sealed_keys(after, batch)
            moved = Moved()
            for ref, sealed in rows:
                new = await self._reseal(sealed, subject_key_context(ref))
                if new is not None and await tx.subjects.reseal_key(ref, sealed, new):
                    moved.count("subject_keys", sealed)
            await self._record(tx, ctx, now, "subject keys", moved)
        return moved, (rows[-1][0] if len(rows) == batch else "")

    async def _reseal(self, sealed: bytes, context: bytes) -> bytes | None:
        """``sealed`` under the target master, or None when it already is."""
        if sealed_by(sealed) == self._target.key_id:
            return None
        return await self._target.seal(await self._masters.unseal(sealed, context), context)

    async def _record(self, tx: Repos, ctx: RequestContext, now: float, part: str, moved: Moved) -> None:
        if not moved.total:
            return
        detail = {
            "part": part,
            "to": self._target.key_id,
            "from": dict(moved.sources),
            "count": moved.total,
        }
        record = audit.change(ctx, AuditEvent.MASTER_KEY_REWRAPPED, now=now, detail=detail)
        await self._log.append(tx, [record], now)
