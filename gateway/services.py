"""The gateway's parts, wired together in one visible place.

``open_services`` is the only function that chooses implementations: the
store (SQLite by default, PostgreSQL for replicas), the master key (a local
file by default, or AWS KMS), the CloudFront key group, the viewer key source and the dialect registry. It also
loads the state view every request is served from (``gateway.state``); the
web app keeps it current (``gateway.web.app``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.access.identity import Identity, viewer_keys_from
from gateway.admin import Admin
from gateway.alerts.outbox import DeliveryPolicy, Outbox, load_endpoints
from gateway.alerts.watch import Watcher, WatchPolicy
from gateway.audit.behind import WriteBehind
from gateway.audit.checkpoints import LogSigner
from gateway.audit.export import configured_exporters
from gateway.audit.log import AuditBatcher, AuditLog
from gateway.audit.publisher import Checkpointer, CheckpointPolicy
from gateway.audit.records import AuditRecord
from gateway.audit.redemptions import Redemptions
from gateway.audit.subjects import Subjects
from gateway.cdn.cloudfront_keys import cloudfront_key_group
from gateway.config import Config
from gateway.edge.feed import ChangeLog
from gateway.keys.keyring import Keyring
from gateway.keys.masters import MasterKeys, open_master_keys
from gateway.limits.limiter import Limiter, Rules
from gateway.netaddr import ClientAddresses
from gateway.observe.metrics import CacheStats, Gauges, Metrics, read_token
from gateway.observe.sampler import Sampler
from gateway.signing.dialects import DialectRegistry, default_registry
from gateway.signing.issuance import IssuancePolicy, Issuer
from gateway.signing.profiles import NATIVE, Profiles, load_profiles
from gateway.signing.verification import Verifier
from gateway.state.media import MediaCache
from gateway.state.sync import StateSync, SyncPolicy
from gateway.state.view import StateView
from gateway.store import is_postgres, open_store
from gateway.store.base import Store

Clock = Callable[[], float]
_POLL_SQLITE = 0.5  # the truth poll, 4 per staleness bound; a watcher notices writes at once (store.sqlite.watch)
_POLL_POSTGRES = 0.05  # NOTIFY usually arrives first; this is the bound when it does not


@dataclass
class Services:
    config: Config
    store: Store
    master_key: MasterKeys
    dialects: DialectRegistry
    profiles: Profiles
    keyring: Keyring
    audit_log: AuditLog
    batcher: AuditBatcher
    # The raw technical log and first redemptions: committed within a second, never holding a request.
    behind: WriteBehind
    checkpointer: Checkpointer
    redemptions: Redemptions
    subjects: Subjects
    identity: Identity
    issuer: Issuer
    verifier: Verifier
    admin: Admin
    state: StateSync
    addresses: ClientAddresses
    clock: Clock
    # Operating it (gateway.observe, gateway.limits, gateway.alerts): /metrics, abuse limits, webhooks, detection.
    metrics: Metrics
    limits: Limiter
    outbox: Outbox
    watcher: Watcher
    sampler: Sampler
    # Edge mode (gateway.edge, docs/edge.md): the feed's bearer token, and the changes its deltas are made of.
    edge_token: str | None = None
    edge_changes: ChangeLog = field(default_factory=ChangeLog)

    async def close(self) -> None:
        await self.behind.close()
        await self.batcher.close()
        await self.outbox.close()
        await self.store.close()


def _edge(services: Services) -> None:
    """The edge feed's token, and its change log fed by the state sync (reset when the view is reloaded)."""
    config = services.config
    if config.edge_token_file:
        services.edge_token = read_token(config.data_path(config.edge_token_file), "edge.token_file")
    changes = services.edge_changes
    changes.reset(services.state.view.seq)
    services.state.on_load = changes.reset
    services.state.on_change = lambda change: changes.add(change.seq, change.kind, change.ref)


