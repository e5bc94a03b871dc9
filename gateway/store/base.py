"""The storage interfaces the services depend on.

Each repository is a small async protocol. A ``Store`` offers them for reads
and, inside ``transaction()``, bound to one transaction, so a change and its
audit record commit together or not at all. Implementations live beside this
module (``sqlite``, ``postgres``), translate their driver errors into
``StoreUnavailable``/``AuditUnavailable`` and uniqueness violations into
``Conflict``.

Every write to principals, credentials, keys, grants, media and erased
subjects also appends to the change feed (``changes``) in the same
transaction, numbered in commit order: that is how every replica's state view
(``gateway.state``) learns of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.audit.merkle import Frontier
from gateway.audit.records import AuditRecord
from gateway.frozen import quick_init
from gateway.model import Credential, Grant, MediaItem, Principal, SigningKey


class PrincipalRepo(Protocol):
    async def add(self, principal: Principal) -> None: ...
    async def get(self, principal_id: str) -> Principal | None: ...
    async def all(self) -> list[Principal]: ...
    async def disable(self, principal_id: str, at: float) -> None: ...
    async def add_credential(self, credential: Credential) -> None: ...
    async def credential(self, credential_id: str) -> Credential | None: ...
    async def credentials(self, principal_id: str | None = None) -> list[Credential]: ...
    async def revoke_credential(self, credential_id: str, at: float) -> None: ...


class KeyRepo(Protocol):
    async def add(self, key: SigningKey) -> None: ...
    async def get(self, kid: str) -> SigningKey | None: ...
    async def get_by_external_id(self, external_id: str) -> SigningKey | None: ...
    async def all(self, principal_id: str | None = None) -> list[SigningKey]: ...
    async def page(self, after_kid: str, limit: int) -> list[SigningKey]:
        """Keys ordered by kid after ``after_kid``: loading 100 000 of them a page at a time keeps the peak small."""
        ...

    async def link(self, kid: str, external_id: str) -> None: ...
    async def revoke(self, kid: str, at: float, reason: str, by: str) -> None: ...
    async def touch(self, kid: str, at: float) -> None: ...
    async def reseal(self, kid: str, old: bytes, new: bytes) -> bool:
        """Replace a key's sealed private half if it still is ``old`` (a master-key rewrap)."""
        ...

    async def data_keys(self) -> dict[str, bytes]:
        """The KMS-wrapped master data keys, by master key id (``gateway.keys.kms``)."""
        ...

    async def add_data_key(self, key_id: str, wrapped: bytes) -> None: ...


class MediaRepo(Protocol):
    async def put(self, item: MediaItem) -> None:
        """Insert or replace the item and the paths and prefixes it claims."""
        ...

    async def get(self, media_id: str) -> MediaItem | None: ...
    async def delete(self, media_id: str, at: float) -> None:
        """Mark deleted (its links revoked too) and release what it claimed."""
        ...

    async def revoke_links(self, media_id: str, at: float) -> None:
        """Record that URLs for every path and prefix the item has now, issued up to ``at``, are void. The record
        outlives the item's later paths (moved, deleted and re-put): those URLs stay void."""
        ...

    async def revoke_claims(self, media_id: str, claims: Iterable[tuple[str, bool]], at: float) -> None:
        """Record that URLs for these (path, is_prefix) claims of the item, issued up to ``at``, are void."""
        ...

    async def revoked_paths(self, since: float, media_id: str | None = None) -> list[RevokedPath]:
        """Link and grant revocations at or after ``since`` (of one item, or all)."""
        ...

    async def overlapping(self, item: MediaItem) -> list[tuple[str, str]]:
        """(other media id, path) for every live item's path or prefix that ``item``'s prefixes would cover,
        or whose prefix covers one of ``item``'s paths or prefixes."""
        ...

    async def owned_by(self, owner: str) -> list[MediaItem]: ...
    async def erase_owner(self, owner: str, pseudonym: str, at: float) -> int:
        """Delete ``owner``'s items (their links revoked) and replace the owner by ``pseudonym``: the rows
        stay as tombstones so every replica keeps refusing their old links. Returns how many."""
        ...


