"""The audit log service: pseudonymous viewers, per-subject keys, and group commit.

``AuditLog`` turns records into their stored form (viewer subjects replaced by
a keyed pseudonym, personal fields sealed under the subject's own key) inside
the caller's transaction. ``AuditBatcher`` gives issuance and redemption
group commit: every request waiting while a commit is in flight joins the next
transaction, so one durable write (fsync) covers many requests and none of
them is answered before its record is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.audit import privacy
from gateway.audit.records import AuditRecord
from gateway.errors import AuditUnavailable, GatewayError, StoreUnavailable
from gateway.keys.sealing import MasterKey
from gateway.store.base import RawEntry, Repos, Store

log = logging.getLogger("gateway.audit")
_PEPPER_CONTEXT = b"gateway-audit-pepper"
_MAX_JOIN_TURNS = 12
_REFS = 100_000  # subjects whose pseudonym is remembered (one HMAC per record otherwise, twice per issuance)


def subject_key_context(ref: str) -> bytes:
    return f"gateway-subject-key:{ref}".encode()


class AuditLog:
    def __init__(self, store: Store, master_key: MasterKey, pepper: bytes) -> None:
        self._store = store
        self._master_key = master_key
        self._pepper = pepper
        # Each subject's cipher, built once (a new AES-GCM object per record was most of sealing's cost).
        self._keys: dict[str, AESGCM] = {}
        self._refs: dict[str, str] = {}

    @classmethod
    async def open(cls, store: Store, master_key: MasterKey) -> AuditLog:
        sealed = await store.subjects.sealed_pepper()
        if sealed is None:
            if await store.subjects.sealed_keys("", 1) or await store.subjects.unkeyed(1):
                # A new pepper would give every viewer a new pseudonym: their records unfindable, unexportable,
                # never erased, and audit verify none the wiser. The one held is missing: fail, don't replace it.
                raise StoreUnavailable(
                    "the audit log's pepper (meta row audit_pepper) is missing while viewers' audit records exist: "
                    "restore it from a backup (a new one would hide every viewer's records from export and erasure)"
                )
            import secrets

            sealed = await master_key.seal(secrets.token_bytes(32), _PEPPER_CONTEXT)
            async with store.transaction() as tx:
                await tx.subjects.set_sealed_pepper(sealed)
            sealed = await store.subjects.sealed_pepper() or sealed
        return cls(store, master_key, await master_key.unseal(sealed, _PEPPER_CONTEXT))

    def ref(self, subject: str) -> str:
        ref = self._refs.get(subject)
        if ref is None:
            if len(self._refs) >= _REFS:
                self._refs.clear()  # bounded; recomputing is cheap, only not per record
            ref = self._refs[subject] = privacy.subject_ref(self._pepper, subject)
        return ref

    async def is_erased(self, subject: str) -> bool:
        ref = self.ref(subject)
        erased = await self._store.subjects.is_erased(ref)
        if erased:
            self._keys.pop(ref, None)
        return erased

    async def _key_for_writing(self, repos: Repos, ref: str, now: float) -> AESGCM:
        aead = self._keys.get(ref)
        if aead is None:
            key, created = await self._load_or_create_key(repos, ref, now)
            aead = privacy.cipher(key)
            if not created:
                # A key created inside the caller's transaction is cached only once read back
                # committed: if that transaction rolls back, nothing may stay sealed under it.
                self._keys[ref] = aead
        return aead

    async def _load_or_create_key(self, repos: Repos, ref: str, now: float) -> tuple[bytes, bool]:
        sealed = await repos.subjects.sealed_key(ref)
        if sealed is not None:
            return await self._master_key.unseal(sealed, subject_key_context(ref)), False
        key = privacy.new_subject_key()
        await repos.subjects.add_key(ref, await self._master_key.seal(key, subject_key_context(ref)), now)
        return key, True

    async def prepare(self, repos: Repos, records: Sequence[AuditRecord], now: float) -> list[AuditRecord]:
        sealing = [privacy.needs_protection(record) for record in records]
        fresh = iter(privacy.nonces(sum(sealing)))  # one CSPRNG read for the group's nonces
        prepared: list[AuditRecord] = []
        for record, seals in zip(records, sealing, strict=True):
            if seals:
                assert record.subject is not None
                ref = self.ref(record.subject)
                aead = self._keys.get(ref) or await self._key_for_writing(repos, ref, now)
                record = privacy.protect(record, ref, aead, next(fresh))
            elif privacy.needs_pseudonym(record):
                assert record.subject is not None
                record = record.evolve(subject=self.ref(record.subject))
            prepared.append(record)
        return prepared

    async def prepare_standalone(self, records: Sequence[AuditRecord], now: float) -> list[AuditRecord]:
        """Like ``prepare``, outside any transaction: a missing subject key is created in one of its own."""
        for record in records:
            if privacy.needs_protection(record) and record.subject:
                ref = self.ref(record.subject)
                if ref not in self._keys:
                    await self._create_key_standalone(ref, now)
        return await self.prepare(self._store, records, now)

    async def _create_key_standalone(self, ref: str, now: float) -> None:
        # Read and create under the write lock: another process may create the same subject's key.
        async with self._store.transaction() as tx:
            key, _ = await self._load_or_create_key(tx, ref, now)
        self._keys[ref] = privacy.cipher(key)

    async def append(self, repos: Repos, records: Sequence[AuditRecord], now: float) -> list[int]:
        return await repos.audit.append(await self.prepare(repos, records, now))

    async def reveal(self, record: AuditRecord) -> dict[str, Any] | None:
        """Personal fields of a stored record, read fresh (a shredded key stays shredded)."""
        if record.personal is None or record.subject is None:
            return None
        sealed = await self._store.subjects.sealed_key(record.subject)
        if sealed is None:
            return None
        return privacy.reveal(record, await self._master_key.unseal(sealed, subject_key_context(record.subject)))

    async def key_opens(self, ref: str, personal: bytes, sealed: bytes) -> bool:
        """Whether ``sealed`` (subject ``ref``'s stored key) opens ``personal`` (fields sealed for them): for
        ``audit verify``."""
        try:
            key = await self._master_key.unseal(sealed, subject_key_context(ref))
        except StoreUnavailable:  # not sealed by a master key held here, or not for this subject: it opens nothing
            return False
        return privacy.unseal(personal, ref, key) is not None

    def forget(self, ref: str) -> None:
        self._keys.pop(ref, None)


def _ignore(records: list[AuditRecord], seconds: float) -> None:
    pass


@dataclass
class Pending:
    records: list[AuditRecord]
    now: float
    raw: list[RawEntry] = field(default_factory=list)
    touches: list[str] = field(default_factory=list)


def _fail(taken: list[tuple[Pending, asyncio.Future[list[int]]]]) -> None:
    error = AuditUnavailable("the audit log is unavailable: nothing was issued")
    for _, future in taken:
        if not future.done():
            future.set_exception(error)


class AuditBatcher:
    def __init__(self, store: Store, log: AuditLog) -> None:
        self._store = store
        self._log = log
        self._pending: list[tuple[Pending, asyncio.Future[list[int]]]] = []
        self._writer: asyncio.Task[None] | None = None
        # Told of every committed group (the records as built, the commit's duration); set by gateway.services.
        self.on_commit: Callable[[list[AuditRecord], float], None] = _ignore

    async def submit(self, batch: Pending) -> list[int]:
        """Durably append ``batch``; raises AuditUnavailable if it could not be committed."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            await self._let_runnable_requests_join()
            taken, self._pending = self._pending, []
            try:
                results = await self._commit([batch for batch, _ in taken])
            except (GatewayError, OSError) as exc:
                # The cause is for the operator's log; callers learn only that nothing was issued.
                log.error("audit group commit failed (%d request(s) answered 503): %s", len(taken), exc)
                _fail(taken)
                continue
            except Exception:  # anything else would end this task and leave every caller waiting forever
                log.exception("audit group commit failed unexpectedly (%d request(s) answered 503)", len(taken))
                _fail(taken)
                continue
            for (_, future), seqs in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(seqs)

    async def _let_runnable_requests_join(self) -> None:
        """Yield to the loop while that keeps adding requests to the group (at most a few turns).

        Each group costs a fixed handful of thread hand-offs and GIL round trips
        besides its fsync; letting requests that are already running reach the
        queue first makes groups several times larger under load (issuance
        throughput with the durable log rose from about 0.63 to 0.8 of the null
        sink's in benchmarks/bench_audit_overhead.py). When requests stop
        arriving it commits at once, so an idle gateway adds no latency.
        """
        for _ in range(_MAX_JOIN_TURNS):
            waiting = len(self._pending)
            await asyncio.sleep(0)
            if len(self._pending) == waiting:
                return

    async def _commit(self, batches: list[Pending]) -> list[list[int]]:
        """One transaction and one database round trip for the whole group."""
        now = max(batch.now for batch in batches)
        built = [r for batch in batches for r in batch.records]
        started = time.perf_counter()
        records = await self._log.prepare_standalone(built, now)
        raw = [entry for batch in batches for entry in batch.raw]
        kids = sorted({kid for batch in batches for kid in batch.touches})
        seqs = await self._store.append_audit_group(records, raw, kids, now)
        self.on_commit(built, time.perf_counter() - started)  # metrics and detection (gateway.services): O(1)
        results: list[list[int]] = []
        for batch in batches:
            results.append(seqs[: len(batch.records)])
            seqs = seqs[len(batch.records) :]
        return results

    def pending_records(self) -> int:
        """Records submitted and not yet committed (the group being written is not counted)."""
        return sum(len(batch.records) for batch, _ in self._pending)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            await self._writer