def _admin(config: Config, store: Store, master_key: MasterKeys, audit_log: AuditLog, state: StateSync) -> Admin:
    # What this process changes, it applies to its own view before answering.
    admin = Admin(store, master_key, audit_log, after_change=state.catch_up)
    admin.key_group = cloudfront_key_group(config)  # None unless [cloudfront] key_group_id is set
    return admin


# Below this many keys the parsing garbage is small, and a full collection costs more than it returns (a
# collection walks the whole heap: tens of ms in a process that has been busy a while).
_TRIM_AFTER_KEYS = 10_000


def _return_freed_memory(view: StateView) -> None:
    """Loading the view parses every key row once; hand the freed heap back to the OS (glibc keeps it otherwise)."""
    if len(view.keys) < _TRIM_AFTER_KEYS:
        return
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def freeze_start_up_heap() -> None:
    """Move what start-up built (modules, the state view, keys) out of reach of every later collection.

    A full collection walks every tracked object: ≈ 32 ms for a serving process's ≈ 60 000 start-up objects,
    every few seconds under load, with every request in flight waiting behind it (issue 18: the sign and page
    p99). Frozen, it walks only what was made since (≈ 3 ms). Reference counting still frees frozen objects;
    only a cycle among them would stay, and start-up's objects live as long as the process.

    Then the young generation is sized for serving (``SERVING_GC_THRESHOLDS``).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


# A serving process's young generation: 10 000 net allocations, not 700. What outlives a request by up to a second
# is the write-behind queue (gateway.audit.behind: ≈ 4 tracked objects per entry, flushed at 2 000 entries): at
# 700, every queued redemption was walked by a young collection, again by a middle one, then promoted and counted
# towards full ones (25-40 ms each, every few thousand requests). At 10 000 a flush frees them before any
# collection walks them: verify-distinct's collections 11 -> 5 µs of CPU per request (gc.callbacks, under
# `bench_verify_server_cpu --distinct`), young pauses ≈ 3 ms every ≈ 700 requests, full ones far rarer.
# Few request objects form cycles (≈ 0.1 per request), so the garbage a larger generation holds is small.
SERVING_GC_THRESHOLDS = (10_000, 10, 10)


@dataclass(frozen=True)
class _Operations:
    metrics: Metrics
    limits: Limiter
    outbox: Outbox
    watcher: Watcher
    sampler: Sampler


def _operations(config: Config, store: Store, audit_log: AuditLog, state: StateSync, clock: Clock) -> _Operations:
    """Metrics, abuse limits, the webhook outbox, suspicious-use detection: each O(1) in memory on the hot path."""
    token = read_token(config.data_path(config.metrics_token_file)) if config.metrics_token_file else None
    profiles = frozenset(p.name for p in config.profiles) | {NATIVE}
    metrics = Metrics(profiles=profiles, default=config.default_profile, token=token)
    outbox = Outbox(store, audit_log, load_endpoints(config), DeliveryPolicy(config.webhook_timeout,
                    config.webhook_max_attempts, config.webhook_backoff), clock, metrics.webhooks)  # fmt: skip
    watcher = Watcher(store, audit_log, outbox, state.view, WatchPolicy.from_config(config), clock, metrics.alerts)
    sampler = Sampler(clock, _latest_checkpoint(store), store.outbox.backlog if outbox.enabled else None)
    return _Operations(metrics, Limiter(Rules.from_config(config), metrics.limited), outbox, watcher, sampler)


def _latest_checkpoint(store: Store) -> Callable[[], Awaitable[float | None]]:
    async def latest() -> float | None:
        found = await store.audit.latest_checkpoint()
        return found.time if found else None

    return latest


def _observe(services: Services) -> None:
    """Hook metrics, limits and detection into the components they watch (each hook O(1), in memory)."""
    metrics, identity, state = services.metrics, services.identity, services.state
    metrics.caches += [
        CacheStats("principal_tokens", lambda: (identity.principal_tokens.hits, identity.principal_tokens.misses)),
        CacheStats("viewer_tokens", lambda: (identity.viewer_tokens.hits, identity.viewer_tokens.misses)),
        CacheStats("verify_decisions", lambda: (services.verifier.decisions.hits, services.verifier.decisions.misses)),
        CacheStats("media", lambda: (state.media.hits, state.media.misses)),
    ]
    metrics.gauges = Gauges(state.age, services.sampler.checkpoint_age, services.sampler.webhook_backlog,
                            lambda: services.watcher.rates.rates(services.clock()),
                            lambda: float(services.batcher.pending_records()),
                            lambda: float(services.behind.waiting()), lambda: services.behind.dropped)  # fmt: skip
    state.on_revocation = metrics.propagated
    services.issuer.limits = services.limits
    # Page redirects are limited per client network, not under the pages principal's (site-wide) buckets.
    services.limits.exempt = frozenset({services.config.pages_principal})
    services.limits.owner_of = lambda kid: _owner(state, kid)
    # One process on SQLite shares nothing; 'serve --workers N' sets these again (gateway.cli.serve).
    services.limits.shared = services.watcher.shared = is_postgres(services.config)
    services.issuer.count = metrics.count_issuance

    def committed(records: list[AuditRecord], seconds: float) -> None:
        metrics.committed(records, seconds)
        services.watcher.committed(records)

    services.batcher.on_commit = committed


def _owner(state: StateSync, kid: str) -> str | None:
    key = state.view.keys.get(kid)
    return None if key is None else key.principal_id


def sync_policy(config: Config, postgres: bool) -> SyncPolicy:
    poll = config.state_poll_every or (_POLL_POSTGRES if postgres else _POLL_SQLITE)
    # A URL lives at most max_ttl + cache_window (gateway.signing.issuance): revocations older cannot matter.
    lifetime = config.max_ttl + config.cache_window
    return SyncPolicy(stale_after=config.state_stale_after, poll_every=poll, max_ttl=lifetime)


async def open_services(config: Config, clock: Clock = time.time) -> Services:
    signer = LogSigner.load(config.log_signing_key_path)
    viewer_keys = viewer_keys_from(config)
    dialects = default_registry()
    profiles = load_profiles(config, dialects)
    store = await open_store(config)
    try:
        master_key = await open_master_keys(config, store)  # local file, or KMS (its wrapped data key is in the store)
        media = MediaCache(store.media.get, config.state_media_cache)
        state = StateSync(store, StateView(), media, clock, sync_policy(config, is_postgres(config)))
        await state.load()
        _return_freed_memory(state.view)
        keyring = Keyring(state, store, master_key)
        audit_log = await AuditLog.open(store, master_key)
        batcher = AuditBatcher(store, audit_log)
        behind = WriteBehind(batcher)
        policy_cp = CheckpointPolicy(config.checkpoint_every_records, config.checkpoint_every_seconds)
        checkpointer = Checkpointer(store, signer, configured_exporters(config), policy_cp)
        policy = IssuancePolicy(config.default_ttl, config.max_ttl, config.cache_window)
        ops = _operations(config, store, audit_log, state, clock)
        services = Services(
            config=config,
            store=store,
            master_key=master_key,
            dialects=dialects,
            keyring=keyring,
            identity=Identity(state, config, viewer_keys),
            profiles=profiles,
            audit_log=audit_log,
            batcher=batcher,
            behind=behind,
            checkpointer=checkpointer,
            redemptions=Redemptions(behind),
            subjects=Subjects(store, audit_log, after_change=state.catch_up),
            issuer=Issuer(state, keyring, profiles, policy, audit_log, batcher, behind),
            verifier=Verifier(keyring, state, config.max_ttl + config.cache_window),
            admin=_admin(config, store, master_key, audit_log, state),
            state=state,
            addresses=ClientAddresses(config.trusted_proxies),
            clock=clock,
            metrics=ops.metrics,
            limits=ops.limits,
            outbox=ops.outbox,
            watcher=ops.watcher,
            sampler=ops.sampler,
        )
        _edge(services)
        _observe(services)
        return services
    except BaseException:
        # The store holds database threads: left open, a failed start-up would never exit.
        await store.close()
        raise