class GrantRepo(Protocol):
    async def add(self, grant: Grant) -> None: ...
    async def get(self, grant_id: str) -> Grant | None: ...
    async def all(self, principal_id: str | None = None) -> list[Grant]: ...
    async def for_media(self, principal_id: str, media_id: str) -> list[Grant]: ...
    async def live(self, now: float) -> list[Grant]: ...
    async def revoke(self, grant_id: str, at: float) -> None:
        """Mark revoked, and record that the grantee's URLs for every path and prefix the item has now, issued
        up to ``at``, are void (a ``RevokedPath`` with the principal)."""
        ...


@dataclass(frozen=True)
class RevokedPath:
    """URLs for ``path`` (or, as a prefix, under it) issued up to ``at`` no longer verify: anyone's, or with
    ``principal_id`` only the URLs that principal's keys signed (a revoked access grant)."""

    media_id: str
    path: str
    is_prefix: bool
    at: float
    principal_id: str | None = None


@quick_init
@dataclass(frozen=True)
class LogEntry:
    """One position of the Merkle log; ``record`` is None once pruned (the leaf's input stays), or when
    the row is not a record (``pruned_at`` None: a column holds a value no record has)."""

    seq: int
    leaf_hash: bytes
    time: float
    retention: str
    record: AuditRecord | None
    pruned_at: float | None = None
    event: str = ""
    body_sha256: bytes | None = None


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    time: float
    root: bytes
    key_id: str
    signature: bytes


@quick_init
@dataclass(frozen=True)
class RawEntry:
    """Short-lived technical log: the unmasked client address, purged after days."""

    time: float
    event: str
    request_id: str | None
    kid: str | None
    client_ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class PrunePolicy:
    sealed_upto: int
    viewer_before: float
    engineer_before: float
    erased_before: float


@dataclass(frozen=True)
class AuditQuery:
    event: str | None = None
    actor: str | None = None
    kid: str | None = None
    media_id: str | None = None
    subject: str | None = None
    since: float | None = None
    until: float | None = None
    after_seq: int = 0
    limit: int = 100
    # SHA-256 hex of a signed URL. ``kid``, ``media_id`` and this also find a batch record one of whose URLs
    # matches them all (through its child rows, ``audit_urls``).
    url_sha256: str | None = None


# A batch record's URL as its child row holds it: (seq, position, url_sha256, media_id, rendition, expires_at, kid);
# ``gateway.store.rows.child_rows``.
AuditUrl = tuple[Any, ...]


class AuditRepo(Protocol):
    async def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint over the longest log (the newest of those): one row, however many there are."""
        ...

    async def append(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append at the next positions, extending the Merkle frontier in the same transaction."""
        ...

    async def tail(self, limit: int) -> list[AuditRecord]: ...
    async def search(self, query: AuditQuery) -> list[AuditRecord]: ...
    async def entries(self, after_seq: int, limit: int) -> list[LogEntry]: ...
    async def frontier(self) -> Frontier: ...
    async def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    async def checkpoints(self) -> list[Checkpoint]: ...
    async def prune(self, policy: PrunePolicy, now: float) -> int:
        """Clear the contents of records past retention (and delete their child rows); how many were pruned."""
        ...

    async def urls(self, after_seq: int, upto_seq: int | None) -> list[AuditUrl]:
        """The child rows of batch records after ``after_seq`` up to ``upto_seq`` (None: all), in order."""
        ...

    async def index_problems(self) -> list[str]:
        """What is wrong with the indexes searches read the audit tables through (one missing, redefined, extra,
        or out of step with its rows): a search finds every record ``audit verify`` proved only if none."""
        ...

    async def purge_raw(self, before: float) -> int: ...


