"""The gateway's parts, wired together in one visible place.

``open_services`` is the only function that chooses implementations: the
store (SQLite by default, PostgreSQL for replicas), the master key (a local
file by default), the viewer key source and the dialect registry. It also
loads the state view every request is served from (``gateway.state``); the
web app keeps it current (``gateway.web.app``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.access.identity import Identity, viewer_keys_from
from gateway.admin import Admin
from gateway.audit.checkpoints import LogSigner
from gateway.audit.export import configured_exporters
from gateway.audit.log import AuditBatcher, AuditLog
from gateway.audit.publisher import Checkpointer, CheckpointPolicy
from gateway.audit.redemptions import Redemptions
from gateway.audit.subjects import Subjects
from gateway.config import Config
from gateway.keys.keyring import Keyring
from gateway.keys.sealing import LocalMasterKey, MasterKey
from gateway.signing.dialects import DialectRegistry, default_registry
from gateway.signing.issuance import IssuancePolicy, Issuer
from gateway.signing.profiles import Profiles, load_profiles
from gateway.signing.verification import Verifier
from gateway.state.media import MediaCache
from gateway.state.sync import StateSync, SyncPolicy
from gateway.state.view import StateView
from gateway.store import is_postgres, open_store
from gateway.store.base import Store

Clock = Callable[[], float]
_POLL_SQLITE = 0.005  # one indexed read on a local file
_POLL_POSTGRES = 0.05  # NOTIFY usually arrives first; this is the bound when it does not


@dataclass
class Services:
    config: Config
    store: Store
    master_key: MasterKey
    dialects: DialectRegistry
    profiles: Profiles
    keyring: Keyring
    audit_log: AuditLog
    batcher: AuditBatcher
    checkpointer: Checkpointer
    redemptions: Redemptions
    subjects: Subjects
    identity: Identity
    issuer: Issuer
    verifier: Verifier
    admin: Admin
    state: StateSync
    clock: Clock

    async def close(self) -> None:
        await self.batcher.close()
        await self.store.close()


def sync_policy(config: Config, postgres: bool) -> SyncPolicy:
    poll = config.state_poll_every or (_POLL_POSTGRES if postgres else _POLL_SQLITE)
    return SyncPolicy(stale_after=config.state_stale_after, poll_every=poll, max_ttl=config.max_ttl)


async def open_services(config: Config, clock: Clock = time.time) -> Services:
    master_key = LocalMasterKey.load(config.master_key_path)
    signer = LogSigner.load(config.log_signing_key_path)
    viewer_keys = viewer_keys_from(config)
    dialects = default_registry()
    profiles = load_profiles(config, dialects)
    store = await open_store(config)
    try:
        media = MediaCache(store.media.get, config.state_media_cache)
        state = StateSync(store, StateView(), media, clock, sync_policy(config, is_postgres(config)))
        await state.load()
        keyring = Keyring(state, master_key)
        audit_log = await AuditLog.open(store, master_key)
        batcher = AuditBatcher(store, audit_log)
        policy_cp = CheckpointPolicy(config.checkpoint_every_records, config.checkpoint_every_seconds)
        checkpointer = Checkpointer(store, signer, configured_exporters(config), policy_cp)
        policy = IssuancePolicy(config.default_ttl, config.max_ttl)
        return Services(
            config=config,
            store=store,
            master_key=master_key,
            dialects=dialects,
            keyring=keyring,
            identity=Identity(state, config, viewer_keys),
            profiles=profiles,
            audit_log=audit_log,
            batcher=batcher,
            checkpointer=checkpointer,
            redemptions=Redemptions(batcher),
            subjects=Subjects(store, audit_log, after_change=state.catch_up),
            issuer=Issuer(state, keyring, profiles, policy, audit_log, batcher),
            verifier=Verifier(keyring, state),
            # What this process changes, it applies to its own view before answering.
            admin=Admin(store, master_key, audit_log, after_change=state.catch_up),
            state=state,
            clock=clock,
        )
    except BaseException:
        # The store holds database threads: left open, a failed start-up would never exit.
        await store.close()
        raise