class SubjectRepo(Protocol):
    async def sealed_key(self, ref: str) -> bytes | None: ...
    async def add_key(self, ref: str, sealed: bytes, at: float) -> None: ...
    async def is_erased(self, ref: str) -> bool: ...
    async def erased_refs(self) -> list[str]: ...
    async def erase(self, ref: str, at: float) -> None: ...
    async def sealed_pepper(self) -> bytes | None: ...
    async def set_sealed_pepper(self, sealed: bytes) -> None: ...
    async def sealed_keys(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        """(ref, sealed key) in ref order after ``after``: for a master-key rewrap."""
        ...

    async def reseal_key(self, ref: str, old: bytes, new: bytes) -> bool:
        """Replace a subject's sealed key if it still is ``old``: an erased subject stays erased."""
        ...

    async def reseal_pepper(self, old: bytes, new: bytes) -> bool: ...

    async def unkeyed(self, limit: int) -> list[tuple[str, int]]:
        """(pseudonym, first record) of subjects whose sealed audit fields have no key to open them and whose
        erasure the log does not record (no ``subject:erased`` record): a key lost or deleted by hand."""
        ...


@dataclass(frozen=True)
class Change:
    """One entry of the change feed: ``kind`` names what changed (principal, credential, key, grant, media,
    subject) and ``ref`` which one; the state view reloads it."""

    seq: int
    kind: str
    ref: str


class ChangeRepo(Protocol):
    async def head(self) -> int:
        """The newest position committed."""
        ...

    async def since(self, seq: int, limit: int) -> list[Change]:
        """Changes after ``seq``, in order. Positions are given in commit order, so none is ever skipped."""
        ...


class Listening(Protocol):
    async def close(self) -> None: ...


class Repos(Protocol):
    @property
    def principals(self) -> PrincipalRepo: ...
    @property
    def keys(self) -> KeyRepo: ...
    @property
    def media(self) -> MediaRepo: ...
    @property
    def grants(self) -> GrantRepo: ...
    @property
    def audit(self) -> AuditRepo: ...
    @property
    def subjects(self) -> SubjectRepo: ...
    @property
    def changes(self) -> ChangeRepo: ...
    @property
    def outbox(self) -> OutboxRepo: ...
    @property
    def limits(self) -> LimitRepo: ...
    @property
    def watch(self) -> WatchRepo: ...


class Store(Repos, Protocol):
    # The schema migrations ``open`` applied (``gatewayctl migrate`` reports them).
    applied_migrations: list[int]
    # Told of each record ``append_audit_group`` committed, as written (gateway.audit.recent): the
    # checkpoint exports them without reading them back. None: nobody listens.
    on_appended: Callable[[Sequence[LogEntry]], None] | None

    def transaction(self) -> AbstractAsyncContextManager[Repos]: ...

    async def append_audit_group(
        self, records: Sequence[AuditRecord], raw: Sequence[RawEntry], touches: Sequence[str], at: float
    ) -> list[int]:
        """The hot path: append records (and raw entries, key last-used times) durably in one
        transaction and one round trip to the database, then tell ``on_appended``. Raises
        AuditUnavailable on failure."""
        ...

    def listen(self, wake: Callable[[], None]) -> Listening:
        """Call ``wake`` when another process may have changed something (a hint: poll the feed to know)."""
        ...

    def exclusive(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Hold the lock ``name`` across every process sharing this store, if it is free: yields whether held."""
        ...

    async def ping(self) -> None: ...
    async def database_time(self) -> float:
        """The database server's clock, in epoch seconds (``gatewayctl doctor`` compares it with ours)."""
        ...

    async def close(self) -> None: ...


# Operations (gateway.alerts, gateway.limits): the webhook outbox, shared rate-limit buckets, and what
# outsider-use detection shares between replicas. Writes go through ``transaction()``.


@dataclass(frozen=True)
class OutboxEntry:
    """One event for one webhook endpoint. ``state``: pending (due at ``next_attempt_at``), delivered, dead."""

    id: int
    endpoint: str
    event_id: str
    event: str
    payload: str
    created_at: float
    attempts: int
    next_attempt_at: float
    state: str
    last_error: str | None = None
    delivered_at: float | None = None


class OutboxRepo(Protocol):
    async def enqueue(self, endpoint: str, event_id: str, event: str, payload: str, now: float) -> bool:
        """Add the event for the endpoint unless it is already there (False then): enqueueing is idempotent."""
        ...

    async def claim(self, owner: str, now: float, lease: float, limit: int) -> list[OutboxEntry]:
        """Lease up to ``limit`` due pending entries to ``owner`` until ``now + lease``, oldest first. An entry
        leased to another owner whose lease has not run out is never returned: one deliverer at a time."""
        ...

    async def delivered(self, entry_id: int, owner: str, now: float) -> bool:
        """Mark delivered (one attempt more), if ``owner`` still holds the lease."""
        ...

    async def failed(self, entry_id: int, owner: str, error: str, retry_at: float | None) -> bool:
        """Count a failed attempt and release the lease: due again at ``retry_at``, or dead when None."""
        ...

    async def revive(self, entry_id: int, now: float) -> bool:
        """A dead entry becomes pending and due now (its attempts start again)."""
        ...

    async def entries(self, state: str | None, limit: int) -> list[OutboxEntry]:
        """Newest first, of one state or all."""
        ...

    async def backlog(self) -> int:
        """How many entries are pending."""
        ...

    async def cursor(self) -> int | None:
        """The audit position up to which records were turned into events (None: never started)."""
        ...

    async def set_cursor(self, seq: int) -> None: ...


@dataclass(frozen=True)
class BucketUse:
    """What one replica took from a shared bucket since it last reported."""

    bucket: str
    rate: float
    burst: int
    used: float


class LimitRepo(Protocol):
    async def reconcile(self, uses: Sequence[BucketUse], now: float) -> dict[str, float]:
        """For each bucket, in one statement: refill its shared level at ``rate`` since it was last reconciled
        (at most ``burst``; a bucket never seen starts full), subtract ``used``; return the new levels."""
        ...

    async def forget_full(self, now: float) -> int:
        """Delete buckets refilled to their burst by ``now``: a missing bucket is a full one."""
        ...


@dataclass(frozen=True)
class Baseline:
    """A principal's usual signing: networks (masked, with when last seen), UTC hours (bit h), since when."""

    principal_id: str
    networks: Mapping[str, float]
    hours: int
    first_seen: float
    issuances: int


def merged(old: Baseline | None, seen: Baseline, max_networks: int) -> Baseline:
    """Union of two baselines; the networks seen longest ago go first past ``max_networks``."""
    if old is None:
        old = Baseline(seen.principal_id, {}, 0, seen.first_seen, 0)
    networks = dict(old.networks)
    for network, at in seen.networks.items():
        networks[network] = max(at, networks.get(network, at))
    kept = dict(sorted(networks.items(), key=lambda item: item[1], reverse=True)[:max_networks])
    return Baseline(
        seen.principal_id, kept, old.hours | seen.hours, min(old.first_seen, seen.first_seen),
        old.issuances + seen.issuances,
    )  # fmt: skip


class WatchRepo(Protocol):
    async def add_issued(self, rows: Sequence[tuple[str, int, str]]) -> None:
        """Remember (kid, expires_at, masked network) of issuances, so any replica can tell an outsider."""
        ...

    async def issued_networks(self, kid: str, expires_at: int) -> set[str]: ...
    async def forget_issued(self, expired_before: int) -> int: ...
    async def baselines(self) -> list[Baseline]: ...
    async def merge_baseline(self, seen: Baseline, max_networks: int) -> Baseline:
        """Add what one replica saw to the stored baseline (union of networks, hours, sums) and return it."""
        ...
